"""Tables owned by mcp-router-service: ``mcp_servers``, ``mcp_plans`` and its outbox.

Platform servers have ``tenant_id`` NULL and ``scope_key`` ``*``; a tenant's own have both set
to the tenant id. Uniqueness rests on ``scope_key`` (NULLs repeat in unique constraints), which
also keeps seeding idempotent when several processes start on one database.
"""

from tortoise import fields
from tortoise.models import Model

from synapsex.actors.domain_events import OutboxEvent

#: ``scope_key`` of the platform's rows
PLATFORM_SCOPE = "*"


class McpServer(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    #: the platform marker or the owning tenant id
    scope_key = fields.CharField(max_length=40)
    tenant_id = fields.CharField(max_length=40, null=True)
    name = fields.CharField(max_length=63)
    #: NULL for a platform server the operator has not configured
    url = fields.CharField(max_length=2048, null=True)
    description = fields.TextField(default="")
    enabled = fields.BooleanField(default=True)
    #: the tenant secret holding the Authorization header value
    auth_secret_name = fields.CharField(max_length=128, null=True)
    last_synced_at = fields.DatetimeField(null=True)
    last_sync_error = fields.TextField(null=True)
    #: JSON counts of the last successful sync (added, changed, removed, unchanged, skipped, pages)
    last_sync = fields.TextField(null=True)
    #: catalog tools of the server that are not REMOVED, as of the last successful sync
    tool_count = fields.IntField(default=0)
    created_by = fields.CharField(max_length=40, null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        app = "mcp_router"
        table = "mcp_servers"
        unique_together = (("scope_key", "name"),)


class McpPlan(Model):
    """A plan shown to a person before a tool runs (owned by the plans part of the service)."""

    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    #: PROPOSED APPROVED REJECTED EXECUTING SUCCEEDED FAILED STALE
    status = fields.CharField(max_length=12)
    intent = fields.TextField()
    #: the arguments the caller gave, JSON text
    arguments = fields.TextField(default="{}")
    workspace_id = fields.CharField(max_length=40, null=True)
    #: JSON list of the server ids the plan considered
    server_ids = fields.TextField(default="[]")
    #: JSON list of the ranked candidates with their reasons and policy verdicts
    candidates = fields.TextField(default="[]")
    chosen_server_id = fields.CharField(max_length=40, null=True)
    #: the exposed tool name
    chosen_tool = fields.CharField(max_length=310, null=True)
    chosen_original_name = fields.CharField(max_length=200, null=True)
    #: JSON object of the arguments the tool would be called with
    chosen_arguments = fields.TextField(default="{}")
    #: JSON list of required arguments not supplied
    missing_arguments = fields.TextField(default="[]")
    tool_definition_sha256 = fields.CharField(max_length=64, null=True)
    arguments_sha256 = fields.CharField(max_length=64, null=True)
    requires_approval = fields.BooleanField(default=True)
    explanation = fields.TextField(default="")
    policy_effect = fields.CharField(max_length=20, null=True)
    policy_reason = fields.TextField(null=True)
    created_by_member_id = fields.CharField(max_length=40, null=True)
    approved_by_member_id = fields.CharField(max_length=40, null=True)
    approved_role = fields.CharField(max_length=20, null=True)
    approved_at = fields.DatetimeField(null=True)
    rejected_reason = fields.TextField(null=True)
    executed_at = fields.DatetimeField(null=True)
    duration_ms = fields.FloatField(null=True)
    outcome_error = fields.TextField(null=True)
    result_artifact_id = fields.CharField(max_length=40, null=True)
    #: the start of the result document (JSON), also for plans without a workspace
    result_excerpt = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        app = "mcp_router"
        table = "mcp_plans"
        indexes = (("tenant_id", "status"),)


class McpRouterOutbox(OutboxEvent):
    """Domain events staged with the change that caused them (see ``domain_events``)."""

    class Meta:
        app = "mcp_router"
        table = "mcp_router_outbox"
