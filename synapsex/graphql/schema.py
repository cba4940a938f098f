"""The schema: every domain's Query and Mutation merged, with the gateway's extensions."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionResult

from synapsex.graphql.agents import AgentMutation, AgentQuery
from synapsex.graphql.apikeys import ApiKeyMutation, ApiKeyQuery
from synapsex.graphql.audit import AuditQuery
from synapsex.graphql.billing import BillingMutation, BillingQuery
from synapsex.graphql.deployments import DeploymentMutation, DeploymentQuery
from synapsex.graphql.errors import GatewayExtension, rewrite_errors
from synapsex.graphql.events import EventMutation, EventQuery, EventSubscription
from synapsex.graphql.mcp_plans import McpPlanMutation, McpPlanQuery, McpPlanSubscription
from synapsex.graphql.mcp_servers import McpServerMutation, McpServerQuery
from synapsex.graphql.models import ModelMutation, ModelQuery
from synapsex.graphql.policies import PolicyMutation, PolicyQuery
from synapsex.graphql.releases import ReleaseMutation, ReleaseQuery, ReleaseSubscription
from synapsex.graphql.scalars import SCALAR_MAP
from synapsex.graphql.secrets import SecretMutation, SecretQuery
from synapsex.graphql.telemetry import TelemetryMutation, TelemetryQuery
from synapsex.graphql.tenants import TenantMutation, TenantQuery
from synapsex.graphql.vms import VmMutation, VmQuery
from synapsex.graphql.webhooks import WebhookMutation, WebhookQuery
from synapsex.graphql.workspaces import WorkspaceMutation, WorkspaceQuery

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000

#: every domain's root types, one line each
QUERIES: tuple[type, ...] = (
    TenantQuery,
    ApiKeyQuery,
    PolicyQuery,
    AuditQuery,
    EventQuery,
    WebhookQuery,
    TelemetryQuery,
    ModelQuery,
    SecretQuery,
    BillingQuery,
    ReleaseQuery,
    WorkspaceQuery,
    AgentQuery,
    DeploymentQuery,
    VmQuery,
    McpServerQuery,
    McpPlanQuery,
)
MUTATIONS: tuple[type, ...] = (
    TenantMutation,
    ApiKeyMutation,
    PolicyMutation,
    EventMutation,
    WebhookMutation,
    TelemetryMutation,
    ModelMutation,
    SecretMutation,
    BillingMutation,
    ReleaseMutation,
    WorkspaceMutation,
    AgentMutation,
    DeploymentMutation,
    VmMutation,
    McpServerMutation,
    McpPlanMutation,
)
SUBSCRIPTIONS: tuple[type, ...] = (EventSubscription, ReleaseSubscription, McpPlanSubscription)

Query = merge_types("Query", QUERIES)
Mutation = merge_types("Mutation", MUTATIONS)
Subscription = merge_types("Subscription", SUBSCRIPTIONS)


class GatewaySchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Errors are logged (once, with the request id) by :class:`GatewayExtension`, not here."""

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        result = await super().execute(*args, **kwargs)
        context = kwargs.get("context_value", args[2] if len(args) > 2 else None)
        rewrite_errors(result, context)
        return result


def build_schema(*, max_depth: int = MAX_DEPTH) -> strawberry.Schema:
    """A new schema (extensions are factories, so nothing is shared between requests).

    The schema has no cycles yet, so no query can go deeper than ``MAX_DEPTH``; the limit is
    there for the types to come (``max_depth`` lets a test see it bite).

    The depth and alias rules are built once per schema: Strawberry's ``ValidationCache`` keys
    on the rule classes, and the limiters make a new class per instance, so a factory such as
    ``lambda: QueryDepthLimiter(...)`` would miss the cache on every request."""
    limit_rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    ]
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        extensions=[
            ParserCache,
            ValidationCache,
            lambda: GatewayExtension(max_tokens=MAX_TOKENS, validation_rules=limit_rules),
        ],
    )


def schema_sdl() -> str:
    """The SDL printed by ``synapsex schema`` and checked in as ``schema.graphql``."""
    return build_schema().as_str() + "\n"
