"""api-gateway's MCP tool catalog (``mcp_tools``): written by mcp-router-service's syncs, read
by the gateway (``mcpTools``) and by the router's planner.

A sync (:class:`SyncCatalog`) replaces what the catalog knows of one server in one transaction
and runs alone in this actor (a plain handler): rows are matched by the tool's original name
within the server, so a renamed server keeps its rows. Statuses are what that sync found (see
:mod:`synapsex.contracts.mcp_tools`). Two processes syncing the same server at once: the
second's inserts hit the unique ``(scope_key, exposed_name)`` and it answers ``CONFLICT``
(nothing of it is written); a retry then sees the first's rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from synapsex.contracts.common import Page, as_utc
from synapsex.contracts.errors import Conflict, NotFound
from synapsex.contracts.mcp_tools import (
    ACTIVE,
    CHANGED,
    MAX_CATALOG_TOOLS,
    PLATFORM_SCOPE,
    REMOVED,
    CatalogToolList,
    CatalogTools,
    GetMcpTool,
    ListMcpTools,
    McpToolView,
    RenameCatalogServer,
    SyncCatalog,
    SyncResult,
    canonical_json,
    definition_sha256,
    exposed_name,
)
from synapsex.runtime import handler, new_id
from synapsex.runtime.orm import paginate

from .models import McpTool


def tool_view(row: McpTool) -> McpToolView:
    return McpToolView(
        id=row.id,
        scope="platform" if row.scope_key == PLATFORM_SCOPE else "tenant",
        server_id=row.server_id,
        server_name=row.server_name,
        name=row.exposed_name,
        original_name=row.original_name,
        title=row.title,
        description=row.description,
        input_schema=json.loads(row.input_schema),
        annotations=json.loads(row.annotations),
        definition_sha256=row.definition_sha256,
        previous_sha256=row.previous_sha256,
        status=row.status,
        synced_at=as_utc(row.synced_at),
    )


def _scopes(tenant_id: str) -> list[str]:
    return [PLATFORM_SCOPE, tenant_id]


class CatalogHandlers:
    """The catalog's handlers, mixed into ``ApiGatewayActor``."""

    @handler
    async def sync_catalog(self, msg: SyncCatalog) -> SyncResult:
        now = datetime.now(UTC)
        listed = {tool.name: tool for tool in msg.tools}
        added = changed = removed = unchanged = 0
        try:
            async with in_transaction() as conn:
                rows = {
                    row.original_name: row
                    for row in await McpTool.filter(
                        scope_key=msg.scope_key, server_id=msg.server_id
                    ).using_db(conn)
                }
                # a renamed server: its rows take the new name before anything is inserted
                for row in rows.values():
                    if row.server_name != msg.server_name:
                        row.server_name = msg.server_name
                        row.exposed_name = exposed_name(msg.server_name, row.original_name)
                        await (
                            McpTool.filter(id=row.id)
                            .using_db(conn)
                            .update(server_name=row.server_name, exposed_name=row.exposed_name)
                        )
                new: list[McpTool] = []
                same: list[str] = []
                for name, tool in listed.items():
                    digest = definition_sha256(tool)
                    row = rows.get(name)
                    if row is None:
                        added += 1
                        new.append(self._tool_row(msg, tool, digest, now))
                    elif row.definition_sha256 == digest:
                        if row.status == REMOVED:
                            added += 1
                        else:
                            unchanged += 1
                        same.append(row.id)
                    else:
                        changed += 1
                        await (
                            McpTool.filter(id=row.id)
                            .using_db(conn)
                            .update(
                                **self._definition(tool),
                                definition_sha256=digest,
                                previous_sha256=row.definition_sha256,
                                status=CHANGED,
                                synced_at=now,
                                updated_at=now,
                            )
                        )
                if same:
                    await (
                        McpTool.filter(id__in=same)
                        .using_db(conn)
                        .update(status=ACTIVE, synced_at=now)
                    )
                gone = [
                    row.id
                    for name, row in rows.items()
                    if name not in listed and row.status != REMOVED
                ]
                if gone:
                    removed = len(gone)
                    await (
                        McpTool.filter(id__in=gone)
                        .using_db(conn)
                        .update(status=REMOVED, synced_at=now, updated_at=now)
                    )
                if new:
                    await McpTool.bulk_create(new, using_db=conn)
        except IntegrityError:
            raise Conflict(
                "the catalog of this server changed meanwhile (another sync); try again",
                field="id",
            ) from None
        return SyncResult(added=added, changed=changed, removed=removed, unchanged=unchanged)

    @staticmethod
    def _definition(tool: Any) -> dict[str, Any]:
        return {
            "title": tool.title,
            "description": tool.description,
            "input_schema": canonical_json(tool.input_schema),
            "annotations": canonical_json(tool.annotations),
        }

    def _tool_row(self, msg: SyncCatalog, tool: Any, digest: str, now: datetime) -> McpTool:
        return McpTool(
            id=new_id("mct"),
            scope_key=msg.scope_key,
            server_id=msg.server_id,
            server_name=msg.server_name,
            original_name=tool.name,
            exposed_name=exposed_name(msg.server_name, tool.name),
            definition_sha256=digest,
            previous_sha256=None,
            status=ACTIVE,
            synced_at=now,
            created_at=now,
            updated_at=now,
            **self._definition(tool),
        )

    @handler
    async def rename_catalog_server(self, msg: RenameCatalogServer) -> int:
        renamed = 0
        try:
            async with in_transaction() as conn:
                rows = await McpTool.filter(
                    scope_key=msg.scope_key, server_id=msg.server_id
                ).using_db(conn)
                for row in rows:
                    if row.server_name == msg.server_name:
                        continue
                    await (
                        McpTool.filter(id=row.id)
                        .using_db(conn)
                        .update(
                            server_name=msg.server_name,
                            exposed_name=exposed_name(msg.server_name, row.original_name),
                        )
                    )
                    renamed += 1
        except IntegrityError:
            raise Conflict(
                "another server already exposes these tool names", field="name"
            ) from None
        return renamed

    @handler(read_only=True)
    async def list_mcp_tools(self, msg: ListMcpTools) -> Page[McpToolView]:
        query = McpTool.filter(scope_key__in=_scopes(msg.tenant_id))
        if msg.server_id is not None:
            query = query.filter(server_id=msg.server_id)
        if msg.status is not None:
            query = query.filter(status=msg.status)
        if msg.search is not None:
            query = query.filter(
                Q(exposed_name__icontains=msg.search)
                | Q(title__icontains=msg.search)
                | Q(description__icontains=msg.search)
            )
        return await paginate(query, first=msg.first, after=msg.after, view=tool_view)

    @handler(read_only=True)
    async def catalog_tools(self, msg: CatalogTools) -> CatalogToolList:
        if not msg.server_ids:
            return CatalogToolList(tools=())
        rows = (
            await McpTool.filter(
                scope_key__in=_scopes(msg.tenant_id), server_id__in=list(msg.server_ids)
            )
            .exclude(status=REMOVED)
            .order_by("server_id", "exposed_name")
            .limit(MAX_CATALOG_TOOLS)
        )
        return CatalogToolList(tools=tuple(tool_view(row) for row in rows))

    @handler(read_only=True)
    async def get_mcp_tool(self, msg: GetMcpTool) -> McpToolView:
        rows = await McpTool.filter(
            Q(exposed_name=msg.name) | Q(original_name=msg.name),
            scope_key__in=_scopes(msg.tenant_id),
            server_id=msg.server_id,
        )
        if not rows:
            raise NotFound("MCP tool not found", field="name", name=msg.name)
        rows.sort(key=lambda row: row.exposed_name != msg.name)  # the exposed name first
        return tool_view(rows[0])
