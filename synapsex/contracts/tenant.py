"""tenant-service: tenants (organizations with a plan and its limits) and their members.

Roles, from most to least powerful: ``owner``, ``admin``, ``member``, ``viewer``.
A member's email is unique within a tenant; a tenant's name is unique on the platform.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from synapsex.contracts.common import (
    Page,
    PageRequest,
    check_choice,
    check_email,
    check_text,
)
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply

SERVICE = "tenant-service"

PLANS: tuple[str, ...] = ("free", "pro", "enterprise")
ROLES: tuple[str, ...] = ("owner", "admin", "member", "viewer")
#: rank of each role: a higher number may do more
ROLE_RANK: dict[str, int] = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}

GIB = 1024**3
#: the limits each plan grants; a tenant may override any of them
PLAN_LIMITS: dict[str, dict[str, int]] = {
    "free": {
        "members": 5,
        "agents": 3,
        "vms": 2,
        "workspaces": 5,
        "storage_bytes": 1 * GIB,
        "tool_calls_per_day": 1_000,
    },
    "pro": {
        "members": 50,
        "agents": 50,
        "vms": 25,
        "workspaces": 100,
        "storage_bytes": 100 * GIB,
        "tool_calls_per_day": 100_000,
    },
    "enterprise": {
        "members": 1_000,
        "agents": 1_000,
        "vms": 500,
        "workspaces": 10_000,
        "storage_bytes": 10_240 * GIB,
        "tool_calls_per_day": 10_000_000,
    },
}
LIMIT_NAMES: tuple[str, ...] = tuple(PLAN_LIMITS["free"])
_SLUG_INVALID = re.compile(r"[^a-z0-9]+")


def slugify(name: str) -> str:
    """``"Acme Labs, Inc."`` → ``"acme-labs-inc"``."""
    return _SLUG_INVALID.sub("-", name.lower()).strip("-")[:100]


def check_limit_overrides(limits: dict[str, Any] | None, field: str = "limits") -> None:
    for key, value in (limits or {}).items():
        if key not in LIMIT_NAMES:
            raise InvalidInput(f"{field}.{key}", f"unknown limit; known: {', '.join(LIMIT_NAMES)}")
        if type(value) is not int or value < 0:
            raise InvalidInput(f"{field}.{key}", "must be a whole number >= 0")


# ---------------------------------------------------------------------------- replies


class Limits(Reply):
    members: int
    agents: int
    vms: int
    workspaces: int
    storage_bytes: int
    tool_calls_per_day: int


class TenantView(Reply):
    id: str
    name: str
    slug: str
    plan: str
    limits: Limits
    member_count: int
    created_at: datetime


class MemberView(Reply):
    id: str
    tenant_id: str
    email: str
    role: str
    created_at: datetime


class BootstrappedTenant(Reply):
    tenant: TenantView
    owner: MemberView


# ---------------------------------------------------------------------------- messages


def _check_new_tenant(name: str, plan: str, limits: dict[str, Any] | None) -> None:
    check_text(name, "name", max_length=100)
    if not slugify(name):
        raise InvalidInput("name", "must contain a letter or a digit")
    check_choice(plan, PLANS, "plan")
    check_limit_overrides(limits)


class CreateTenant(Message, service=SERVICE):
    """Create a tenant without members. Replies :class:`TenantView`; :class:`Conflict` when
    the name (or its slug) is taken."""

    name: str
    plan: str = "free"
    #: overrides of the plan's limits, e.g. ``{"members": 25}``
    limits: dict[str, Any] | None = None

    def validate(self) -> None:
        _check_new_tenant(self.name, self.plan, self.limits)


class BootstrapTenant(Message, service=SERVICE):
    """Create a tenant and its first owner in one transaction (what ``synapsex bootstrap``
    does). Replies :class:`BootstrappedTenant`; :class:`Conflict` when the name is taken."""

    name: str
    owner_email: str
    plan: str = "free"
    limits: dict[str, Any] | None = None

    def validate(self) -> None:
        _check_new_tenant(self.name, self.plan, self.limits)
        check_email(self.owner_email, "owner_email")


class GetTenant(Message, service=SERVICE):
    """Replies :class:`TenantView`; :class:`NotFound` when there is no such tenant."""

    id: str


class ListTenants(PageRequest, service=SERVICE):
    """Replies ``Page[TenantView]``, oldest first."""


class UpdateTenantPlan(Message, service=SERVICE):
    """Change the plan (and optionally the overrides); replies :class:`TenantView`.

    ``limits=None`` keeps the current overrides; ``{}`` clears them.
    """

    tenant_id: str
    plan: str
    limits: dict[str, Any] | None = None

    def validate(self) -> None:
        check_choice(self.plan, PLANS, "plan")
        check_limit_overrides(self.limits)


class AddMember(Message, service=SERVICE):
    """Replies :class:`MemberView`; :class:`LimitExceeded` past the plan's member limit,
    :class:`Conflict` when the email is already a member."""

    tenant_id: str
    email: str
    role: str = "member"

    def validate(self) -> None:
        check_email(self.email)
        check_choice(self.role, ROLES, "role")


class RemoveMember(Message, service=SERVICE):
    """Replies the removed :class:`MemberView`; :class:`Conflict` for the last owner."""

    tenant_id: str
    member_id: str


class GetMember(Message, service=SERVICE):
    """Replies :class:`MemberView`; :class:`NotFound` unless it belongs to ``tenant_id``."""

    tenant_id: str
    member_id: str


class ListMembers(PageRequest, service=SERVICE):
    """Replies ``Page[MemberView]``, oldest first."""

    tenant_id: str


__all__ = [
    "LIMIT_NAMES",
    "PLANS",
    "PLAN_LIMITS",
    "ROLES",
    "ROLE_RANK",
    "AddMember",
    "BootstrapTenant",
    "BootstrappedTenant",
    "CreateTenant",
    "GetMember",
    "GetTenant",
    "Limits",
    "ListMembers",
    "ListTenants",
    "MemberView",
    "Page",
    "RemoveMember",
    "TenantView",
    "UpdateTenantPlan",
    "slugify",
]
