"""Tables owned by api-gateway: ``agents``, ``mcp_tools``, the per-tenant count of ACTIVE agents
the plan limit is enforced on (``api_gateway_agent_counts``) and the ``api_gateway_outbox``.

An agent's ``name_key`` (its name NFKC-normalised and case-folded) is unique per tenant while
the agent is ACTIVE; archiving sets it to NULL (both engines let NULLs repeat in a unique
constraint), which frees the name for a new agent without a partial index.
"""

from tortoise import fields
from tortoise.models import Model

from synapsex.actors.domain_events import OutboxEvent


class Agent(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    name = fields.CharField(max_length=100)
    #: the name as compared (NFKC, case-folded), NULL once archived (which frees the name)
    name_key = fields.CharField(max_length=400, null=True)
    description = fields.TextField()
    #: JSON list of capability tags as registered
    capabilities = fields.TextField()
    #: the same tags lower-cased and space-separated with a leading and a trailing space
    capability_keys = fields.TextField()
    version = fields.CharField(max_length=100)
    #: ACTIVE or ARCHIVED
    status = fields.CharField(max_length=10)
    #: the member who registered it
    created_by = fields.CharField(max_length=40, null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    archived_at = fields.DatetimeField(null=True)

    class Meta:
        app = "api_gateway"
        table = "agents"
        unique_together = (("tenant_id", "name_key"),)
        indexes = (("tenant_id", "status"),)


class AgentCount(Model):
    """How many ACTIVE agents a tenant has (the plan limit is a conditional update of it).

    Kept in step with ``agents`` in the same transactions."""

    tenant_id = fields.CharField(primary_key=True, max_length=40)
    active = fields.IntField(default=0)

    class Meta:
        app = "api_gateway"
        table = "api_gateway_agent_counts"


class McpTool(Model):
    """One tool of one MCP server as the router exposes it.

    Filled by the sync of mcp-router-service; nothing in this service writes it yet."""

    id = fields.CharField(primary_key=True, max_length=40)
    #: the platform marker or the tenant id
    scope_key = fields.CharField(max_length=40)
    server_id = fields.CharField(max_length=40)
    server_name = fields.CharField(max_length=100)
    #: the tool name as the server lists it
    original_name = fields.CharField(max_length=200)
    #: server name and tool name joined by two underscores, unique per scope
    exposed_name = fields.CharField(max_length=310)
    title = fields.CharField(max_length=300, null=True)
    description = fields.TextField(default="")
    #: JSON Schema of the arguments as JSON text
    input_schema = fields.TextField()
    #: the tool annotations as JSON text
    annotations = fields.TextField(default="{}")
    #: SHA-256 hex of the canonical tool definition
    definition_sha256 = fields.CharField(max_length=64)
    #: the definition hash before the last change, if it changed
    previous_sha256 = fields.CharField(max_length=64, null=True)
    #: ACTIVE or CHANGED or REMOVED
    status = fields.CharField(max_length=10)
    synced_at = fields.DatetimeField()
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        app = "api_gateway"
        table = "mcp_tools"
        unique_together = (("scope_key", "exposed_name"),)
        indexes = (("scope_key", "server_id"),)


class ApiGatewayOutbox(OutboxEvent):
    """Domain events staged with the change that caused them (see ``domain_events``)."""

    class Meta:
        app = "api_gateway"
        table = "api_gateway_outbox"
