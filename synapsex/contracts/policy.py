"""policy-service: may this role perform this action in this tenant?

Actions are dot-separated names ``<resource>.<verb>`` (``tenant.read``, ``tenant.member.add``,
``apikey.revoke``, ``agent.create``): lower-case segments of ``[a-z0-9_-]``, at least two, at most
100 characters in all. The last segment is the verb; the ones before it name the resource.

A tenant may add rules. A rule's action may be a pattern, as in AMQP topics: a segment ``*``
matches exactly one segment, a last segment ``#`` matches the rest (zero or more segments), so
``agent.*`` matches ``agent.create`` but not ``agent.tool.call``, ``agent.#`` matches both, and
``#`` alone matches every action. A tenant has at most one rule per action (pattern).

Deciding :class:`CheckPolicy`: the tenant's rules whose action matches and whose roles include the
caller's role apply; when any does, the most restrictive effect wins (``DENY`` >
``REQUIRE_APPROVAL`` > ``ALLOW``; among equals an exact action beats a pattern, then the oldest
rule) and the decision carries its reason and id. When none applies, the default matrix decides
(``policy_id`` is ``None``). A rule replaces the default for whom it names: an ``ALLOW`` rule may
grant more than the matrix does. One tenant's rules never affect another tenant.

The default matrix (:func:`default_decision`), from the first row that fits, roles from least
to most powerful (``viewer`` < ``member`` < ``admin`` < ``owner``):

================================================================  ======  ======  =====  =====
action                                                            viewer  member  admin  owner
================================================================  ======  ======  =====  =====
verb ``read``, ``list``, ``get``, ``verify`` or ``check``         allow   allow   allow  allow
``tenant.plan.update``, ``tenant.delete``, ``policy.set``,        deny    deny    deny   allow
``policy.delete``
any other verb on ``tenant.member``, ``apikey``, ``audit`` or     deny    deny    allow  allow
``mcp_server`` (``tenant.member.add/remove/update``,
``apikey.create/revoke``, ``mcp_server.create/update/sync``),
and ``secret.reveal``, ``secret.delete``, ``mcp_plan.approve``
creation: verb ``create``, ``add``, ``publish`` or ``upload``     deny    allow   allow  allow
(no specific owner yet)
any other verb (a write), ``is_own_resource=True``                deny    allow   allow  allow
any other verb (a write), ``is_own_resource=False``               deny    deny    allow  allow
================================================================  ======  ======  =====  =====

Every decision has a reason a user can read, e.g. "Only owners can update the plan." or
"Viewers can only read.". Verbs not listed as reads count as writes, so a new verb is never
allowed to viewers by accident.
"""

from __future__ import annotations

import re
from datetime import datetime

from synapsex.contracts.common import PageRequest, check_choice, check_text
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply
from synapsex.contracts.tenant import ROLE_RANK, ROLES

SERVICE = "policy-service"

ALLOW = "ALLOW"
DENY = "DENY"
REQUIRE_APPROVAL = "REQUIRE_APPROVAL"
EFFECTS: tuple[str, ...] = (ALLOW, DENY, REQUIRE_APPROVAL)
#: how restrictive each effect is: among matching rules the highest wins
EFFECT_RANK: dict[str, int] = {ALLOW: 0, REQUIRE_APPROVAL: 1, DENY: 2}

MAX_ACTION_LENGTH = 100
MAX_REASON_LENGTH = 500
#: rules one tenant may have (they are cached and scanned on every check)
MAX_POLICIES_PER_TENANT = 1_000

#: verbs that only read: every role may use them by default
READ_VERBS: tuple[str, ...] = ("read", "list", "get", "verify", "check")
#: verbs that make something new, which has no specific owner yet: members and up by default
CREATION_VERBS: tuple[str, ...] = ("create", "add", "publish", "upload")
#: actions only owners may perform by default, with the reason shown to everyone else
OWNER_ONLY_ACTIONS: dict[str, str] = {
    "tenant.plan.update": "Only owners can update the plan.",
    "tenant.delete": "Only owners can delete the tenant.",
    "policy.set": "Only owners can change policies.",
    "policy.delete": "Only owners can delete policies.",
}
#: actions only admins and owners may perform by default (whatever their resource's other
#: verbs allow), with the reason shown to everyone else
ADMIN_ONLY_ACTIONS: dict[str, str] = {
    "secret.reveal": "Only admins and owners can reveal secret values.",
    "secret.delete": "Only admins and owners can delete secrets.",
    "mcp_plan.approve": "Only admins and owners can approve MCP plans.",
}
#: resources whose writes only admins and owners may perform by default, with the reason
ADMIN_RESOURCES: dict[str, str] = {
    "tenant.member": "Only admins and owners can manage members.",
    "apikey": "Only admins and owners can manage API keys.",
    "audit": "Only admins and owners can manage the audit log.",
    "mcp_server": "Only admins and owners can manage MCP servers.",
}

_SEGMENT = r"[a-z0-9_-]+"
_ACTION_RE = re.compile(rf"{_SEGMENT}(\.{_SEGMENT})+")
_PATTERN_SEGMENT_RE = re.compile(rf"{_SEGMENT}|\*")


# ---------------------------------------------------------------------------- actions


def check_action(value: str, field: str = "action") -> None:
    """A concrete action: ``<resource>.<verb>``, lower-case segments, no wildcards."""
    _check_length(value, field)
    if "*" in value or "#" in value:
        raise InvalidInput(field, "must be a concrete action, without * or #")
    if not _ACTION_RE.fullmatch(value):
        raise InvalidInput(
            field,
            "must be <resource>.<verb>: lower-case segments of a-z, 0-9, _ or - separated by "
            "dots, e.g. tenant.read",
        )


def check_action_pattern(value: str, field: str = "action") -> None:
    """An action or a pattern: a segment may be ``*``, the last segment may be ``#``."""
    _check_length(value, field)
    segments = value.split(".")
    wild = segments[-1] == "#"
    for segment in segments[:-1] if wild else segments:
        if not _PATTERN_SEGMENT_RE.fullmatch(segment):
            raise InvalidInput(
                field,
                f"segment {segment!r} must be lower-case a-z, 0-9, _ or -, or * for one "
                "segment (# only as the last segment)",
            )
    if len(segments) < 2 and not wild:
        raise InvalidInput(field, "must be <resource>.<verb> (or end with .#), e.g. agent.*")


def _check_length(value: str, field: str) -> None:
    if not 1 <= len(value) <= MAX_ACTION_LENGTH:
        raise InvalidInput(field, f"must be 1 to {MAX_ACTION_LENGTH} characters")


def is_action_pattern(action: str) -> bool:
    """Whether a rule's action has a wildcard (``*`` or ``#``)."""
    return "*" in action or "#" in action


def action_matches(pattern: str, action: str) -> bool:
    """Whether a rule's action ``pattern`` matches the concrete ``action`` (AMQP-style)."""
    return segments_match(tuple(pattern.split(".")), tuple(action.split(".")))


def segments_match(pattern: tuple[str, ...], action: tuple[str, ...]) -> bool:
    """:func:`action_matches` on split names (for callers that split once)."""
    if pattern and pattern[-1] == "#":
        pattern = pattern[:-1]
        if len(action) < len(pattern):
            return False
    elif len(action) != len(pattern):
        return False
    return all(p in ("*", a) for p, a in zip(pattern, action, strict=False))


# ---------------------------------------------------------------------------- replies


class Decision(Reply):
    """``effect`` is one of :data:`EFFECTS`; ``reason`` is a sentence for the user;
    ``policy_id`` is the deciding tenant rule, ``None`` when the default matrix decided."""

    effect: str
    reason: str
    policy_id: str | None


class PolicyView(Reply):
    id: str
    tenant_id: str
    action: str
    effect: str
    #: the roles the rule applies to, most powerful first
    roles: tuple[str, ...]
    reason: str
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------------------- default matrix


def default_decision(role: str, action: str, *, is_own_resource: bool) -> Decision:
    """The default matrix (see the module docstring): what ``role`` may do without rules."""
    check_choice(role, ROLES, "role")
    check_action(action)
    resource, _, verb = action.rpartition(".")
    rank = ROLE_RANK[role]
    if verb in READ_VERBS:
        return _allow("Every member of the tenant can read.")
    owner_only = OWNER_ONLY_ACTIONS.get(action)
    if owner_only is not None:
        if rank >= ROLE_RANK["owner"]:
            return _allow("Owners can do this.")
        return _deny(owner_only)
    admin_only = ADMIN_ONLY_ACTIONS.get(action) or ADMIN_RESOURCES.get(resource)
    if admin_only is not None:
        if rank >= ROLE_RANK["admin"]:
            return _allow("Admins and owners can do this.")
        return _deny(admin_only)
    if rank < ROLE_RANK["member"]:
        return _deny("Viewers can only read.")
    if verb in CREATION_VERBS:
        return _allow("Members can create new resources.")
    if is_own_resource:
        return _allow("Members can change their own resources.")
    if rank >= ROLE_RANK["admin"]:
        return _allow("Admins and owners can change any resource.")
    return _deny("Members can only change their own resources; ask an admin.")


def _allow(reason: str) -> Decision:
    return Decision(effect=ALLOW, reason=reason, policy_id=None)


def _deny(reason: str) -> Decision:
    return Decision(effect=DENY, reason=reason, policy_id=None)


# ---------------------------------------------------------------------------- messages


def _check_tenant_id(value: str) -> None:
    check_text(value, "tenant_id", max_length=40)


def check_roles(roles: tuple[str, ...], field: str = "roles") -> None:
    """A non-empty tuple of role names from :data:`ROLES` (repeats are harmless)."""
    if not roles:
        raise InvalidInput(field, "must name at least one role")
    for role in roles:
        if role not in ROLES:
            raise InvalidInput(field, f"{role!r} is not a role; roles: {', '.join(ROLES)}")


class CheckPolicy(Message, service=SERVICE):
    """May ``role`` perform ``action`` in the tenant? Replies :class:`Decision`.

    Asked before every mutation. ``is_own_resource`` says whether the caller owns the resource
    acted on (the default matrix lets members change their own resources); ``resource_id`` is
    informational.
    """

    tenant_id: str
    role: str
    action: str
    resource_id: str | None = None
    is_own_resource: bool = False

    def validate(self) -> None:
        _check_tenant_id(self.tenant_id)
        check_choice(self.role, ROLES, "role")
        check_action(self.action)


class SetPolicy(Message, service=SERVICE):
    """Create or replace the tenant's rule for ``action`` (a name or a pattern).

    Replies :class:`PolicyView` (a replaced rule keeps its id and ``created_at``);
    :class:`LimitExceeded` past :data:`MAX_POLICIES_PER_TENANT` rules.
    """

    tenant_id: str
    action: str
    effect: str
    roles: tuple[str, ...]
    reason: str

    def validate(self) -> None:
        _check_tenant_id(self.tenant_id)
        check_action_pattern(self.action)
        check_choice(self.effect, EFFECTS, "effect")
        check_roles(self.roles)
        check_text(self.reason, "reason", max_length=MAX_REASON_LENGTH)


class ListPolicies(PageRequest, service=SERVICE):
    """Replies ``Page[PolicyView]`` of the tenant's rules, oldest first."""

    tenant_id: str

    def validate(self) -> None:
        super().validate()
        _check_tenant_id(self.tenant_id)


class DeletePolicy(Message, service=SERVICE):
    """Delete one of the tenant's rules; replies the deleted :class:`PolicyView`.
    :class:`NotFound` when there is no such rule in this tenant."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        _check_tenant_id(self.tenant_id)


__all__ = [
    "ADMIN_ONLY_ACTIONS",
    "ADMIN_RESOURCES",
    "ALLOW",
    "CREATION_VERBS",
    "DENY",
    "EFFECTS",
    "EFFECT_RANK",
    "MAX_ACTION_LENGTH",
    "MAX_POLICIES_PER_TENANT",
    "MAX_REASON_LENGTH",
    "OWNER_ONLY_ACTIONS",
    "READ_VERBS",
    "REQUIRE_APPROVAL",
    "ROLES",
    "ROLE_RANK",
    "SERVICE",
    "CheckPolicy",
    "Decision",
    "DeletePolicy",
    "ListPolicies",
    "PolicyView",
    "SetPolicy",
    "action_matches",
    "check_action",
    "check_action_pattern",
    "check_roles",
    "default_decision",
    "is_action_pattern",
    "segments_match",
]
