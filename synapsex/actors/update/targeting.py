"""Which VMs a rollout targets, how far it has got, and what each VM is told: pure functions
over a rollout (:class:`Plan`) and the fleet as vm-registry reports it (``VmView``), so the
rules are tested without a database.

The rules (``docs/rollouts.md`` has them for users):

* **eligible**: the VM's labels match the rollout's selector, it belongs to a ring up to the
  current one (the first ring whose selector matches; without rings, everyone is in ring 0),
  and its bucket is inside the percentage;
* **targeted**: given the version (recorded), or eligible while the rollout is running (a
  paused or halted rollout targets no new VM);
* **updated**: targeted and reporting the release's version;
* **failed**: given the version and reporting ``FAILED`` or being ``OFFLINE``;
* a ring is **complete** when every VM of it eligible at the current percentage is updated and
  healthy (``HEALTHY`` and not ``FAILED``); a ring with none is complete at once, so a rollout
  never stalls on an empty ring;
* a rollout is **complete** at 100 %, in its last ring, with at least one VM targeted and every
  targeted VM updated and healthy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace

from synapsex.contracts.releases import (
    BUCKETS,
    COMPLETED,
    HALTED,
    PAUSED,
    ROLLED_BACK,
    RUNNING,
    RolloutRing,
    bucket_of,
    in_percentage,
    same_version,
    selector_matches,
)
from synapsex.contracts.vms import VmView

from .models import Rollout

#: what a VM reports as "something is wrong" (its own status) and "gone" (derived health)
FAILED_STATUS = "FAILED"
OFFLINE = "OFFLINE"
HEALTHY = "HEALTHY"


@dataclass(frozen=True, slots=True)
class Plan:
    """A rollout as targeting sees it."""

    id: str
    component: str
    release_id: str
    version: str
    previous_release_id: str | None
    previous_version: str | None
    status: str
    percentage: int
    labels: dict[str, str]
    rings: tuple[RolloutRing, ...]
    current_ring: int

    @property
    def last_ring(self) -> int:
        return max(len(self.rings) - 1, 0)

    def ring_name(self, index: int) -> str | None:
        return self.rings[index].name if index < len(self.rings) else None


def plan_of(row: Rollout) -> Plan:
    return Plan(
        id=row.id,
        component=row.component,
        release_id=row.release_id,
        version=row.version,
        previous_release_id=row.previous_release_id,
        previous_version=row.previous_version,
        status=row.status,
        percentage=row.percentage,
        labels=json.loads(row.labels),
        rings=rings_from_json(row.rings),
        current_ring=row.current_ring,
    )


def rings_to_json(rings: Iterable[RolloutRing]) -> str:
    return json.dumps([{"name": r.name, "labels": r.labels} for r in rings])


def rings_from_json(text: str) -> tuple[RolloutRing, ...]:
    return tuple(RolloutRing(name=r["name"], labels=r["labels"]) for r in json.loads(text))


# ---------------------------------------------------------------------------- one VM


def reported_version(vm: VmView, component: str) -> str:
    return vm.agent_version if component == "AGENT" else vm.runtime_version


def is_failed(vm: VmView) -> bool:
    return vm.status == FAILED_STATUS or vm.health == OFFLINE


def is_healthy(vm: VmView) -> bool:
    return vm.status != FAILED_STATUS and vm.health == HEALTHY


def ring_of(rings: tuple[RolloutRing, ...], labels: dict[str, str]) -> int | None:
    """The index of the first ring whose selector matches (0 without rings; ``None``: none)."""
    if not rings:
        return 0
    for index, ring in enumerate(rings):
        if selector_matches(ring.labels, labels):
            return index
    return None


def _selector_text(selector: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))


def why_not(plan: Plan, vm: VmView) -> str | None:
    """``None`` when the VM is eligible, else why not (a clause)."""
    if not selector_matches(plan.labels, vm.labels):
        return f"its labels do not match the selector {_selector_text(plan.labels)}"
    ring = ring_of(plan.rings, vm.labels)
    if ring is None:
        names = ", ".join(r.name for r in plan.rings)
        return f"it is in none of the rings ({names})"
    if ring > plan.current_ring:
        return (
            f"its ring {plan.rings[ring].name!r} is not reached yet "
            f"(ring {plan.rings[plan.current_ring].name!r} is in progress)"
        )
    bucket = bucket_of(plan.id, vm.id)
    if not in_percentage(bucket, plan.percentage):
        return (
            f"its bucket {bucket} is outside {plan.percentage} % (buckets below {threshold(plan)})"
        )
    return None


def threshold(plan: Plan) -> int:
    """Buckets below this are inside the percentage."""
    return plan.percentage * (BUCKETS // 100)


def eligible(plan: Plan, vm: VmView) -> bool:
    return why_not(plan, vm) is None


# ---------------------------------------------------------------------------- progress


@dataclass(frozen=True, slots=True)
class Progress:
    targeted: int
    updated: int
    failed: int
    #: VMs (still registered) that were given the version: the health gate's sample
    given: int
    #: every targeted VM is updated and healthy (and there is at least one)
    all_done: bool


def measure(plan: Plan, fleet: Iterable[VmView], given: set[str]) -> Progress:
    targeted = updated = failed = given_count = 0
    all_done = True
    for vm in fleet:
        was_given = vm.id in given
        if not (was_given or (plan.status == RUNNING and eligible(plan, vm))):
            continue
        targeted += 1
        is_updated = same_version(reported_version(vm, plan.component), plan.version)
        updated += is_updated
        if was_given:
            given_count += 1
            failed += is_failed(vm)
        all_done = all_done and is_updated and is_healthy(vm)
    return Progress(targeted, updated, failed, given_count, all_done and targeted > 0)


def ring_complete(plan: Plan, fleet: Iterable[VmView], ring: int) -> bool:
    """Every VM of ``ring`` eligible at the current percentage is updated and healthy."""
    at = replace(plan, current_ring=ring)
    for vm in fleet:
        if ring_of(plan.rings, vm.labels) != ring or not eligible(at, vm):
            continue
        updated = same_version(reported_version(vm, plan.component), plan.version)
        if not (updated and is_healthy(vm)):
            return False
    return True


def reached_ring(plan: Plan, fleet: list[VmView]) -> int:
    """The ring a running rollout has reached: the current one, advanced past every complete
    ring (never back)."""
    ring = plan.current_ring
    while ring < plan.last_ring and ring_complete(plan, fleet, ring):
        ring += 1
    return ring


# ---------------------------------------------------------------------------- what a VM is told


@dataclass(frozen=True, slots=True)
class Decision:
    version: str | None
    release_id: str | None
    rollout_id: str | None
    reason: str
    #: the running (or completed) rollout that gives the VM its version now: to be recorded
    assign: Plan | None = None


def _ring_clause(plan: Plan, vm: VmView) -> str:
    ring = ring_of(plan.rings, vm.labels)
    return "" if not plan.rings or ring is None else f" in ring {plan.rings[ring].name!r}"


def decide(
    vm: VmView,
    component: str,
    history: list[Plan],
    given: dict[str, str | None],
    *,
    preview: bool = False,
) -> Decision:
    """What ``vm`` should run of ``component``. ``history``: the component's rollouts, newest
    first; ``given``: the rollouts that gave this VM their release (rollout id → the version
    it reported then)."""
    lead: str | None = None
    lead_plan: Plan | None = None
    for plan in history:
        if plan.id in given:
            return _from_given(plan, given[plan.id], lead)
        if plan.status in (RUNNING, COMPLETED) and eligible(plan, vm):
            verb = "would be given" if preview else "is given"
            bucket = bucket_of(plan.id, vm.id)
            return Decision(
                version=plan.version,
                release_id=plan.release_id,
                rollout_id=plan.id,
                reason=(
                    f"This VM {verb} {plan.version} by rollout {plan.id}"
                    f"{_ring_clause(plan, vm)}: its bucket {bucket} is within "
                    f"{plan.percentage} % (buckets below {threshold(plan)})."
                ),
                assign=plan,
            )
        if lead is None and plan.status in (RUNNING, PAUSED, HALTED):
            lead_plan = plan
            if plan.status == PAUSED:
                cause = "it is paused and targets no new VM"
            elif plan.status == HALTED:
                cause = "it was halted by its health gate and targets no new VM"
            else:
                cause = why_not(plan, vm) or "it does not target this VM"
            lead = f"Not targeted by rollout {plan.id} of {plan.version} ({cause})"
    rollout_id = None if lead_plan is None else lead_plan.id
    rest = f"no rollout has given this VM a version of {component}: keep the version it runs"
    return Decision(None, None, rollout_id, _sentence(lead, rest))


def _from_given(plan: Plan, from_version: str | None, lead: str | None) -> Decision:
    if plan.status == ROLLED_BACK:
        if plan.previous_version is None:
            before = f" ({from_version})" if from_version else ""
            return Decision(
                None,
                None,
                plan.id,
                _sentence(
                    lead,
                    f"rollout {plan.id} of {plan.version} was rolled back and no earlier release "
                    f"of {plan.component} exists: go back to the version run before{before}",
                ),
            )
        return Decision(
            plan.previous_version,
            plan.previous_release_id,
            plan.id,
            _sentence(
                lead,
                f"rollout {plan.id} of {plan.version} was rolled back: back to the previous "
                f"release, {plan.previous_version}",
            ),
        )
    state = {
        RUNNING: "which is running",
        PAUSED: "which is paused",
        HALTED: "which is halted until it is resumed or rolled back",
        COMPLETED: "which completed",
    }[plan.status]
    return Decision(
        plan.version,
        plan.release_id,
        plan.id,
        _sentence(
            lead,
            f"rollout {plan.id}, {state}, gave this VM {plan.version}, and a VM keeps what it "
            "was given",
        ),
    )


def _sentence(lead: str | None, rest: str) -> str:
    text = rest if lead is None else f"{lead}; {rest}"
    return text[0].upper() + text[1:] + "."
