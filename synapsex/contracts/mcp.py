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

**Plans** (:class:`PlanMcp`): the tools of the tenant's enabled servers ranked for an intent
(explainable BM25, ``actors/mcp_router/ranking.py``), the best ones checked against the policy
(:func:`tool_policy_action`), the best one not denied chosen with its arguments, bound to its
definition hash and its arguments' hash. States: ``PROPOSED`` → ``APPROVED`` / ``REJECTED``
→ ``EXECUTING`` → ``SUCCEEDED`` / ``FAILED``, and ``STALE`` when the tool's definition changed
after planning; each change publishes ``mcp.plan.*`` (:func:`plan_event`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
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
#: how long the gateway waits for a sync (the router bounds the MCP exchange itself by
#: ``SYNAPSEX_MCP_TIMEOUT``, at most 120 s)
SYNC_ASK_TIMEOUT_SECONDS = 130.0

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


# ---------------------------------------------------------------------------- plans

PLAN_PROPOSED = "PROPOSED"
PLAN_APPROVED = "APPROVED"
PLAN_REJECTED = "REJECTED"
PLAN_EXECUTING = "EXECUTING"
PLAN_SUCCEEDED = "SUCCEEDED"
PLAN_FAILED = "FAILED"
PLAN_STALE = "STALE"
PLAN_STATUSES: tuple[str, ...] = (
    PLAN_PROPOSED,
    PLAN_APPROVED,
    PLAN_REJECTED,
    PLAN_EXECUTING,
    PLAN_SUCCEEDED,
    PLAN_FAILED,
    PLAN_STALE,
)
#: states a plan never leaves
PLAN_FINAL_STATUSES: tuple[str, ...] = (PLAN_REJECTED, PLAN_SUCCEEDED, PLAN_FAILED, PLAN_STALE)

MCP_PLAN_PROPOSED = "mcp.plan.proposed"
MCP_PLAN_UPDATED = "mcp.plan.updated"
MCP_PLAN_APPROVED = "mcp.plan.approved"
MCP_PLAN_REJECTED = "mcp.plan.rejected"
MCP_PLAN_EXECUTING = "mcp.plan.executing"
MCP_PLAN_EXECUTED = "mcp.plan.executed"
MCP_PLAN_FAILED = "mcp.plan.failed"
MCP_PLAN_STALE = "mcp.plan.stale"

MAX_INTENT_LENGTH = 2000
MAX_REJECT_REASON_LENGTH = 500
#: the canonical JSON of a plan's arguments, at most
MAX_ARGUMENTS_BYTES = 64 * 1024
#: candidates a plan keeps (and asks the policy about)
MAX_PLAN_CANDIDATES = 5
#: how much of an execution's result document a plan keeps itself
RESULT_EXCERPT_CHARS = 16_384
#: how long the gateway waits for an execution (each MCP operation inside is bounded by
#: ``SYNAPSEX_MCP_TIMEOUT``, at most 120 s; an execution re-reads the tools then calls one)
EXECUTE_ASK_TIMEOUT_SECONDS = 300.0

_ACTION_UNSAFE_RE = re.compile(r"[^a-z0-9_-]")


def tool_policy_action(exposed: str) -> str:
    """The policy action of calling a tool: ``mcp_tool.<exposed name>.call``, the name
    lower-cased with every character outside ``a-z 0-9 _ -`` (a ``.``) as ``-``; a name too
    long for an action (100 characters) keeps its first 70 characters and 12 hex digits of
    its SHA-256. Tenants write rules on it (``mcp_tool.#`` is every tool)."""
    name = _ACTION_UNSAFE_RE.sub("-", exposed.lower())
    if len(name) > 100 - len("mcp_tool..call"):
        name = name[:70] + "-" + hashlib.sha256(exposed.encode()).hexdigest()[:12]
    return f"mcp_tool.{name}.call"


def check_plan_arguments(value: dict[str, Any], field: str = "arguments") -> None:
    """A JSON object of at most :data:`MAX_ARGUMENTS_BYTES` (canonical JSON)."""
    if not isinstance(value, dict):
        raise InvalidInput(field, "must be a JSON object")
    try:
        encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidInput(field, "must be plain JSON (no NaN or infinity)") from None
    if len(encoded.encode("utf-8")) > MAX_ARGUMENTS_BYTES:
        raise InvalidInput(field, f"must be at most {MAX_ARGUMENTS_BYTES} bytes of JSON")


class PlanReason(Reply):
    """One matched term of the intent in one field of a tool, and what it added to the
    score (the reasons of a candidate add up to its score)."""

    #: the intent's word; ``word→synonym`` when the synonym table added it
    term: str
    weight: float
    #: ``name``, ``title``, ``description``, ``parameters`` or ``server``
    field: str


class PlanPolicy(Reply):
    """What the policy-service said about calling a candidate for the plan's author."""

    effect: str
    reason: str
    policy_id: str | None = None


class PlanCandidate(Reply):
    #: the exposed name ``<server>__<tool>``
    tool: str
    #: the server's name
    server: str
    server_id: str
    score: float
    reasons: tuple[PlanReason, ...]
    policy: PlanPolicy
    #: the tool's ``readOnlyHint`` annotation
    read_only: bool


class PlanChoice(Reply):
    """The tool the plan runs and exactly what it runs with."""

    tool: str
    server: str
    server_id: str
    #: the tool's name on its server
    original_name: str
    arguments: dict[str, Any]
    #: required parameters still without a value (the plan cannot be approved meanwhile)
    missing_arguments: tuple[str, ...]
    #: the pinned definition (catalog hash); execution refuses a tool that changed (STALE)
    tool_definition_sha256: str
    #: SHA-256 of the canonical JSON of ``arguments``
    arguments_sha256: str
    read_only: bool


class McpPlanView(Reply):
    id: str
    tenant_id: str
    status: str
    intent: str
    #: the arguments the caller gave (the chosen tool's also hold what the intent gave)
    arguments: dict[str, Any]
    workspace_id: str | None
    #: the servers asked for (empty: every enabled server the tenant sees)
    server_ids: tuple[str, ...]
    requires_approval: bool
    explanation: str
    candidates: tuple[PlanCandidate, ...]
    chosen: PlanChoice | None
    policy: PlanPolicy | None
    created_by: str | None
    approved_by: str | None
    approved_role: str | None
    approved_at: datetime | None
    rejected_reason: str | None
    executed_at: datetime | None
    duration_ms: float | None
    #: why the execution failed, or why the plan is STALE
    error: str | None
    result_artifact_id: str | None
    created_at: datetime
    updated_at: datetime
    #: the start (:data:`RESULT_EXCERPT_CHARS` characters) of the result document, JSON
    #: ``{"content": [...], "structuredContent": ..., "isError": ...}``; the whole document is
    #: the result artifact when the plan has a workspace
    result_excerpt: str | None = None


class PlanMcp(Message, service=SERVICE):
    """Rank the tools of the enabled servers the tenant sees (or of ``server_ids``) for
    ``intent``, ask the policy about the best ones for ``role``, choose the best not denied,
    fill its arguments (``arguments``, then what the intent gives safely) and store the plan
    ``PROPOSED``. Replies :class:`McpPlanView`. ``INVALID_INPUT`` on ``intent`` when no tool
    matches, on ``arguments.<name>`` for an argument the chosen tool does not take or of the
    wrong type; ``FORBIDDEN`` when the policy denies every matching tool; ``NOT_FOUND`` on
    ``serverIds`` / ``workspaceId`` for what the tenant does not see."""

    tenant_id: str
    member_id: str
    role: str
    intent: str
    arguments: dict[str, Any] = dataclasses.field(default_factory=dict)
    server_ids: tuple[str, ...] = ()
    workspace_id: str | None = None

    def validate(self) -> None:
        check_text(self.intent, "intent", max_length=MAX_INTENT_LENGTH)
        check_plan_arguments(self.arguments)
        if len(self.server_ids) > MAX_VISIBLE_SERVERS:
            raise InvalidInput("serverIds", f"at most {MAX_VISIBLE_SERVERS} servers")
        for server_id in self.server_ids:
            check_text(server_id, "serverIds", max_length=40)
        if self.workspace_id is not None:
            check_text(self.workspace_id, "workspaceId", max_length=40)


class GetMcpPlan(Message, service=SERVICE):
    """One plan of the tenant; ``NOT_FOUND`` otherwise. Replies :class:`McpPlanView`."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_text(self.id, "id", max_length=40)


class ListMcpPlans(PageRequest, service=SERVICE):
    """Replies ``Page[McpPlanView]`` of the tenant's plans, oldest first, narrowed by
    ``status``."""

    tenant_id: str
    status: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        if self.status is not None and self.status not in PLAN_STATUSES:
            raise InvalidInput("status", f"must be one of {', '.join(PLAN_STATUSES)}")


class UpdateMcpPlanArguments(Message, service=SERVICE):
    """Set the arguments the caller gives a ``PROPOSED`` or ``APPROVED`` plan (the intent
    still fills what they leave empty, as in :class:`PlanMcp`); missing arguments and
    ``arguments_sha256`` are computed again. An ``APPROVED`` plan whose arguments change goes
    back to ``PROPOSED``: the approval was for the old ones. Replies :class:`McpPlanView`."""

    tenant_id: str
    id: str
    member_id: str
    arguments: dict[str, Any]

    def validate(self) -> None:
        check_text(self.id, "id", max_length=40)
        check_plan_arguments(self.arguments)


class ApproveMcpPlan(Message, service=SERVICE):
    """Approve a ``PROPOSED`` plan as ``member_id`` with ``role`` (the role a call on
    synapsex-ops-mcp then runs with). ``CONFLICT`` on ``arguments`` while required arguments
    are missing, on ``argumentsSha256`` when given and not the plan's (the arguments changed
    since the approver read them), on ``id`` in another state; ``FORBIDDEN`` when the policy
    denies the tool to the approver. Replies :class:`McpPlanView`."""

    tenant_id: str
    id: str
    member_id: str
    role: str
    arguments_sha256: str | None = None

    def validate(self) -> None:
        check_text(self.id, "id", max_length=40)
        if self.arguments_sha256 is not None:
            check_text(self.arguments_sha256, "argumentsSha256", max_length=64)


class RejectMcpPlan(Message, service=SERVICE):
    """Reject a ``PROPOSED`` or ``APPROVED`` plan with a reason. Replies
    :class:`McpPlanView`; ``CONFLICT`` on ``id`` in another state."""

    tenant_id: str
    id: str
    member_id: str
    reason: str

    def validate(self) -> None:
        check_text(self.id, "id", max_length=40)
        check_text(self.reason, "reason", max_length=MAX_REJECT_REASON_LENGTH)


class ExecuteMcpPlan(Message, service=SERVICE):
    """Run an ``APPROVED`` plan, or a ``PROPOSED`` one that needs no approval (a read-only
    tool the policy allows, with every required argument), as ``member_id`` / ``role``.

    The tool's definition is read again from its server: when its hash is not the plan's,
    the plan becomes ``STALE`` and nothing runs. Otherwise one tool call of the day's
    allowance is reserved (``LIMIT_EXCEEDED`` leaves the plan as it was), the plan is
    ``EXECUTING``, the tool is called with exactly the plan's arguments, and the plan ends
    ``SUCCEEDED`` or ``FAILED`` with its duration and error; the result is stored as an
    ``OUTPUT`` artifact of the plan's workspace when it has one. Replies
    :class:`McpPlanView` (whatever the outcome); ``CONFLICT`` on ``id`` in another state."""

    tenant_id: str
    id: str
    member_id: str
    role: str

    def validate(self) -> None:
        check_text(self.id, "id", max_length=40)


def plan_event(view: McpPlanView, **extra: Any) -> dict[str, Any]:
    """The payload of the ``mcp.plan.*`` events (never the arguments' values: their hash)."""
    chosen = view.chosen
    return {
        "planId": view.id,
        "status": view.status,
        "tool": None if chosen is None else chosen.tool,
        "server": None if chosen is None else chosen.server,
        "requiresApproval": view.requires_approval,
        "argumentsSha256": None if chosen is None else chosen.arguments_sha256,
        "toolDefinitionSha256": None if chosen is None else chosen.tool_definition_sha256,
        "updatedAt": view.updated_at.isoformat(),
        **extra,
    }


__all__ = [
    "EXECUTE_ASK_TIMEOUT_SECONDS",
    "MAX_PLAN_CANDIDATES",
    "MCP_PLAN_APPROVED",
    "MCP_PLAN_EXECUTED",
    "MCP_PLAN_EXECUTING",
    "MCP_PLAN_FAILED",
    "MCP_PLAN_PROPOSED",
    "MCP_PLAN_REJECTED",
    "MCP_PLAN_STALE",
    "MCP_PLAN_UPDATED",
    "MCP_SERVER_DISABLED",
    "MCP_SERVER_REGISTERED",
    "MCP_SERVER_SYNCED",
    "MCP_SERVER_SYNC_FAILED",
    "MCP_SERVER_UPDATED",
    "OPS_MCP_SERVER",
    "PLAN_FINAL_STATUSES",
    "PLAN_STATUSES",
    "QCOS_MCP_SERVER",
    "RESULT_EXCERPT_CHARS",
    "SERVICE",
    "ApproveMcpPlan",
    "DisableMcpServer",
    "ExecuteMcpPlan",
    "GetMcpPlan",
    "GetMcpServer",
    "ListMcpPlans",
    "ListMcpServers",
    "ListVisibleMcpServers",
    "McpPlanView",
    "McpServerConnection",
    "McpServerList",
    "McpServerView",
    "PlanCandidate",
    "PlanChoice",
    "PlanMcp",
    "PlanPolicy",
    "PlanReason",
    "RegisterMcpServer",
    "RejectMcpPlan",
    "ResolveMcpServer",
    "SyncCounts",
    "SyncMcpServer",
    "UpdateMcpPlanArguments",
    "UpdateMcpServer",
    "check_plan_arguments",
    "check_server_name",
    "check_server_url",
    "plan_event",
    "server_event",
    "tool_policy_action",
]
