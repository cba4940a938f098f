"""The GraphQL gateway: a Strawberry schema served by aiohttp, the single public entry.

Resolvers authenticate the caller, turn the request into a contract message, ask the owning
service and map the reply to GraphQL types; they never import a service's models.
"""

from synapsex.graphql.app import GatewayConfig, create_app
from synapsex.graphql.schema import build_schema, schema_sdl

__all__ = ["GatewayConfig", "build_schema", "create_app", "schema_sdl"]
