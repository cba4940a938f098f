"""MCP servers and their tool catalog: the platform's servers every tenant sees (seeded, managed
by the operator), the tenant's own servers, syncing their ``tools/list`` into the catalog, and
the catalog itself (``mcpTools``). See ``docs/mcp.md``.

Admins and owners manage servers (the default policy: ``mcp_server.create``, ``.update``,
``.disable``, ``.sync``); every member reads them. An auth header is never shown: only the name
of the tenant secret it comes from."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.types import Info

from synapsex.contracts import mcp as contract
from synapsex.contracts import mcp_tools as tools_contract
from synapsex.contracts.auth import Principal
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.guard import guarded
from synapsex.graphql.relay import Connection, connection, tenant_connection
from synapsex.graphql.scalars import JSON
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]

NAME_HELP = (
    "1 to 63 lower-case letters, digits, - or _ (no __, not ending with _); unique among the "
    "servers the tenant sees. Tools are exposed as <name>__<tool>."
)
URL_HELP = (
    "The server's streamable HTTP endpoint (http or https), e.g. https://mcp.example.com/mcp. "
    "It must not reach loopback or private addresses unless the operator allows it."
)
AUTH_HELP = (
    "The name of a tenant secret (putSecret) whose value is sent as the Authorization header "
    "(a bare token as Bearer <token>)."
)


# ---------------------------------------------------------------------------- types


@strawberry.enum(description="Whose an MCP server (and its tools) is.")
class McpScope(Enum):
    PLATFORM = "platform"
    TENANT = "tenant"


@strawberry.enum(description="What the last sync of its server found for a tool.")
class McpToolStatus(Enum):
    ACTIVE = "ACTIVE"
    CHANGED = "CHANGED"
    REMOVED = "REMOVED"


@strawberry.type(description="What the last successful sync did to the catalog.")
class McpSyncCounts:
    added: int
    changed: int = strawberry.field(
        description="Tools whose definition (and so its SHA-256) changed."
    )
    removed: int = strawberry.field(description="Tools the server no longer lists.")
    unchanged: int
    skipped: int = strawberry.field(
        description="Tools the catalog cannot hold (an invalid MCP name, or listed twice)."
    )
    pages: int = strawberry.field(description="tools/list pages read.")

    @classmethod
    def of(cls, view: contract.SyncCounts) -> McpSyncCounts:
        return cls(
            added=view.added,
            changed=view.changed,
            removed=view.removed,
            unchanged=view.unchanged,
            skipped=view.skipped,
            pages=view.pages,
        )


@strawberry.type(description="An MCP server the tenant sees.")
class McpServer:
    id: strawberry.ID
    scope: McpScope = strawberry.field(
        description="PLATFORM: seeded for every tenant, managed by the operator; TENANT: the "
        "tenant's own."
    )
    name: str
    url: str | None = strawberry.field(
        description="Null for a platform server the operator has not configured."
    )
    description: str
    enabled: bool = strawberry.field(description="Disabled servers are not planned over.")
    auth_secret_name: str | None = strawberry.field(description=AUTH_HELP)
    last_synced_at: datetime | None
    last_sync_error: str | None = strawberry.field(
        description="Why the last sync failed (null once one succeeds)."
    )
    last_sync: McpSyncCounts | None
    tool_count: int = strawberry.field(description="Tools in the catalog not REMOVED.")
    created_by: strawberry.ID | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: contract.McpServerView) -> McpServer:
        return cls(
            id=strawberry.ID(view.id),
            scope=McpScope(view.scope),
            name=view.name,
            url=view.url,
            description=view.description,
            enabled=view.enabled,
            auth_secret_name=view.auth_secret_name,
            last_synced_at=view.last_synced_at,
            last_sync_error=view.last_sync_error,
            last_sync=None if view.last_sync is None else McpSyncCounts.of(view.last_sync),
            tool_count=view.tool_count,
            created_by=None if view.created_by is None else strawberry.ID(view.created_by),
            created_at=view.created_at,
            updated_at=view.updated_at,
        )


@strawberry.type(description="A tool of an MCP server, as the router exposes it.")
class McpTool:
    id: strawberry.ID
    scope: McpScope
    server_id: strawberry.ID
    server_name: str
    name: str = strawberry.field(description="The exposed name: <server>__<tool>.")
    original_name: str = strawberry.field(description="The tool's name on its server.")
    title: str | None
    description: str
    input_schema: JSON = strawberry.field(description="JSON Schema of the arguments.")
    annotations: JSON = strawberry.field(
        description="The server's hints (readOnlyHint, destructiveHint, idempotentHint, "
        "openWorldHint); untrusted unless the server is."
    )
    definition_sha256: str = strawberry.field(
        name="definitionSha256",
        description="SHA-256 of the canonical JSON of {name, title, description, inputSchema, "
        "annotations} (sorted keys, no white space).",
    )
    previous_sha256: str | None = strawberry.field(
        name="previousSha256", description="The hash before the last change, if it changed."
    )
    status: McpToolStatus
    synced_at: datetime

    @classmethod
    def of(cls, view: tools_contract.McpToolView) -> McpTool:
        return cls(
            id=strawberry.ID(view.id),
            scope=McpScope(view.scope),
            server_id=strawberry.ID(view.server_id),
            server_name=view.server_name,
            name=view.name,
            original_name=view.original_name,
            title=view.title,
            description=view.description,
            input_schema=JSON(view.input_schema),
            annotations=JSON(view.annotations),
            definition_sha256=view.definition_sha256,
            previous_sha256=view.previous_sha256,
            status=McpToolStatus(view.status),
            synced_at=view.synced_at,
        )


# ---------------------------------------------------------------------------- inputs


@strawberry.input
class RegisterMcpServerInput:
    name: str = strawberry.field(description=NAME_HELP)
    url: str = strawberry.field(description=URL_HELP)
    description: str = ""
    enabled: bool = True
    auth_secret_name: str | None = strawberry.field(default=None, description=AUTH_HELP)


@strawberry.input
class UpdateMcpServerInput:
    id: strawberry.ID
    name: str | None = strawberry.field(default=None, description=NAME_HELP)
    url: str | None = strawberry.field(default=None, description=URL_HELP)
    description: str | None = None
    enabled: bool | None = None
    auth_secret_name: str | None = strawberry.field(
        default=strawberry.UNSET, description=AUTH_HELP + " Null removes it; omitted keeps it."
    )


@strawberry.input
class DisableMcpServerInput:
    id: strawberry.ID


@strawberry.input
class SyncMcpServerInput:
    id: strawberry.ID


# ---------------------------------------------------------------------------- resolvers


@strawberry.type
class McpServerQuery:
    @strawberry.field(
        description="The MCP servers the tenant sees (the platform's and its own), oldest "
        "first; search matches the name or description (case-insensitive)."
    )
    async def mcp_servers(
        self,
        info: Ctx,
        enabled: bool | None = None,
        search: str | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[McpServer]:
        return await tenant_connection(
            info,
            contract.ListMcpServers,
            McpServer.of,
            enabled=enabled,
            search=search,
            first=first,
            after=after,
        )

    @strawberry.field(description="One MCP server the tenant sees.")
    async def mcp_server(self, info: Ctx, id: strawberry.ID) -> McpServer:
        p = await info.context.principal()
        view = await info.context.ask(contract.GetMcpServer(tenant_id=p.tenant_id, id=str(id)))
        return McpServer.of(view)

    @strawberry.field(
        description="The tool catalog: tools of the servers the tenant sees, in sync order; "
        "serverId keeps one server's, search matches the exposed name, title or description "
        "(case-insensitive), status keeps one status (REMOVED tools are listed too)."
    )
    async def mcp_tools(
        self,
        info: Ctx,
        server_id: strawberry.ID | None = None,
        search: str | None = None,
        status: McpToolStatus | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[McpTool]:
        p = await info.context.principal()
        if server_id is not None:  # another tenant's server is NOT_FOUND, not an empty list
            await info.context.ask(contract.GetMcpServer(tenant_id=p.tenant_id, id=str(server_id)))
        page = await info.context.ask(
            tools_contract.ListMcpTools(
                tenant_id=p.tenant_id,
                server_id=None if server_id is None else str(server_id),
                search=search,
                status=None if status is None else status.value,
                first=first,
                after=after,
            )
        )
        return connection(page, McpTool.of)


@strawberry.type
class McpServerMutation:
    @strawberry.mutation(description="Register an MCP server of the tenant's own.")
    async def register_mcp_server(self, info: Ctx, input: RegisterMcpServerInput) -> McpServer:
        async def run(p: Principal) -> contract.McpServerView:
            return await info.context.ask(
                contract.RegisterMcpServer(
                    tenant_id=p.tenant_id,
                    name=input.name,
                    url=input.url,
                    description=input.description,
                    enabled=input.enabled,
                    auth_secret_name=input.auth_secret_name,
                    created_by=p.member_id,
                )
            )

        view = await guarded(info, action="mcp_server.create", resource_type="mcp_server", run=run)
        return McpServer.of(view)

    @strawberry.mutation(
        description="Change the given fields of one of the tenant's own MCP servers (platform "
        "servers are FORBIDDEN). Sync it after changing its URL."
    )
    async def update_mcp_server(self, info: Ctx, input: UpdateMcpServerInput) -> McpServer:
        server_id = str(input.id)
        clear = input.auth_secret_name is None
        secret = input.auth_secret_name if isinstance(input.auth_secret_name, str) else None

        async def run(p: Principal) -> contract.McpServerView:
            return await info.context.ask(
                contract.UpdateMcpServer(
                    tenant_id=p.tenant_id,
                    id=server_id,
                    name=input.name,
                    url=input.url,
                    description=input.description,
                    enabled=input.enabled,
                    auth_secret_name=secret,
                    clear_auth_secret_name=clear,
                )
            )

        view = await guarded(
            info,
            action="mcp_server.update",
            resource_type="mcp_server",
            resource_id=server_id,
            run=run,
        )
        return McpServer.of(view)

    @strawberry.mutation(
        description="Disable one of the tenant's own MCP servers: plans no longer use it; its "
        "catalog stays. updateMcpServer(enabled: true) enables it again."
    )
    async def disable_mcp_server(self, info: Ctx, input: DisableMcpServerInput) -> McpServer:
        server_id = str(input.id)

        async def run(p: Principal) -> contract.McpServerView:
            return await info.context.ask(
                contract.DisableMcpServer(tenant_id=p.tenant_id, id=server_id)
            )

        view = await guarded(
            info,
            action="mcp_server.disable",
            resource_type="mcp_server",
            resource_id=server_id,
            run=run,
        )
        return McpServer.of(view)

    @strawberry.mutation(
        description="Read the server's tools (every page of tools/list) into the catalog: "
        "new tools are added, changed ones marked CHANGED (both hashes kept), vanished ones "
        "REMOVED. An unreachable or slow server is UNAVAILABLE or TIMEOUT and the catalog is "
        "left as it was (lastSyncError says why)."
    )
    async def sync_mcp_server(self, info: Ctx, input: SyncMcpServerInput) -> McpServer:
        server_id = str(input.id)
        ctx = info.context

        async def run(p: Principal) -> contract.McpServerView:
            return await ctx.runtime.ask(
                contract.SyncMcpServer(tenant_id=p.tenant_id, id=server_id),
                timeout=contract.SYNC_ASK_TIMEOUT_SECONDS,
                trace_id=ctx.trace_id,
            )

        view = await guarded(
            info,
            action="mcp_server.sync",
            resource_type="mcp_server",
            resource_id=server_id,
            run=run,
        )
        return McpServer.of(view)
