"""policy-service handlers: tenant rules over the default role matrix, with a per-tenant cache."""

from __future__ import annotations

from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING

from tortoise import timezone
from tortoise.exceptions import IntegrityError

from synapsex.contracts.common import Page
from synapsex.contracts.errors import Conflict, LimitExceeded
from synapsex.contracts.policy import (
    EFFECT_RANK,
    MAX_POLICIES_PER_TENANT,
    CheckPolicy,
    Decision,
    DeletePolicy,
    ListPolicies,
    PolicyView,
    SetPolicy,
    default_decision,
    is_action_pattern,
    segments_match,
)
from synapsex.contracts.tenant import ROLES
from synapsex.runtime import Actor, handler, new_id
from synapsex.runtime.orm import get_or_not_found, paginate

from .models import Policy

if TYPE_CHECKING:
    from synapsex.runtime import Runtime, ServiceDatabase

#: how long a tenant's cached rules are trusted. This actor drops a tenant's entry whenever it
#: changes that tenant's rules, but several processes may share one PostgreSQL database: a
#: SetPolicy or DeletePolicy handled by another process is seen here after at most this long.
CACHE_TTL_SECONDS = 5.0
#: tenants whose rules are kept at once; the least recently loaded are dropped first
CACHE_MAX_TENANTS = 10_000


@dataclass(frozen=True, slots=True)
class Rule:
    """A tenant rule as the evaluator needs it: split once, compared often."""

    id: str
    segments: tuple[str, ...]
    effect: str
    roles: frozenset[str]
    reason: str
    #: sorts the applicable rules: most restrictive first, then exact actions, then oldest
    order: tuple[int, bool, str]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    loaded_at: float
    rules: tuple[Rule, ...]


def canonical_roles(roles: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The distinct roles, most powerful first (the order of ``ROLES``)."""
    return tuple(r for r in ROLES if r in roles)


def policy_view(row: Policy) -> PolicyView:
    return PolicyView(
        id=row.id,
        tenant_id=row.tenant_id,
        action=row.action,
        effect=row.effect,
        roles=canonical_roles(row.roles),
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def rule_of(row: Policy) -> Rule:
    return Rule(
        id=row.id,
        segments=tuple(row.action.split(".")),
        effect=row.effect,
        roles=frozenset(row.roles),
        reason=row.reason,
        order=(-EFFECT_RANK[row.effect], is_action_pattern(row.action), row.id),
    )


def evaluate(rules: tuple[Rule, ...], msg: CheckPolicy) -> Decision:
    """The most restrictive rule that applies to the caller, else the default matrix."""
    action = tuple(msg.action.split("."))
    applicable = [r for r in rules if msg.role in r.roles and segments_match(r.segments, action)]
    if not applicable:
        return default_decision(msg.role, msg.action, is_own_resource=msg.is_own_resource)
    best = min(applicable, key=lambda r: r.order)
    return Decision(effect=best.effect, reason=best.reason, policy_id=best.id)


class PolicyActor(
    Actor,
    service="policy-service",
    models="synapsex.actors.policy.models",
    concurrency=4,
):
    """Owns ``policies``.

    CheckPolicy and ListPolicies write no rows and run side by side (``concurrency=4``); writes
    run alone, after the reads in flight. The rule cache stays consistent under that: a cache
    entry is only replaced between awaits, and a load started before a change of its tenant
    (a newer generation) is not stored.
    """

    def __init__(self, runtime: Runtime, db: ServiceDatabase | None) -> None:
        super().__init__(runtime, db)
        self._cache: dict[str, CacheEntry] = {}
        # bumped by every change to a tenant's rules made here
        self._generation: dict[str, int] = {}

    # ------------------------------------------------------------------ cache

    async def _rules(self, tenant_id: str) -> tuple[Rule, ...]:
        entry = self._cache.get(tenant_id)
        now = monotonic()
        if entry is not None and now - entry.loaded_at < CACHE_TTL_SECONDS:
            return entry.rules
        generation = self._generation.get(tenant_id, 0)
        rows = await Policy.filter(tenant_id=tenant_id)
        rules = tuple(rule_of(row) for row in rows)
        if self._generation.get(tenant_id, 0) == generation:
            self._cache.pop(tenant_id, None)  # re-inserted last: the newest load
            self._cache[tenant_id] = CacheEntry(loaded_at=now, rules=rules)
            while len(self._cache) > CACHE_MAX_TENANTS:
                del self._cache[next(iter(self._cache))]
        return rules

    def _invalidate(self, tenant_id: str) -> None:
        self._generation[tenant_id] = self._generation.get(tenant_id, 0) + 1
        self._cache.pop(tenant_id, None)

    # ------------------------------------------------------------------ handlers

    @handler(read_only=True)  # reads rows; only the in-memory cache changes
    async def check_policy(self, msg: CheckPolicy) -> Decision:
        return evaluate(await self._rules(msg.tenant_id), msg)

    @handler
    async def set_policy(self, msg: SetPolicy) -> PolicyView:
        try:
            return policy_view(await self._upsert(msg))
        finally:
            self._invalidate(msg.tenant_id)

    async def _upsert(self, msg: SetPolicy) -> Policy:
        key = {"tenant_id": msg.tenant_id, "action": msg.action}
        values = {
            "effect": msg.effect,
            "roles": list(canonical_roles(msg.roles)),
            "reason": msg.reason,
        }
        for _ in range(3):
            row = await Policy.filter(**key).first()
            if row is not None:
                changed = await Policy.filter(id=row.id).update(**values, updated_at=timezone.now())
                updated = await Policy.filter(id=row.id).first() if changed else None
                if updated is not None:
                    return updated
                continue  # another process deleted it meanwhile: create it again
            if await Policy.filter(tenant_id=msg.tenant_id).count() >= MAX_POLICIES_PER_TENANT:
                raise LimitExceeded(
                    f"a tenant may have at most {MAX_POLICIES_PER_TENANT} policies",
                    limit="policies",
                )
            try:
                return await Policy.create(id=new_id("pol"), **key, **values)
            except IntegrityError:
                continue  # another process created it meanwhile: update that one
        raise Conflict("the policy changed concurrently; try again", field="action")

    @handler(read_only=True)
    async def list_policies(self, msg: ListPolicies) -> Page[PolicyView]:
        return await paginate(
            Policy.filter(tenant_id=msg.tenant_id),
            first=msg.first,
            after=msg.after,
            view=policy_view,
        )

    @handler
    async def delete_policy(self, msg: DeletePolicy) -> PolicyView:
        row = await get_or_not_found(
            Policy.filter(id=msg.id, tenant_id=msg.tenant_id), "policy", id=msg.id
        )
        try:
            await Policy.filter(id=row.id).delete()
        finally:
            self._invalidate(msg.tenant_id)
        return policy_view(row)
