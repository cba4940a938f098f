"""mcp-router-service: the registry of MCP servers (``mcp_servers``), their tool discovery, and
the plans made over their tools (``mcp_plans``).

**Servers.** A *platform* server (``scope`` ``platform``) is configured by the operator and
seen by every tenant; tenants cannot change it (``FORBIDDEN``). The platform seeds two at
first start: ``synapsex-ops-mcp`` and ``qcos-mcp`` (disabled until ``QCOS_MCP_URL`` is set).
A server a tenant registers (``scope`` ``tenant``) is its own: another tenant's is
``NOT_FOUND``. Names are unique among the servers a tenant sees (its own and the platform's).

**Names**: 1 to :data:`MAX_SERVER_NAME_LENGTH` characters of ``a-z 0-9 - _``, starting with a
letter or digit, never containing ``__`` nor ending with ``_`` (the catalog exposes a tool as
``<server>__<tool>``, see :mod:`synapsex.contracts.mcp_tools`).

**URLs**: ``http`` or ``https``, a host, no credentials. A tenant's server must not resolve
to loopback, private, link-local or metadata addresses (the webhook rules) unless
``SYNAPSEX_MCP_ALLOW_PRIVATE_NETWORKS=true``; that is checked when it is registered or its URL
changes, and again on every connection.

**Auth**: ``auth_secret_name`` names a secret of the tenant in the secrets-service; its value
is sent as the ``Authorization`` header (a bare token as ``Bearer <token>``). Platform servers
take theirs from ``SYNAPSEX_MCP_AUTH_<NAME>`` (the name upper-cased, ``-`` as ``_``). Header
values are never returned by the gateway nor logged: only :class:`ResolveMcpServer` (asked by
services) carries them, in a secret field.

**Sync** (:class:`SyncMcpServer`): ``tools/list`` through every page, then the catalog of
api-gateway is replaced by what was listed (added, changed, removed, unchanged). A server that
cannot be reached or does not answer in time leaves the catalog as it was: the sync answers
``UNAVAILABLE`` or ``TIMEOUT`` and the server records ``last_sync_error``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from synapsex.contracts.common import PageRequest, check_text, secret_field
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply
from synapsex.contracts.secrets import check_secret_name

SERVICE = "mcp-router-service"

SERVER_SCOPES: tuple[str, ...] = ("platform", "tenant")
MAX_SERVER_NAME_LENGTH = 63
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 1000
MAX_SEARCH_LENGTH = 200
#: what :class:`ListVisibleMcpServers` answers at most
MAX_VISIBLE_SERVERS = 500

#: the platform servers seeded at first start
OPS_MCP_SERVER = "synapsex-ops-mcp"
QCOS_MCP_SERVER = "qcos-mcp"

MCP_SERVER_REGISTERED = "mcp.server.registered"
MCP_SERVER_UPDATED = "mcp.server.updated"
MCP_SERVER_DISABLED = "mcp.server.disabled"
MCP_SERVER_SYNCED = "mcp.server.synced"
MCP_SERVER_SYNC_FAILED = "mcp.server.sync_failed"

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")


# ---------------------------------------------------------------------------- checks


def check_server_name(value: str, field: str = "name") -> None:
    if not 1 <= len(value) <= MAX_SERVER_NAME_LENGTH:
        raise InvalidInput(field, f"must be 1 to {MAX_SERVER_NAME_LENGTH} characters")
    if not _NAME_RE.fullmatch(value):
        raise InvalidInput(
            field,
            "must be lower-case letters, digits, - or _, starting with a letter or digit "
            "(e.g. github-mcp)",
        )
    if "__" in value or value.endswith("_"):
        raise InvalidInput(
            field, "must not contain __ nor end with _ (tools are exposed as <server>__<tool>)"
        )


def check_server_url(value: str, field: str = "url") -> None:
    """The shape of a server URL (no network): http or https, a host, no credentials."""
    if not value or len(value) > MAX_URL_LENGTH:
        raise InvalidInput(field, f"must be an http or https URL of at most {MAX_URL_LENGTH}")
    if value != value.strip() or any(c.isspace() for c in value):
        raise InvalidInput(field, "must not contain white space")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidInput(field, "is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(field, "must be an http or https URL")
    if not parts.hostname:
        raise InvalidInput(field, "must name a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            field, "must not contain credentials (user:password@); use authSecretName"
        )
    if port is not None and not 0 < port < 65536:
        raise InvalidInput(field, "port must be between 1 and 65535")
    if parts.fragment:
        raise InvalidInput(field, "must not have a fragment (#...)")


def check_description(value: str, field: str = "description") -> None:
    if len(value) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput(field, f"must be at most {MAX_DESCRIPTION_LENGTH} characters")


# ---------------------------------------------------------------------------- replies


class SyncCounts(Reply):
    """What the last successful sync did to the catalog."""

    added: int
    changed: int
    removed: int
    unchanged: int
    #: tools the server listed that the catalog cannot hold (an invalid name, listed twice)
    skipped: int
    #: ``tools/list`` pages read
    pages: int


class McpServerView(Reply):
    """A server as a tenant sees it (never its auth header)."""

    id: str
    #: ``"platform"`` (every tenant sees it, only the operator changes it) or ``"tenant"``
    scope: str
    name: str
    #: ``None`` for a platform server the operator has not configured (``qcos-mcp``)
    url: str | None
    description: str
    enabled: bool
    #: the tenant's secret whose value is the ``Authorization`` header
    auth_secret_name: str | None
    last_synced_at: datetime | None
    #: why the last sync failed (``None`` once one succeeds)
    last_sync_error: str | None
    #: tools of the server in the catalog that are not ``REMOVED``
    tool_count: int
    created_at: datetime
    updated_at: datetime
    #: what the last successful sync did
    last_sync: SyncCounts | None = None
    #: the member who registered it (``None`` for platform servers)
    created_by: str | None = None


class McpServerList(Reply):
    servers: tuple[McpServerView, ...]


class McpServerConnection(Reply):
    """How to reach a server: for services only, never through the gateway, never logged."""

    server: McpServerView
    url: str
    #: the HTTP headers to send (``Authorization`` when the server has one)
    headers: dict[str, str] = secret_field()
    #: ``False``: connect through the address guard (``client.list_tools(...,
    #: allow_private=connection.allow_private)``): tenants' servers unless private networks
    #: are allowed
    allow_private: bool = True


# ---------------------------------------------------------------------------- messages


class RegisterMcpServer(Message, service=SERVICE):
    """Register a server of ``tenant_id``'s own. Replies :class:`McpServerView`; ``CONFLICT``
    on ``name`` when the tenant already sees a server of that name; ``INVALID_INPUT`` on
    ``url`` for a forbidden address, on ``authSecretName`` for an unknown secret."""

    tenant_id: str
    name: str
    url: str
    description: str = ""
    enabled: bool = True
    auth_secret_name: str | None = None
    created_by: str | None = None

    def validate(self) -> None:
        check_text(self.tenant_id, "tenant_id", max_length=40)
        check_server_name(self.name)
        check_server_url(self.url)
        check_description(self.description)
        if self.auth_secret_name is not None:
            check_secret_name(self.auth_secret_name, "authSecretName")


class UpdateMcpServer(Message, service=SERVICE):
    """Change a tenant's own server (``None``: keep; ``clear_auth_secret_name``: remove the
    auth secret). A platform server is ``FORBIDDEN``. Replies :class:`McpServerView`. A new
    name renames its tools at the next sync."""

    tenant_id: str
    id: str
    name: str | None = None
    url: str | None = None
    description: str | None = None
    enabled: bool | None = None
    auth_secret_name: str | None = None
    clear_auth_secret_name: bool = False

    def validate(self) -> None:
        check_text(self.id, "id", max_length=40)
        if self.name is not None:
            check_server_name(self.name)
        if self.url is not None:
            check_server_url(self.url)
        if self.description is not None:
            check_description(self.description)
        if self.auth_secret_name is not None:
            if self.clear_auth_secret_name:
                raise InvalidInput("authSecretName", "cannot both set and clear it")
            check_secret_name(self.auth_secret_name, "authSecretName")


class DisableMcpServer(Message, service=SERVICE):
    """Disable a tenant's own server (plans no longer consider it; its catalog stays).
    A platform server is ``FORBIDDEN``. Replies :class:`McpServerView`."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_text(self.id, "id", max_length=40)


class GetMcpServer(Message, service=SERVICE):
    """A server the tenant sees; ``NOT_FOUND`` otherwise. Replies :class:`McpServerView`."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_text(self.id, "id", max_length=40)


class ListMcpServers(PageRequest, service=SERVICE):
    """Replies ``Page[McpServerView]``: the servers the tenant sees (the platform's and its
    own), oldest first, narrowed by ``enabled`` and ``search`` (a case-insensitive substring
    of the name or description)."""

    tenant_id: str
    enabled: bool | None = None
    search: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        if self.search is not None:
            check_text(self.search, "search", max_length=MAX_SEARCH_LENGTH)


class ListVisibleMcpServers(Message, service=SERVICE):
    """The servers the tenant sees, for planning: all of them, or those of ``server_ids``
    (ids it does not see are left out), enabled ones only unless ``enabled_only`` is false;
    at most :data:`MAX_VISIBLE_SERVERS`, oldest first. Replies :class:`McpServerList`."""

    tenant_id: str
    server_ids: tuple[str, ...] = ()
    enabled_only: bool = True

    def validate(self) -> None:
        if len(self.server_ids) > MAX_VISIBLE_SERVERS:
            raise InvalidInput("serverIds", f"at most {MAX_VISIBLE_SERVERS} servers")


class SyncMcpServer(Message, service=SERVICE):
    """Read the server's tools (every page of ``tools/list``) and write them to the catalog.
    Replies :class:`McpServerView` with ``last_sync``. ``CONFLICT`` for a disabled server;
    ``UNAVAILABLE`` / ``TIMEOUT`` when it cannot be read (the catalog is left as it was and
    ``last_sync_error`` says why)."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_text(self.id, "id", max_length=40)


class ResolveMcpServer(Message, service=SERVICE):
    """How to reach a server the tenant sees and that is enabled: its URL and headers
    (fetched from the secrets-service, or the environment for a platform server). Services
    only. Replies :class:`McpServerConnection`; ``CONFLICT`` for a disabled server,
    ``UNAVAILABLE`` when its auth secret cannot be read."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_text(self.id, "id", max_length=40)


def server_event(view: McpServerView, **extra: Any) -> dict[str, Any]:
    """The payload of the ``mcp.server.*`` events (never a header)."""
    return {
        "id": view.id,
        "scope": view.scope,
        "name": view.name,
        "enabled": view.enabled,
        "tool_count": view.tool_count,
        **extra,
    }


__all__ = [
    "MCP_SERVER_DISABLED",
    "MCP_SERVER_REGISTERED",
    "MCP_SERVER_SYNCED",
    "MCP_SERVER_SYNC_FAILED",
    "MCP_SERVER_UPDATED",
    "OPS_MCP_SERVER",
    "QCOS_MCP_SERVER",
    "SERVICE",
    "DisableMcpServer",
    "GetMcpServer",
    "ListMcpServers",
    "ListVisibleMcpServers",
    "McpServerConnection",
    "McpServerList",
    "McpServerView",
    "RegisterMcpServer",
    "ResolveMcpServer",
    "SyncCounts",
    "SyncMcpServer",
    "UpdateMcpServer",
    "check_server_name",
    "check_server_url",
    "server_event",
]
