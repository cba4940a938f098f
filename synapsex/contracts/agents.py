"""api-gateway: the tenant's agent records (and, filled by the MCP router, the tool catalog).

An agent is a named, versioned record of the tenant: ``name`` (unique in the tenant, compared
case-insensitively after Unicode NFKC normalisation, so ``Support Bot`` and ``support bot``
are one name), a ``description``, ``capabilities`` (a bounded list of short tags such as
``web_search`` or ``code:python``) and ``version``, a semantic version (``MAJOR.MINOR.PATCH``
with an optional ``-prerelease`` and ``+build``, see https://semver.org).

Lifecycle: ``ACTIVE`` → ``ARCHIVED`` (final). An archived agent keeps its id and history but
no longer counts towards the plan's ``agents`` limit, frees its name for a new agent, cannot be
updated nor deployed, and its deployments are undeployed.

The plan's ``agents`` limit (tenant-service :class:`~synapsex.contracts.tenant.GetTenant` →
``limits.agents``) counts ACTIVE agents; it is enforced by one conditional update of the
tenant's counter in the registration's transaction, so it holds across processes sharing
PostgreSQL.

Domain events (through the service's outbox): ``agent.registered``, ``agent.updated`` (with the
names of the changed fields) and ``agent.archived``; each payload is the agent as
:func:`agent_event` gives it.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

from synapsex.contracts.common import PageRequest, check_choice, check_text
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply

SERVICE = "api-gateway"

AGENT_STATUSES: tuple[str, ...] = ("ACTIVE", "ARCHIVED")
MAX_NAME_LENGTH = 100
#: the longest a name may be once normalised (NFKC may expand a ligature to many letters)
MAX_NAME_KEY_LENGTH = 400
MAX_DESCRIPTION_LENGTH = 2000
MAX_CAPABILITIES = 32
MAX_CAPABILITY_LENGTH = 64
MAX_VERSION_LENGTH = 100

#: the MCP tool catalog (``mcp_tools``, filled by the MCP router): a row's state
MCP_TOOL_STATUSES: tuple[str, ...] = ("ACTIVE", "CHANGED", "REMOVED")
#: ``scope_key`` of a platform-wide MCP tool (else the tenant id)
PLATFORM_SCOPE = "*"
#: what joins a server's name and a tool's name in an exposed tool name
EXPOSED_NAME_SEPARATOR = "__"

AGENT_REGISTERED = "agent.registered"
AGENT_UPDATED = "agent.updated"
AGENT_ARCHIVED = "agent.archived"

# https://semver.org/#is-there-a-suggested-regular-expression-regex-to-check-a-semver-string
_SEMVER_RE = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?",
    re.ASCII,
)
_NAME_RE = re.compile(r"[^\W_][\w .-]*")
_CAPABILITY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*", re.ASCII)


# ---------------------------------------------------------------------------- checks


def check_semver(value: str, field: str = "version") -> None:
    """A semantic version (2.0.0): ``1.4.0``, ``2.0.0-rc.1``, ``1.0.0+build.7``; no ``v``."""
    if len(value) > MAX_VERSION_LENGTH:
        raise InvalidInput(field, f"must be at most {MAX_VERSION_LENGTH} characters")
    if not _SEMVER_RE.fullmatch(value):
        raise InvalidInput(
            field,
            "must be a semantic version MAJOR.MINOR.PATCH with an optional -prerelease and "
            "+build, e.g. 1.4.0 or 2.0.0-rc.1 (no leading v, no leading zeros)",
        )


def semver_key(value: str) -> tuple[Any, ...]:
    """A sort key ordering semantic versions by precedence (build metadata ignored)."""
    match = _SEMVER_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"not a semantic version: {value!r}")
    major, minor, patch, pre, _build = match.groups()
    if pre is None:
        pre_key: tuple[Any, ...] = ((1,),)  # a release ranks above its pre-releases
    else:
        pre_key = (
            (0,),
            *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")),
        )
    return (int(major), int(minor), int(patch), pre_key)


def check_agent_name(value: str, field: str = "name") -> None:
    check_text(value, field, max_length=MAX_NAME_LENGTH)
    if not _NAME_RE.fullmatch(value):
        raise InvalidInput(
            field,
            "must start with a letter or digit and hold only letters, digits, spaces, "
            "'.', '_' or '-'",
        )
    if len(agent_name_key(value)) > MAX_NAME_KEY_LENGTH:  # a few ligatures expand a lot
        raise InvalidInput(field, "is too long once its ligatures are spelled out")


def agent_name_key(name: str) -> str:
    """What names are compared by: NFKC-normalised, case-folded (full-width ``Bot`` is ``bot``)."""
    return unicodedata.normalize("NFKC", name).casefold()


def check_description(value: str, field: str = "description") -> None:
    check_text(value, field, max_length=MAX_DESCRIPTION_LENGTH, min_length=0)


def check_capability_list(values: tuple[str, ...], field: str = "capabilities") -> None:
    """At most :data:`MAX_CAPABILITIES` distinct (case-insensitively) short tags."""
    if len(values) > MAX_CAPABILITIES:
        raise InvalidInput(field, f"must hold at most {MAX_CAPABILITIES} capabilities")
    seen: set[str] = set()
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise InvalidInput(field, f"item {index} must be a string")
        if not 1 <= len(value) <= MAX_CAPABILITY_LENGTH or not _CAPABILITY_RE.fullmatch(value):
            raise InvalidInput(
                field,
                f"item {index} ({value[:MAX_CAPABILITY_LENGTH]!r}) must be 1 to "
                f"{MAX_CAPABILITY_LENGTH} characters of letters, digits, '.', '_', ':', '/' "
                "or '-', starting with a letter or digit (e.g. web_search, code:python)",
            )
        if value.lower() in seen:
            raise InvalidInput(field, f"item {index} ({value!r}) repeats a capability")
        seen.add(value.lower())


def check_id(value: str, field: str = "id") -> None:
    check_text(value, field, max_length=60)


def exposed_tool_name(server_name: str, tool_name: str) -> str:
    """How the MCP router exposes a server's tool: ``<server>__<tool>``."""
    return f"{server_name}{EXPOSED_NAME_SEPARATOR}{tool_name}"


# ---------------------------------------------------------------------------- replies


class AgentView(Reply):
    id: str
    tenant_id: str
    name: str
    description: str
    capabilities: tuple[str, ...]
    version: str
    #: ``ACTIVE`` or ``ARCHIVED``
    status: str
    created_at: datetime
    updated_at: datetime
    #: when it was archived (``None`` while ACTIVE)
    archived_at: datetime | None = None
    #: the member who registered it (the default policy lets members change their own agents)
    created_by: str | None = None


def agent_event(view: AgentView) -> dict[str, Any]:
    """The payload of the ``agent.*`` events."""
    return {
        "id": view.id,
        "tenantId": view.tenant_id,
        "name": view.name,
        "description": view.description,
        "capabilities": list(view.capabilities),
        "version": view.version,
        "status": view.status,
        "createdBy": view.created_by,
        "createdAt": view.created_at.isoformat(),
        "updatedAt": view.updated_at.isoformat(),
    }


# ---------------------------------------------------------------------------- messages


class RegisterAgent(Message, service=SERVICE):
    """Register an ACTIVE agent. Replies :class:`AgentView`; ``CONFLICT`` on ``name`` when the
    tenant has an ACTIVE agent of that name; ``LIMIT_EXCEEDED`` (``limit="agents"``) when the
    plan's agents are all taken."""

    tenant_id: str
    name: str
    description: str = ""
    capabilities: tuple[str, ...] = ()
    version: str
    #: the member registering it
    created_by: str | None = None

    def validate(self) -> None:
        check_agent_name(self.name)
        check_description(self.description)
        check_capability_list(self.capabilities)
        check_semver(self.version)


class GetAgent(Message, service=SERVICE):
    """One agent of the tenant (ACTIVE or ARCHIVED); ``NOT_FOUND`` (on ``id``) otherwise,
    another tenant's included."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_id(self.id)


class ListAgents(PageRequest, service=SERVICE):
    """Replies ``Page[AgentView]``, oldest first; ``status`` ``None`` lists both statuses;
    ``capability`` keeps the agents that have it (case-insensitively)."""

    tenant_id: str
    status: str | None = None
    capability: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        if self.status is not None:
            check_choice(self.status, AGENT_STATUSES, "status")
        if self.capability is not None:
            check_capability_list((self.capability,), "capability")


class UpdateAgent(Message, service=SERVICE):
    """Change the given fields of an ACTIVE agent (``None``: unchanged). Replies
    :class:`AgentView`; ``CONFLICT`` on ``id`` for an archived agent, on ``name`` when taken."""

    tenant_id: str
    id: str
    name: str | None = None
    description: str | None = None
    capabilities: tuple[str, ...] | None = None
    version: str | None = None

    def validate(self) -> None:
        check_id(self.id)
        if self.name is not None:
            check_agent_name(self.name)
        if self.description is not None:
            check_description(self.description)
        if self.capabilities is not None:
            check_capability_list(self.capabilities)
        if self.version is not None:
            check_semver(self.version)


class ArchiveAgent(Message, service=SERVICE):
    """Archive an agent (archiving an archived agent changes nothing). Replies
    :class:`AgentView`. Its deployments are then undeployed (agent-registry-service
    ``UndeployAll``)."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_id(self.id)


__all__ = [
    "AGENT_ARCHIVED",
    "AGENT_REGISTERED",
    "AGENT_STATUSES",
    "AGENT_UPDATED",
    "EXPOSED_NAME_SEPARATOR",
    "MCP_TOOL_STATUSES",
    "PLATFORM_SCOPE",
    "SERVICE",
    "AgentView",
    "ArchiveAgent",
    "GetAgent",
    "ListAgents",
    "RegisterAgent",
    "UpdateAgent",
    "agent_event",
    "agent_name_key",
    "check_semver",
    "exposed_tool_name",
    "semver_key",
]
