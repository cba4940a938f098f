"""update-service handlers: releases, rollouts, what each VM should run, and the health gate.

**What a VM is told** (:class:`GetDesiredVersion`) is decided from the component's rollouts,
newest first (:func:`.targeting.decide`): the first rollout that gave the VM its release
decides (a VM keeps what it was given; a rolled-back rollout sends it to the previous
release); else a running (or completed) rollout that targets it gives it the release, and
that is recorded in ``rollout_assignments`` under a lock of the rollout's row, so a pause
committed meanwhile (in any process) is never overtaken.

**Evaluation** (:meth:`UpdateActor._evaluate`): for each active rollout of a tenant, with the
fleet from vm-registry (``ListVmFleet``): progress counts, ring advance, the health gate
(``HALTED`` when more than ``SYNAPSEX_ROLLOUT_FAILURE_THRESHOLD`` of at least
``SYNAPSEX_ROLLOUT_MIN_SAMPLE`` VMs given the release report ``FAILED`` or are ``OFFLINE``) and
completion. It runs on the :class:`~synapsex.runtime.Lane` ``Evaluate``: for a tenant whose
VM sent a heartbeat (``NoteVmHeartbeat``, at most once a second per tenant) and, every
``SYNAPSEX_ROLLOUT_SWEEP_INTERVAL``, for every tenant with an active rollout (VMs go
``OFFLINE`` by sending nothing). Mutations evaluate their rollout at once, so their reply has
fresh counts.

Every change of a rollout row is conditional on the ``revision`` read (see ``models``): a
writer that lost the race changes nothing and publishes nothing. Events go through the
outbox, in the change's transaction.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from synapsex.actors.domain_events import Outbox
from synapsex.contracts.common import Page, as_utc
from synapsex.contracts.errors import Conflict, ContractError, NotFound
from synapsex.contracts.releases import (
    ACTIVE_STATUSES,
    COMPLETED,
    HALTED,
    PAUSED,
    RELEASE_CREATED,
    ROLLED_BACK,
    ROLLOUT_COMPLETED,
    ROLLOUT_HALTED,
    ROLLOUT_PAUSED,
    ROLLOUT_PROGRESSED,
    ROLLOUT_RESUMED,
    ROLLOUT_ROLLED_BACK,
    ROLLOUT_STARTED,
    RUNNING,
    SERVICE,
    CreateRelease,
    DesiredVersion,
    GetDesiredVersion,
    GetRelease,
    GetRollout,
    ListReleases,
    ListRollouts,
    NoteVmHeartbeat,
    PauseRollout,
    ReleaseView,
    ResumeRollout,
    RollbackRollout,
    RolloutView,
    SetRolloutPercentage,
    StartRollout,
    bucket_of,
    parse_version,
    version_key,
)
from synapsex.contracts.vms import GetVm, ListVmFleet, VmView
from synapsex.runtime import Actor, Lane, handler, new_id
from synapsex.runtime.orm import get_or_not_found, paginate

from .internal import Evaluate, EvaluateTenant
from .models import Release, Rollout, RolloutAssignment, UpdateOutbox
from .settings import UpdateSettings
from .targeting import (
    Plan,
    Progress,
    decide,
    eligible,
    measure,
    plan_of,
    reached_ring,
    reported_version,
    ring_of,
    rings_from_json,
    rings_to_json,
)

log = structlog.get_logger("synapsex.rollouts")

#: a tenant's rollouts are evaluated at most this often on heartbeats
DEBOUNCE_SECONDS = 1.0
#: how often the timer looks for tenants due
TICK_SECONDS = 0.25
#: rollouts of a component looked at (newest first) to decide what a VM runs
HISTORY = 50
#: a conditional write that lost a race is tried again this many times
WRITE_ATTEMPTS = 5


# ---------------------------------------------------------------------------- views


def release_view(row: Release) -> ReleaseView:
    return ReleaseView(
        id=row.id,
        tenant_id=row.tenant_id,
        component=row.component,
        version=row.version,
        notes=row.notes,
        url=row.url,
        sha256=row.sha256,
        created_at=as_utc(row.created_at),
    )


def rollout_view(row: Rollout) -> RolloutView:
    return RolloutView(
        id=row.id,
        tenant_id=row.tenant_id,
        release_id=row.release_id,
        component=row.component,
        version=row.version,
        previous_release_id=row.previous_release_id,
        previous_version=row.previous_version,
        status=row.status,
        percentage=row.percentage,
        labels=json.loads(row.labels),
        rings=rings_from_json(row.rings),
        current_ring=row.current_ring,
        targeted=row.targeted,
        updated=row.updated,
        failed=row.failed,
        halted_reason=row.halted_reason,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        ended_at=None if row.ended_at is None else as_utc(row.ended_at),
    )


def rollout_event(row: Rollout) -> dict[str, Any]:
    """The payload of every ``rollout.*`` event: the rollout's state after the change."""
    rings = rings_from_json(row.rings)
    return {
        "rolloutId": row.id,
        "releaseId": row.release_id,
        "component": row.component,
        "version": row.version,
        "previousVersion": row.previous_version,
        "status": row.status,
        "percentage": row.percentage,
        "ring": rings[row.current_ring].name if rings else None,
        "targeted": row.targeted,
        "updated": row.updated,
        "failed": row.failed,
        "haltedReason": row.halted_reason,
        "at": as_utc(row.updated_at).isoformat(),
    }


def _active_key(tenant_id: str, component: str) -> str:
    return f"{tenant_id}:{component}"


# ---------------------------------------------------------------------------- actor


class UpdateActor(Actor, service=SERVICE, models="synapsex.actors.update.models", concurrency=4):
    """Owns ``releases``, ``rollouts`` and ``rollout_assignments``."""

    async def on_start(self) -> None:
        runtime = self.actor_runtime
        self._settings = UpdateSettings.from_environ(runtime.settings.environ)
        self._outbox = Outbox(self, UpdateOutbox)
        self._outbox.start()
        self._lane = Lane(runtime, Evaluate)
        #: tenants whose VMs sent heartbeats since their last evaluation
        self._dirty: set[str] = set()
        #: when each tenant was last evaluated (monotonic seconds), for the debounce
        self._last: dict[str, float] = {}
        self._next_sweep = time.monotonic()  # at once: what a restart left to evaluate
        self._ticker = asyncio.create_task(self._tick(), name="update-tick")
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _task: self._ticker.cancel())

    async def on_stop(self) -> None:
        self._ticker.cancel()

    # ------------------------------------------------------------------ releases

    @handler
    async def create_release(self, msg: CreateRelease) -> ReleaseView:
        key = version_key(msg.version)
        taken = await Release.filter(
            tenant_id=msg.tenant_id, component=msg.component, version_key=key
        ).first()
        if taken is not None:
            raise _version_taken(msg.component, taken.version)
        row = Release(
            id=new_id("rel"),
            tenant_id=msg.tenant_id,
            component=msg.component,
            version=msg.version,
            version_key=key,
            notes=msg.notes,
            url=msg.url,
            sha256=msg.sha256.lower(),
            created_at=datetime.now(UTC),
        )
        try:
            async with in_transaction() as conn:
                await row.save(using_db=conn)
                await self._outbox.stage(
                    conn,
                    msg.tenant_id,
                    RELEASE_CREATED,
                    {
                        "releaseId": row.id,
                        "component": row.component,
                        "version": row.version,
                        "url": row.url,
                        "sha256": row.sha256,
                    },
                    key=row.id,
                )
        except IntegrityError:  # created meanwhile by another process
            raise _version_taken(msg.component, msg.version) from None
        await self._outbox.flush()
        return release_view(row)

    @handler(read_only=True)
    async def get_release(self, msg: GetRelease) -> ReleaseView:
        return release_view(await self._release(msg.tenant_id, msg.id, "id"))

    @handler(read_only=True)
    async def list_releases(self, msg: ListReleases) -> Page[ReleaseView]:
        query = Release.filter(tenant_id=msg.tenant_id)
        if msg.component is not None:
            query = query.filter(component=msg.component)
        return await paginate(query, first=msg.first, after=msg.after, view=release_view)

    async def _release(self, tenant_id: str, release_id: str, field: str) -> Release:
        return await get_or_not_found(
            Release.filter(tenant_id=tenant_id, id=release_id), "release", field=field
        )

    # ------------------------------------------------------------------ rollouts: reads

    @handler(read_only=True)
    async def get_rollout(self, msg: GetRollout) -> RolloutView:
        return rollout_view(await self._rollout(msg.tenant_id, msg.id))

    @handler(read_only=True)
    async def list_rollouts(self, msg: ListRollouts) -> Page[RolloutView]:
        query = Rollout.filter(tenant_id=msg.tenant_id)
        if msg.status is not None:
            query = query.filter(status=msg.status)
        if msg.component is not None:
            query = query.filter(component=msg.component)
        return await paginate(query, first=msg.first, after=msg.after, view=rollout_view)

    async def _rollout(self, tenant_id: str, rollout_id: str) -> Rollout:
        return await get_or_not_found(
            Rollout.filter(tenant_id=tenant_id, id=rollout_id), "rollout", field="id"
        )

    # ------------------------------------------------------------------ rollouts: changes

    @handler
    async def start_rollout(self, msg: StartRollout) -> RolloutView:
        release = await self._release(msg.tenant_id, msg.release_id, "releaseId")
        previous = await self._previous_release(release)
        now = datetime.now(UTC)
        row = Rollout(
            id=new_id("rol"),
            tenant_id=msg.tenant_id,
            component=release.component,
            release_id=release.id,
            version=release.version,
            previous_release_id=None if previous is None else previous.id,
            previous_version=None if previous is None else previous.version,
            status=RUNNING,
            percentage=msg.percentage,
            labels=json.dumps(msg.labels, sort_keys=True),
            rings=rings_to_json(msg.rings),
            current_ring=0,
            active_key=_active_key(msg.tenant_id, release.component),
            created_at=now,
            updated_at=now,
        )
        try:
            async with in_transaction() as conn:
                await row.save(using_db=conn)
                await self._outbox.stage(
                    conn, msg.tenant_id, ROLLOUT_STARTED, rollout_event(row), key=row.id
                )
        except IntegrityError:
            active = await Rollout.filter(
                active_key=_active_key(msg.tenant_id, release.component)
            ).first()
            what = "another rollout" if active is None else f"rollout {active.id}"
            state = "active" if active is None else active.status
            raise Conflict(
                f"{what} of {release.component} is {state}: a component has one active "
                "rollout at a time (roll it back, or let it complete, first)",
                field="releaseId",
            ) from None
        await self._outbox.flush()
        return await self._evaluated(row)

    async def _previous_release(self, release: Release) -> Release | None:
        """The release VMs go back to on rollback: the component's highest release below
        ``release`` by semantic-version precedence."""
        mine = parse_version(release.version)
        lower = [
            (parse_version(r.version), r)
            for r in await Release.filter(tenant_id=release.tenant_id, component=release.component)
            if parse_version(r.version).compare(mine) < 0
        ]
        if not lower:
            return None
        return max(lower, key=lambda pair: pair[0])[1]

    @handler
    async def set_percentage(self, msg: SetRolloutPercentage) -> RolloutView:
        def change(row: Rollout) -> dict[str, Any]:
            _require(row, ACTIVE_STATUSES, "change the percentage of")
            return {"percentage": msg.percentage}

        row = await self._change(msg.tenant_id, msg.id, change, ROLLOUT_PROGRESSED)
        return await self._evaluated(row)

    @handler
    async def pause(self, msg: PauseRollout) -> RolloutView:
        def change(row: Rollout) -> dict[str, Any]:
            _require(row, (RUNNING,), "pause")
            return {"status": PAUSED}

        return rollout_view(await self._change(msg.tenant_id, msg.id, change, ROLLOUT_PAUSED))

    @handler
    async def resume(self, msg: ResumeRollout) -> RolloutView:
        def change(row: Rollout) -> dict[str, Any]:
            _require(row, (PAUSED, HALTED), "resume")
            return {"status": RUNNING, "halted_reason": None}

        row = await self._change(msg.tenant_id, msg.id, change, ROLLOUT_RESUMED)
        return await self._evaluated(row)

    @handler
    async def rollback(self, msg: RollbackRollout) -> RolloutView:
        row = await self._rollout(msg.tenant_id, msg.id)
        latest = (
            await Rollout.filter(tenant_id=msg.tenant_id, component=row.component)
            .order_by("-id")
            .first()
        )
        if latest is not None and latest.id != row.id:
            raise Conflict(
                f"only the latest rollout of {row.component} ({latest.id}) can be rolled back",
                field="id",
            )

        def change(row: Rollout) -> dict[str, Any]:
            _require(row, (*ACTIVE_STATUSES, COMPLETED), "roll back")
            return {"status": ROLLED_BACK, "active_key": None, "ended_at": datetime.now(UTC)}

        return rollout_view(await self._change(msg.tenant_id, msg.id, change, ROLLOUT_ROLLED_BACK))

    async def _change(
        self,
        tenant_id: str,
        rollout_id: str,
        change: Callable[[Rollout], dict[str, Any]],
        topic: str,
    ) -> Rollout:
        """Apply ``change`` (which checks the status: ``CONFLICT``) to the rollout as it is,
        conditionally on its revision; read again and retry if another writer came first."""
        for _attempt in range(WRITE_ATTEMPTS):
            row = await self._rollout(tenant_id, rollout_id)
            changes = change(row)
            if await self._write(row, changes, (topic,)):
                return row
        raise Conflict("the rollout is changing under heavy contention; try again", field="id")

    async def _write(self, row: Rollout, changes: dict[str, Any], topics: tuple[str, ...]) -> bool:
        """Write ``changes`` to ``row`` if nobody changed it since it was read, and stage
        ``topics`` with its new state; ``False`` (nothing written) when somebody did."""
        revision = row.revision
        changes = {**changes, "revision": revision + 1, "updated_at": datetime.now(UTC)}
        async with in_transaction() as conn:
            done = (
                await Rollout.filter(id=row.id, revision=revision).using_db(conn).update(**changes)
            )
            if done:
                row.update_from_dict(changes)
                for topic in topics:
                    await self._outbox.stage(
                        conn, row.tenant_id, topic, rollout_event(row), key=row.id
                    )
        if done:
            await self._outbox.flush()
        return bool(done)

    async def _evaluated(self, row: Rollout) -> RolloutView:
        """The rollout after evaluating it (best effort: without the fleet, as it is)."""
        if row.status in ACTIVE_STATUSES:
            await self._evaluate(row.tenant_id, only=row.id)
            row = await self._rollout(row.tenant_id, row.id)
        return rollout_view(row)

    # ------------------------------------------------------------------ desired versions

    @handler(concurrent=True)  # the assignment is written under a lock of the rollout row
    async def desired_version(self, msg: GetDesiredVersion) -> DesiredVersion:
        try:
            vm = await self.actor_runtime.ask(GetVm(tenant_id=msg.tenant_id, id=msg.vm_id))
        except NotFound:
            raise NotFound("VM not found", field="vmId") from None
        for _attempt in range(WRITE_ATTEMPTS):
            history = [
                plan_of(r)
                for r in await Rollout.filter(tenant_id=msg.tenant_id, component=msg.component)
                .order_by("-id")
                .limit(HISTORY)
            ]
            given = {
                a.rollout_id: a.from_version
                for a in await RolloutAssignment.filter(
                    tenant_id=msg.tenant_id, vm_id=vm.id, component=msg.component
                )
            }
            decision = decide(vm, msg.component, history, given, preview=msg.preview)
            if decision.assign is None or msg.preview or await self._assign(decision.assign, vm):
                return DesiredVersion(
                    version=decision.version,
                    release_id=decision.release_id,
                    rollout_id=decision.rollout_id,
                    reason=decision.reason,
                )
        raise Conflict("the rollout is changing under heavy contention; ask again", field="vmId")

    async def _assign(self, plan: Plan, vm: VmView) -> bool:
        """Record that ``vm`` is given ``plan``'s release, if the rollout (locked, as it is
        now) still targets it; ``False`` when it changed meanwhile (decide again)."""
        try:
            async with in_transaction() as conn:
                row = await Rollout.filter(id=plan.id).select_for_update().using_db(conn).first()
                if row is None:
                    return False
                now = plan_of(row)
                if now.status not in (RUNNING, COMPLETED) or not eligible(now, vm):
                    return False
                await RolloutAssignment.create(
                    id=new_id("ras"),
                    tenant_id=row.tenant_id,
                    rollout_id=row.id,
                    vm_id=vm.id,
                    component=row.component,
                    bucket=bucket_of(row.id, vm.id),
                    ring=ring_of(now.rings, vm.labels) or 0,
                    from_version=reported_version(vm, row.component),
                    assigned_at=datetime.now(UTC),
                    using_db=conn,
                )
        except IntegrityError:
            pass  # given meanwhile (another process): deciding again finds it
        return True

    # ------------------------------------------------------------------ evaluation

    @handler(concurrent=True)  # only marks the tenant; never waits
    async def note_heartbeat(self, msg: NoteVmHeartbeat) -> None:
        self._dirty.add(msg.tenant_id)
        if time.monotonic() - self._last.get(msg.tenant_id, 0.0) >= DEBOUNCE_SECONDS:
            self._lane.request()

    @handler(concurrent=True)  # conditional writes (revision); the lane runs one at a time
    async def evaluate(self, msg: Evaluate) -> None:
        await self._lane.run(self._evaluate_due)

    @handler(concurrent=True)
    async def evaluate_tenant(self, msg: EvaluateTenant) -> None:
        await self._evaluate(msg.tenant_id)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            if now >= self._next_sweep or any(
                now - self._last.get(t, 0.0) >= DEBOUNCE_SECONDS for t in self._dirty
            ):
                self._lane.request()

    async def _evaluate_due(self) -> None:
        now = time.monotonic()
        due = {t for t in self._dirty if now - self._last.get(t, 0.0) >= DEBOUNCE_SECONDS}
        if now >= self._next_sweep:
            self._next_sweep = now + self._settings.sweep_seconds
            due |= set(
                await Rollout.filter(status__in=ACTIVE_STATUSES)
                .distinct()
                .values_list("tenant_id", flat=True)
            )
        # forget what no longer matters for the debounce
        self._last = {t: at for t, at in self._last.items() if now - at < DEBOUNCE_SECONDS}
        for tenant_id in sorted(due):
            self._dirty.discard(tenant_id)
            self._last[tenant_id] = now
            try:
                await self._evaluate(tenant_id)
            except ContractError as exc:  # the next heartbeat or sweep tries again
                log.warning("rollouts not evaluated", tenant_id=tenant_id, error=exc.code)

    async def _evaluate(self, tenant_id: str, only: str | None = None) -> None:
        """Evaluate the tenant's active rollouts (or only one) against its fleet."""
        query = Rollout.filter(tenant_id=tenant_id, status__in=ACTIVE_STATUSES)
        rows = await (query if only is None else query.filter(id=only))
        if not rows:
            return
        try:
            fleet = list((await self.actor_runtime.ask(ListVmFleet(tenant_id=tenant_id))).vms)
        except ContractError as exc:
            log.warning("fleet unavailable; rollouts not evaluated", error=exc.code)
            return
        for row in rows:
            for _attempt in range(WRITE_ATTEMPTS):
                if await self._evaluate_rollout(row, fleet):
                    break
                row = await Rollout.filter(id=row.id).first()
                if row is None or row.status not in ACTIVE_STATUSES:
                    break

    async def _evaluate_rollout(self, row: Rollout, fleet: list[VmView]) -> bool:
        """Progress, ring, health gate and completion of one rollout; ``False`` when another
        writer changed it first (evaluate it again)."""
        plan = plan_of(row)
        given = set(
            await RolloutAssignment.filter(rollout_id=row.id).values_list("vm_id", flat=True)
        )
        ring = reached_ring(plan, fleet) if plan.status == RUNNING else plan.current_ring
        plan = replace(plan, current_ring=ring)
        progress = measure(plan, fleet, given)
        changes: dict[str, Any] = {}
        topics: list[str] = []
        if plan.status == RUNNING:
            halt = self._gate(plan, progress)
            if halt is not None:
                changes.update(status=HALTED, halted_reason=halt)
                topics.append(ROLLOUT_HALTED)
                # counted as it now is: halted, it targets only the VMs given the release
                progress = measure(replace(plan, status=HALTED), fleet, given)
            elif plan.percentage == 100 and ring == plan.last_ring and progress.all_done:
                changes.update(status=COMPLETED, active_key=None, ended_at=datetime.now(UTC))
                topics.append(ROLLOUT_COMPLETED)
        counts = (progress.targeted, progress.updated, progress.failed, ring)
        if counts != (row.targeted, row.updated, row.failed, row.current_ring):
            changes.update(
                targeted=progress.targeted,
                updated=progress.updated,
                failed=progress.failed,
                current_ring=ring,
            )
            topics.insert(0, ROLLOUT_PROGRESSED)
        if not changes:
            return True
        return await self._write(row, changes, tuple(topics))

    def _gate(self, plan: Plan, progress: Progress) -> str | None:
        """Why the rollout must halt, or ``None``."""
        sample, threshold = self._settings.min_sample, self._settings.failure_threshold
        if progress.given < sample or progress.failed <= threshold * progress.given:
            return None
        share = round(100 * progress.failed / progress.given)
        return (
            f"{progress.failed} of the {progress.given} VMs given {plan.version} ({share} %) "
            f"report FAILED or are OFFLINE, more than the {threshold:.0%} allowed"
        )


def _require(row: Rollout, statuses: tuple[str, ...], what: str) -> None:
    if row.status not in statuses:
        raise Conflict(
            f"cannot {what} a rollout that is {row.status} (only one that is "
            f"{' or '.join(statuses)})",
            field="id",
            status=row.status,
        )


def _version_taken(component: str, version: str) -> Conflict:
    return Conflict(
        f"{component} already has a release {version} (build metadata does not count)",
        field="version",
    )
