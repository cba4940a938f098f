"""The schema: every domain's Query and Mutation merged, with the gateway's extensions."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from synapsex.graphql.apikeys import ApiKeyMutation, ApiKeyQuery
from synapsex.graphql.audit import AuditQuery
from synapsex.graphql.errors import ErrorCodes
from synapsex.graphql.policies import PolicyMutation, PolicyQuery
from synapsex.graphql.scalars import SCALAR_MAP
from synapsex.graphql.tenants import TenantMutation, TenantQuery

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000

Query = merge_types("Query", (TenantQuery, ApiKeyQuery, PolicyQuery, AuditQuery))
Mutation = merge_types("Mutation", (TenantMutation, ApiKeyMutation, PolicyMutation))


class GatewaySchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Errors are logged (once, with the request id) by :class:`ErrorCodes`, not here."""


def build_schema() -> strawberry.Schema:
    """A new schema (extensions are factories, so nothing is shared between requests)."""
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        extensions=[
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            ParserCache,
            ValidationCache,
            ErrorCodes,
        ],
    )


def schema_sdl() -> str:
    """The SDL printed by ``synapsex schema`` and checked in as ``schema.graphql``."""
    return build_schema().as_str() + "\n"
