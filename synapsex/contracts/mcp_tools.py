"""api-gateway's MCP tool catalog (``mcp_tools``): the tools of every registered MCP server, as
the MCP router exposes them.

mcp-router-service fills it with :class:`SyncCatalog` after each successful ``tools/list`` of a
server; the gateway reads it (``mcpTools``) and the router's planner reads it
(:class:`CatalogTools`, :class:`GetMcpTool`).

* A tool is exposed as ``<server>__<tool>`` (:func:`exposed_name`): the server's name, two
  underscores, the tool's own name. Server names never contain ``__`` nor end with ``_``, so
  the server part is everything before the first ``__`` and two servers cannot collide.
* ``scope``: ``platform`` for the tools of platform servers (every tenant sees them),
  ``tenant`` for a tenant's own servers (only it sees them; another tenant's are NOT_FOUND).
* ``definition_sha256``: :func:`definition_sha256`, the SHA-256 of the canonical JSON of
  ``{name, title, description, inputSchema, annotations}`` (sorted keys, no white space,
  UTF-8, non-ASCII kept as is). A plan is bound to it.
* ``status`` is what the last sync found: ``ACTIVE`` (new, or as before), ``CHANGED`` (its
  definition differs from the previous sync's: ``previous_sha256`` keeps the old hash),
  ``REMOVED`` (the server no longer lists it; the row is kept, with its last definition).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from synapsex.contracts.common import PageRequest, check_choice, check_text
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply

SERVICE = "api-gateway"

ACTIVE = "ACTIVE"
CHANGED = "CHANGED"
REMOVED = "REMOVED"
TOOL_STATUSES: tuple[str, ...] = (ACTIVE, CHANGED, REMOVED)
TOOL_SCOPES: tuple[str, ...] = ("platform", "tenant")
#: ``scope_key`` of the platform's servers and tools
PLATFORM_SCOPE = "*"
#: the separator of the server's name and the tool's name in an exposed name
SEPARATOR = "__"

#: tool names as the MCP specification allows them (2025-11-25: 1 to 128 of these)
TOOL_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
MAX_TOOLS_PER_SERVER = 1_000
#: what :class:`CatalogTools` answers at most
MAX_CATALOG_TOOLS = 5_000
MAX_TITLE_LENGTH = 300
MAX_DESCRIPTION_LENGTH = 10_000
#: the canonical JSON of an input schema or of annotations, at most
MAX_SCHEMA_BYTES = 64 * 1024
MAX_SEARCH_LENGTH = 200


def exposed_name(server_name: str, tool_name: str) -> str:
    """``<server>__<tool>``: the name the router exposes a tool under."""
    return f"{server_name}{SEPARATOR}{tool_name}"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no white space (non-ASCII kept, UTF-8 when encoded)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------- definitions


class ToolDefinition(Reply):
    """One tool as an MCP server lists it (``tools/list``), reduced to what is pinned."""

    #: the tool's own name on its server
    name: str
    title: str | None
    #: ``""`` when the server gives none
    description: str
    #: JSON Schema of the arguments
    input_schema: dict[str, Any]
    #: the MCP annotations as listed (``readOnlyHint``, ``destructiveHint``, ...); ``{}`` if none
    annotations: dict[str, Any]


def definition_sha256(tool: ToolDefinition) -> str:
    """SHA-256 (hex) of the canonical JSON of ``{name, title, description, inputSchema,
    annotations}`` (keys sorted at every level, separators ``,`` and ``:``, UTF-8)."""
    document = {
        "name": tool.name,
        "title": tool.title,
        "description": tool.description,
        "inputSchema": tool.input_schema,
        "annotations": tool.annotations,
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def check_tool_definition(tool: ToolDefinition, field: str = "tools") -> None:
    """A definition the catalog can store: a valid name and bounded sizes."""
    if not TOOL_NAME_RE.fullmatch(tool.name):
        raise InvalidInput(field, f"tool name {tool.name[:140]!r} is not a valid MCP tool name")
    if tool.title is not None and len(tool.title) > MAX_TITLE_LENGTH:
        raise InvalidInput(field, f"tool {tool.name}: title longer than {MAX_TITLE_LENGTH}")
    if len(tool.description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput(
            field, f"tool {tool.name}: description longer than {MAX_DESCRIPTION_LENGTH}"
        )
    for what, value in (("input schema", tool.input_schema), ("annotations", tool.annotations)):
        if len(canonical_json(value).encode("utf-8")) > MAX_SCHEMA_BYTES:
            raise InvalidInput(field, f"tool {tool.name}: {what} larger than {MAX_SCHEMA_BYTES} B")


# ---------------------------------------------------------------------------- replies


class McpToolView(Reply):
    """One catalog entry as a tenant sees it."""

    id: str
    #: ``"platform"`` or ``"tenant"``
    scope: str
    server_id: str
    server_name: str
    #: the exposed name ``<server>__<tool>``
    name: str
    #: the tool's name on its server (what a call sends)
    original_name: str
    title: str | None
    description: str
    input_schema: dict[str, Any]
    annotations: dict[str, Any]
    definition_sha256: str
    #: the hash before the last change (``None`` if it never changed)
    previous_sha256: str | None
    #: ``ACTIVE``, ``CHANGED`` or ``REMOVED`` (see the module docstring)
    status: str
    synced_at: datetime


class SyncResult(Reply):
    """How many tools a sync added, changed, removed and found unchanged."""

    added: int
    changed: int
    removed: int
    unchanged: int


class CatalogToolList(Reply):
    tools: tuple[McpToolView, ...]


# ---------------------------------------------------------------------------- messages


class SyncCatalog(Message, service=SERVICE):
    """Replace what the catalog knows of one server by ``tools`` (its complete ``tools/list``),
    in one transaction: new tools are added ``ACTIVE``; a tool whose :func:`definition_sha256`
    differs becomes ``CHANGED`` (``previous_sha256`` keeps the old hash); a tool no longer
    listed becomes ``REMOVED``; the rest are ``ACTIVE``. Sent by mcp-router-service only
    (``scope_key`` is ``*`` for a platform server, else the owning tenant's id). Replies
    :class:`SyncResult`."""

    scope_key: str
    server_id: str
    server_name: str
    tools: tuple[ToolDefinition, ...]

    def validate(self) -> None:
        check_text(self.scope_key, "scope_key", max_length=40)
        check_text(self.server_id, "server_id", max_length=40)
        check_text(self.server_name, "server_name", max_length=100)
        if len(self.tools) > MAX_TOOLS_PER_SERVER:
            raise InvalidInput("tools", f"at most {MAX_TOOLS_PER_SERVER} tools per server")
        seen: set[str] = set()
        for tool in self.tools:
            if not isinstance(tool, ToolDefinition):
                raise InvalidInput("tools", "must hold ToolDefinition items")
            check_tool_definition(tool)
            if tool.name in seen:
                raise InvalidInput("tools", f"tool {tool.name} is listed twice")
            seen.add(tool.name)


class RenameCatalogServer(Message, service=SERVICE):
    """A server was renamed: its tools take the new ``server_name`` and exposed names
    ``<server_name>__<tool>``. Sent by mcp-router-service only. Replies the number of tools
    renamed (``int``)."""

    scope_key: str
    server_id: str
    server_name: str

    def validate(self) -> None:
        check_text(self.scope_key, "scope_key", max_length=40)
        check_text(self.server_id, "server_id", max_length=40)
        check_text(self.server_name, "server_name", max_length=100)


class ListMcpTools(PageRequest, service=SERVICE):
    """Replies ``Page[McpToolView]``: the tools ``tenant_id`` sees (platform servers' and its
    own), ordered by id, narrowed to one server, a status, and ``search`` (a case-insensitive
    substring of the exposed name, the title or the description)."""

    tenant_id: str
    server_id: str | None = None
    search: str | None = None
    status: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        check_text(self.tenant_id, "tenant_id", max_length=40)
        if self.server_id is not None:
            check_text(self.server_id, "serverId", max_length=40)
        if self.search is not None:
            check_text(self.search, "search", max_length=MAX_SEARCH_LENGTH)
        if self.status is not None:
            check_choice(self.status, TOOL_STATUSES, "status")


class CatalogTools(Message, service=SERVICE):
    """Every tool not ``REMOVED`` of ``server_ids`` that ``tenant_id`` sees, for planning
    (at most :data:`MAX_CATALOG_TOOLS`, by server then exposed name). Servers the tenant does
    not see contribute nothing. Replies :class:`CatalogToolList`."""

    tenant_id: str
    server_ids: tuple[str, ...]

    def validate(self) -> None:
        check_text(self.tenant_id, "tenant_id", max_length=40)
        if len(self.server_ids) > 1_000:
            raise InvalidInput("serverIds", "at most 1000 servers")


class GetMcpTool(Message, service=SERVICE):
    """One tool of one server that ``tenant_id`` sees, by exposed or original name (a
    ``REMOVED`` one included); ``NOT_FOUND`` otherwise. Replies :class:`McpToolView`."""

    tenant_id: str
    server_id: str
    name: str

    def validate(self) -> None:
        check_text(self.tenant_id, "tenant_id", max_length=40)
        check_text(self.server_id, "serverId", max_length=40)
        check_text(self.name, "name", max_length=310)


__all__ = [
    "ACTIVE",
    "CHANGED",
    "MAX_TOOLS_PER_SERVER",
    "PLATFORM_SCOPE",
    "REMOVED",
    "SERVICE",
    "TOOL_STATUSES",
    "CatalogToolList",
    "CatalogTools",
    "GetMcpTool",
    "ListMcpTools",
    "McpToolView",
    "RenameCatalogServer",
    "SyncCatalog",
    "SyncResult",
    "ToolDefinition",
    "canonical_json",
    "definition_sha256",
    "exposed_name",
]
