"""mcp-router-service: the registry of MCP servers and their sync into api-gateway's catalog.

Visibility is one rule applied everywhere: a tenant sees the rows whose ``scope_key`` is the
platform's (``*``) or its own id; anything else is ``NOT_FOUND``. Platform rows are changed only
by seeding (the environment): a tenant's update is ``FORBIDDEN``.

What must hold across processes is in the database: one server per scope and name (a unique
constraint; a tenant's name is also checked against the platform's before insert: platform
rows are only ever added by seeding). Every write is one conditional statement on the row, so
all handlers may run side by side (``concurrent=True``); a sync in particular waits on a remote
server for up to ``SYNAPSEX_MCP_TIMEOUT`` and must not hold the actor.

A sync writes the catalog first (api-gateway's :class:`SyncCatalog`, one transaction there),
then the server row and its ``mcp.server.synced`` event. A failed listing never reaches the
catalog: the row records ``last_sync_error`` and ``mcp.server.sync_failed`` is published.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import structlog
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from synapsex.actors.domain_events import Outbox
from synapsex.actors.outbound import check_url
from synapsex.contracts.common import Page, as_utc
from synapsex.contracts.errors import (
    Conflict,
    ContractError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unavailable,
)
from synapsex.contracts.mcp import (
    MAX_VISIBLE_SERVERS,
    MCP_SERVER_DISABLED,
    MCP_SERVER_REGISTERED,
    MCP_SERVER_SYNC_FAILED,
    MCP_SERVER_SYNCED,
    MCP_SERVER_UPDATED,
    DisableMcpServer,
    GetMcpServer,
    ListMcpServers,
    ListVisibleMcpServers,
    McpServerConnection,
    McpServerList,
    McpServerView,
    RegisterMcpServer,
    ResolveMcpServer,
    SyncCounts,
    SyncMcpServer,
    UpdateMcpServer,
    server_event,
)
from synapsex.contracts.mcp_tools import RenameCatalogServer, SyncCatalog
from synapsex.contracts.secrets import GetSecret, GetSecretValue
from synapsex.runtime import handler, new_id
from synapsex.runtime.orm import paginate

from . import client
from .models import PLATFORM_SCOPE, McpServer
from .seed import McpSettings, auth_env_name

log = structlog.get_logger("synapsex.mcp_router")

MAX_ERROR_LENGTH = 500
#: a catalog write of up to 1,000 tools (each changed one is an UPDATE of its own)
CATALOG_TIMEOUT_SECONDS = 60.0


def server_view(row: McpServer) -> McpServerView:
    last = json.loads(row.last_sync) if row.last_sync else None
    return McpServerView(
        id=row.id,
        scope="platform" if row.scope_key == PLATFORM_SCOPE else "tenant",
        name=row.name,
        url=row.url,
        description=row.description,
        enabled=row.enabled,
        auth_secret_name=row.auth_secret_name,
        last_synced_at=None if row.last_synced_at is None else as_utc(row.last_synced_at),
        last_sync_error=row.last_sync_error,
        tool_count=row.tool_count,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        last_sync=None if last is None else SyncCounts(**last),
        created_by=row.created_by,
    )


def authorization(value: str) -> str:
    """The ``Authorization`` header for a stored value: as is when it names a scheme
    (``Bearer abc``, ``Basic …``), else a bearer token."""
    value = value.strip()
    if any(c in value for c in "\r\n\0"):
        raise Unavailable("the MCP server's auth value holds a line break")
    return value if " " in value else f"Bearer {value}"


def _scopes(tenant_id: str) -> list[str]:
    return [PLATFORM_SCOPE, tenant_id]


def _name_taken(name: str) -> Conflict:
    return Conflict(f"an MCP server named {name!r} already exists", field="name")


class RegistryHandlers:
    """The registry's handlers, mixed into :class:`~.actor.McpRouterActor` (which provides
    ``outbox`` and ``mcp_settings`` before the first message)."""

    actor_runtime: Any
    outbox: Outbox
    mcp_settings: McpSettings

    # ------------------------------------------------------------------ lookups

    async def _visible_server(self, tenant_id: str, server_id: str) -> McpServer:
        row = await McpServer.filter(id=server_id, scope_key__in=_scopes(tenant_id)).first()
        if row is None:
            raise NotFound("MCP server not found", field="id", id=server_id)
        return row

    async def _own_server(self, tenant_id: str, server_id: str) -> McpServer:
        row = await self._visible_server(tenant_id, server_id)
        if row.scope_key != tenant_id:
            raise Forbidden(
                "platform MCP servers are managed by the operator, not by tenants", field="id"
            )
        return row

    async def _check_url(self, url: str) -> None:
        """The address rules every service shares, for a tenant's server (unless private
        networks are allowed, the host must resolve, and only to public addresses)."""
        await check_url(
            url, allow_private=self.mcp_settings.allow_private_networks, who="MCP servers"
        )

    async def _check_secret(self, tenant_id: str, name: str) -> None:
        try:
            await self.actor_runtime.ask(GetSecret(tenant_id=tenant_id, name=name))
        except NotFound:
            raise InvalidInput(
                "authSecretName", f"the tenant has no secret named {name!r} (putSecret first)"
            ) from None

    async def _headers(self, row: McpServer) -> dict[str, str]:
        """The auth header of a server: its tenant's secret, or for a platform server the
        environment. Never logged."""
        if row.scope_key == PLATFORM_SCOPE:
            value = self.actor_runtime.settings.environ.get(auth_env_name(row.name), "")
            return {"Authorization": authorization(value)} if value.strip() else {}
        if row.auth_secret_name is None:
            return {}
        try:
            secret = await self.actor_runtime.ask(
                GetSecretValue(tenant_id=row.scope_key, name=row.auth_secret_name)
            )
        except NotFound:
            raise Conflict(
                f"the server's auth secret {row.auth_secret_name!r} does not exist any more; "
                "put it again or change authSecretName",
                field="authSecretName",
            ) from None
        return {"Authorization": authorization(secret.value)}

    def _allow_private(self, row: McpServer) -> bool:
        """Platform servers are the operator's (trusted, e.g. on localhost); tenants' servers
        go through the address guard unless private networks are allowed."""
        return row.scope_key == PLATFORM_SCOPE or self.mcp_settings.allow_private_networks

    # ------------------------------------------------------------------ reads

    @handler(read_only=True)
    async def get_mcp_server(self, msg: GetMcpServer) -> McpServerView:
        return server_view(await self._visible_server(msg.tenant_id, msg.id))

    @handler(read_only=True)
    async def list_mcp_servers(self, msg: ListMcpServers) -> Page[McpServerView]:
        query = McpServer.filter(scope_key__in=_scopes(msg.tenant_id))
        if msg.enabled is not None:
            query = query.filter(enabled=msg.enabled)
        if msg.search is not None:
            query = query.filter(
                Q(name__icontains=msg.search) | Q(description__icontains=msg.search)
            )
        return await paginate(query, first=msg.first, after=msg.after, view=server_view)

    @handler(read_only=True)
    async def list_visible_mcp_servers(self, msg: ListVisibleMcpServers) -> McpServerList:
        query = McpServer.filter(scope_key__in=_scopes(msg.tenant_id))
        if msg.server_ids:
            query = query.filter(id__in=list(msg.server_ids))
        if msg.enabled_only:
            query = query.filter(enabled=True, url__isnull=False)
        rows = await query.order_by("id").limit(MAX_VISIBLE_SERVERS)
        return McpServerList(servers=tuple(server_view(row) for row in rows))

    @handler(read_only=True)
    async def resolve_mcp_server(self, msg: ResolveMcpServer) -> McpServerConnection:
        row = await self._visible_server(msg.tenant_id, msg.id)
        if not row.enabled or row.url is None:
            raise Conflict(f"the MCP server {row.name} is disabled", field="id")
        return McpServerConnection(
            server=server_view(row),
            url=row.url,
            headers=await self._headers(row),
            allow_private=self._allow_private(row),
        )

    # ------------------------------------------------------------------ writes

    @handler(concurrent=True)  # the unique constraint decides between racing registrations
    async def register_mcp_server(self, msg: RegisterMcpServer) -> McpServerView:
        taken = await McpServer.filter(scope_key__in=_scopes(msg.tenant_id), name=msg.name).exists()
        if taken:
            raise _name_taken(msg.name)
        await self._check_url(msg.url)
        if msg.auth_secret_name is not None:
            await self._check_secret(msg.tenant_id, msg.auth_secret_name)
        now = datetime.now(UTC)
        try:
            async with in_transaction() as conn:
                row = await McpServer.create(
                    id=new_id("mcs"),
                    scope_key=msg.tenant_id,
                    tenant_id=msg.tenant_id,
                    name=msg.name,
                    url=msg.url,
                    description=msg.description,
                    enabled=msg.enabled,
                    auth_secret_name=msg.auth_secret_name,
                    created_by=msg.created_by,
                    created_at=now,
                    updated_at=now,
                    using_db=conn,
                )
                view = server_view(row)
                await self.outbox.stage(
                    conn, msg.tenant_id, MCP_SERVER_REGISTERED, server_event(view), key=row.id
                )
        except IntegrityError:  # registered meanwhile by another process
            raise _name_taken(msg.name) from None
        await self.outbox.flush()
        return view

    @handler(concurrent=True)  # one conditional update on the tenant's row
    async def update_mcp_server(self, msg: UpdateMcpServer) -> McpServerView:
        row = await self._own_server(msg.tenant_id, msg.id)
        changes: dict[str, Any] = {}
        if msg.name is not None and msg.name != row.name:
            if await McpServer.filter(scope_key__in=_scopes(msg.tenant_id), name=msg.name).exists():
                raise _name_taken(msg.name)
            changes["name"] = msg.name
        if msg.url is not None and msg.url != row.url:
            await self._check_url(msg.url)
            changes["url"] = msg.url
        if msg.description is not None and msg.description != row.description:
            changes["description"] = msg.description
        if msg.enabled is not None and msg.enabled != row.enabled:
            changes["enabled"] = msg.enabled
        if msg.clear_auth_secret_name and row.auth_secret_name is not None:
            changes["auth_secret_name"] = None
        elif msg.auth_secret_name is not None and msg.auth_secret_name != row.auth_secret_name:
            await self._check_secret(msg.tenant_id, msg.auth_secret_name)
            changes["auth_secret_name"] = msg.auth_secret_name
        if not changes:
            return server_view(row)
        changed = sorted(changes)
        changes["updated_at"] = datetime.now(UTC)
        try:
            async with in_transaction() as conn:
                await (
                    McpServer.filter(id=row.id, scope_key=msg.tenant_id)
                    .using_db(conn)
                    .update(**changes)
                )
                row = await McpServer.filter(id=row.id).using_db(conn).get()
                view = server_view(row)
                await self.outbox.stage(
                    conn,
                    msg.tenant_id,
                    MCP_SERVER_UPDATED,
                    server_event(view, changed=changed),
                    key=row.id,
                )
        except IntegrityError:
            raise _name_taken(msg.name or "") from None
        await self.outbox.flush()
        if "name" in changes:
            await self._rename_catalog(row)
        return view

    async def _rename_catalog(self, row: McpServer) -> None:
        """The catalog's exposed names follow a renamed server (a failure is logged: the
        next sync renames them too)."""
        try:
            await self.actor_runtime.ask(
                RenameCatalogServer(scope_key=row.scope_key, server_id=row.id, server_name=row.name)
            )
        except ContractError as exc:
            log.warning(
                "the catalog keeps the old server name until the next sync",
                server_id=row.id,
                error=f"{exc.code}: {exc.message}",
            )

    @handler(concurrent=True)  # one conditional update
    async def disable_mcp_server(self, msg: DisableMcpServer) -> McpServerView:
        row = await self._own_server(msg.tenant_id, msg.id)
        if not row.enabled:
            return server_view(row)
        now = datetime.now(UTC)
        async with in_transaction() as conn:
            done = (
                await McpServer.filter(id=row.id, scope_key=msg.tenant_id, enabled=True)
                .using_db(conn)
                .update(enabled=False, updated_at=now)
            )
            row = await McpServer.filter(id=row.id).using_db(conn).get()
            view = server_view(row)
            if done:
                await self.outbox.stage(
                    conn, msg.tenant_id, MCP_SERVER_DISABLED, server_event(view), key=row.id
                )
        if done:
            await self.outbox.flush()
        return view

    @handler(concurrent=True)  # waits on the remote server; writes are conditional updates
    async def sync_mcp_server(self, msg: SyncMcpServer) -> McpServerView:
        row = await self._visible_server(msg.tenant_id, msg.id)
        if not row.enabled or row.url is None:
            raise Conflict(f"the MCP server {row.name} is disabled; enable it first", field="id")
        try:
            headers = await self._headers(row)
            listed = await client.list_tools_detailed(
                row.url,
                headers,
                self.mcp_settings.timeout_seconds,
                allow_private=self._allow_private(row),
            )
        except ContractError as exc:
            await self._sync_failed(msg.tenant_id, row, exc)
            raise
        result = await self.actor_runtime.ask(
            SyncCatalog(
                scope_key=row.scope_key,
                server_id=row.id,
                server_name=row.name,
                tools=listed.tools,
            ),
            timeout=CATALOG_TIMEOUT_SECONDS,
        )
        counts = SyncCounts(
            added=result.added,
            changed=result.changed,
            removed=result.removed,
            unchanged=result.unchanged,
            skipped=len(listed.skipped),
            pages=listed.pages,
        )
        now = datetime.now(UTC)
        last_sync = json.dumps(
            {
                "added": counts.added,
                "changed": counts.changed,
                "removed": counts.removed,
                "unchanged": counts.unchanged,
                "skipped": counts.skipped,
                "pages": counts.pages,
            }
        )
        async with in_transaction() as conn:
            await (
                McpServer.filter(id=row.id)
                .using_db(conn)
                .update(
                    last_synced_at=now,
                    last_sync_error=None,
                    last_sync=last_sync,
                    tool_count=len(listed.tools),
                )
            )
            row = await McpServer.filter(id=row.id).using_db(conn).get()
            view = server_view(row)
            await self.outbox.stage(
                conn,
                msg.tenant_id,
                MCP_SERVER_SYNCED,
                server_event(
                    view,
                    added=counts.added,
                    changed=counts.changed,
                    removed=counts.removed,
                    unchanged=counts.unchanged,
                    skipped=list(listed.skipped[:20]),
                ),
                key=row.id,
            )
        await self.outbox.flush()
        log.info(
            "MCP server synced",
            server_id=row.id,
            server=row.name,
            added=counts.added,
            changed=counts.changed,
            removed=counts.removed,
            unchanged=counts.unchanged,
        )
        return view

    async def _sync_failed(self, tenant_id: str, row: McpServer, exc: ContractError) -> None:
        error = f"{exc.code}: {exc.message}"[:MAX_ERROR_LENGTH]
        async with in_transaction() as conn:
            await McpServer.filter(id=row.id).using_db(conn).update(last_sync_error=error)
            await self.outbox.stage(
                conn,
                tenant_id,
                MCP_SERVER_SYNC_FAILED,
                {"id": row.id, "name": row.name, "error": error},
                key=row.id,
            )
        await self.outbox.flush()
        log.info("MCP server sync failed", server_id=row.id, server=row.name, error=error)
