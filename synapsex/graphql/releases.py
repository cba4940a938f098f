"""Releases and rollouts: what the fleet's VMs should run, and how they get there.

Users create releases and roll them out (``startRollout`` … ``rollbackRollout``); a VM asks
``desiredVersion`` with its own VM token (the only query a VM token may make), a user
previews the same answer for any VM with ``vmDesiredVersion``. ``rolloutProgress`` streams a
rollout's state: first as it is, then after every ``rollout.*`` event of it, over the event
bus's live stream (:func:`synapsex.graphql.events.tenant_events`); it ends when the rollout
completes or is rolled back.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from synapsex.contracts import releases as contract
from synapsex.contracts.auth import Principal
from synapsex.contracts.errors import InvalidInput
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.events import tenant_events
from synapsex.graphql.guard import guarded
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.scalars import JSON
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]

#: events of a rollout that end its progress stream
_FINAL = (contract.COMPLETED, contract.ROLLED_BACK)


# ---------------------------------------------------------------------------- types


def _id(value: str | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(value)


@strawberry.enum(description="What a release updates on a VM.")
class ReleaseComponent(Enum):
    AGENT = "AGENT"
    RUNTIME = "RUNTIME"


@strawberry.enum(
    description="RUNNING targets VMs; PAUSED and HALTED (by the health gate) target no new VM "
    "but VMs given the release keep it; COMPLETED: every targeted VM runs it; ROLLED_BACK: VMs "
    "given it go back to the previous release."
)
class RolloutStatus(Enum):
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    HALTED = "HALTED"
    COMPLETED = "COMPLETED"
    ROLLED_BACK = "ROLLED_BACK"


@strawberry.type(description="One version of the VM agent or runtime.")
class Release:
    id: strawberry.ID
    component: ReleaseComponent
    version: str = strawberry.field(description="A semantic version (semver.org).")
    notes: str
    url: str = strawberry.field(description="Where VMs download it.")
    sha256: str = strawberry.field(description="Hex SHA-256 of the download, to verify it.")
    created_at: datetime

    @classmethod
    def of(cls, view: contract.ReleaseView) -> Release:
        return cls(
            id=strawberry.ID(view.id),
            component=ReleaseComponent(view.component),
            version=view.version,
            notes=view.notes,
            url=view.url,
            sha256=view.sha256,
            created_at=view.created_at,
        )


@strawberry.type(description="An ordered group of VMs: those matching its label selector.")
class RolloutRing:
    name: str
    labels: JSON = strawberry.field(description="Label selector: every pair must match.")


@strawberry.type(description="A release being delivered to the tenant's VMs.")
class Rollout:
    id: strawberry.ID
    release_id: strawberry.ID
    component: ReleaseComponent
    version: str
    previous_release_id: strawberry.ID | None = strawberry.field(
        description="Where a rollback sends VMs: the highest earlier release by precedence."
    )
    previous_version: str | None
    status: RolloutStatus
    percentage: int = strawberry.field(description="Share of VMs (by bucket) targeted, 0-100.")
    labels: JSON = strawberry.field(description="Label selector narrowing the target.")
    rings: list[RolloutRing]
    current_ring: str | None = strawberry.field(
        description="The last ring reached (null without rings)."
    )
    targeted: int = strawberry.field(description="VMs given the release, or targeted now.")
    updated: int = strawberry.field(description="Targeted VMs reporting the release's version.")
    failed: int = strawberry.field(
        description="VMs given the release that report FAILED or are OFFLINE."
    )
    halted_reason: str | None = strawberry.field(description="Why the health gate halted it.")
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None

    @strawberry.field(description="The release being rolled out.")
    async def release(self, info: Ctx) -> Release:
        p = await info.context.principal()
        view = await info.context.ask(
            contract.GetRelease(tenant_id=p.tenant_id, id=str(self.release_id))
        )
        return Release.of(view)

    @classmethod
    def of(cls, view: contract.RolloutView) -> Rollout:
        return cls(
            id=strawberry.ID(view.id),
            release_id=strawberry.ID(view.release_id),
            component=ReleaseComponent(view.component),
            version=view.version,
            previous_release_id=(
                None
                if view.previous_release_id is None
                else strawberry.ID(view.previous_release_id)
            ),
            previous_version=view.previous_version,
            status=RolloutStatus(view.status),
            percentage=view.percentage,
            labels=dict(view.labels),
            rings=[RolloutRing(name=r.name, labels=dict(r.labels)) for r in view.rings],
            current_ring=view.rings[view.current_ring].name if view.rings else None,
            targeted=view.targeted,
            updated=view.updated,
            failed=view.failed,
            halted_reason=view.halted_reason,
            created_at=view.created_at,
            updated_at=view.updated_at,
            ended_at=view.ended_at,
        )


@strawberry.type(description="What a VM should run of one component.")
class DesiredVersion:
    version: str | None = strawberry.field(description="Null: keep the version it runs.")
    release_id: strawberry.ID | None
    rollout_id: strawberry.ID | None
    reason: str = strawberry.field(description="The decision, explained in a sentence.")

    @classmethod
    def of(cls, view: contract.DesiredVersion) -> DesiredVersion:
        return cls(
            version=view.version,
            release_id=_id(view.release_id),
            rollout_id=_id(view.rollout_id),
            reason=view.reason,
        )


@strawberry.type(description="A rollout's state, streamed by rolloutProgress.")
class RolloutProgress:
    rollout_id: strawberry.ID
    status: RolloutStatus
    percentage: int
    ring: str | None
    targeted: int
    updated: int
    failed: int
    at: datetime

    @classmethod
    def of(cls, view: contract.RolloutView) -> RolloutProgress:
        return cls(
            rollout_id=strawberry.ID(view.id),
            status=RolloutStatus(view.status),
            percentage=view.percentage,
            ring=view.rings[view.current_ring].name if view.rings else None,
            targeted=view.targeted,
            updated=view.updated,
            failed=view.failed,
            at=view.updated_at,
        )

    @classmethod
    def from_event(cls, payload: dict[str, Any]) -> RolloutProgress:
        return cls(
            rollout_id=strawberry.ID(payload["rolloutId"]),
            status=RolloutStatus(payload["status"]),
            percentage=payload["percentage"],
            ring=payload["ring"],
            targeted=payload["targeted"],
            updated=payload["updated"],
            failed=payload["failed"],
            at=datetime.fromisoformat(payload["at"]),
        )


# ---------------------------------------------------------------------------- inputs


@strawberry.input
class CreateReleaseInput:
    component: ReleaseComponent
    version: str = strawberry.field(description="A semantic version, e.g. 1.4.0 or 2.0.0-rc.1.")
    url: str = strawberry.field(description="Where VMs download it (http or https).")
    sha256: str = strawberry.field(description="Hex SHA-256 of the download.")
    notes: str = ""


@strawberry.input
class RolloutRingInput:
    name: str
    labels: JSON = strawberry.field(description='Label selector, e.g. {"ring": "canary"}.')


@strawberry.input
class StartRolloutInput:
    release_id: strawberry.ID
    percentage: int = strawberry.field(description="Share of VMs targeted, 0-100.")
    labels: JSON | None = strawberry.field(
        default=None, description="Label selector narrowing the target (omitted: every VM)."
    )
    rings: list[RolloutRingInput] | None = strawberry.field(
        default=None,
        description="Ordered rings: the next is targeted once every VM targeted in the current "
        "one runs the release and is healthy. A VM is in the first ring that matches.",
    )


@strawberry.input
class SetRolloutPercentageInput:
    id: strawberry.ID
    percentage: int


@strawberry.input
class PauseRolloutInput:
    id: strawberry.ID


@strawberry.input
class ResumeRolloutInput:
    id: strawberry.ID


@strawberry.input
class RollbackRolloutInput:
    id: strawberry.ID


def _selector(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput(field, "must be a JSON object of label keys to string values")
    return value


def _rings(rings: list[RolloutRingInput] | None) -> tuple[contract.RolloutRing, ...]:
    return tuple(
        contract.RolloutRing(name=r.name, labels=_selector(r.labels, f"rings.{i}.labels"))
        for i, r in enumerate(rings or ())
    )


# ---------------------------------------------------------------------------- resolvers


@strawberry.type
class ReleaseQuery:
    @strawberry.field(description="The tenant's releases, oldest first.")
    async def releases(
        self,
        info: Ctx,
        component: ReleaseComponent | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[Release]:
        return await tenant_connection(
            info,
            contract.ListReleases,
            Release.of,
            component=None if component is None else component.value,
            first=first,
            after=after,
        )

    @strawberry.field
    async def release(self, info: Ctx, id: strawberry.ID) -> Release:
        p = await info.context.principal()
        return Release.of(
            await info.context.ask(contract.GetRelease(tenant_id=p.tenant_id, id=str(id)))
        )

    @strawberry.field(description="The tenant's rollouts, oldest first.")
    async def rollouts(
        self,
        info: Ctx,
        status: RolloutStatus | None = None,
        component: ReleaseComponent | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[Rollout]:
        return await tenant_connection(
            info,
            contract.ListRollouts,
            Rollout.of,
            status=None if status is None else status.value,
            component=None if component is None else component.value,
            first=first,
            after=after,
        )

    @strawberry.field
    async def rollout(self, info: Ctx, id: strawberry.ID) -> Rollout:
        p = await info.context.principal()
        return Rollout.of(
            await info.context.ask(contract.GetRollout(tenant_id=p.tenant_id, id=str(id)))
        )

    @strawberry.field(
        description="For a VM, with its VM token: the version of the component it should run. "
        "When a running rollout targets it, it is given the release (and keeps it)."
    )
    async def desired_version(self, info: Ctx, component: ReleaseComponent) -> DesiredVersion:
        vm = await info.context.vm_principal()
        view = await info.context.ask(
            contract.GetDesiredVersion(
                tenant_id=vm.tenant_id, vm_id=vm.vm_id, component=component.value
            )
        )
        return DesiredVersion.of(view)

    @strawberry.field(
        description="What a VM of the tenant would be told by desiredVersion now (records nothing)."
    )
    async def vm_desired_version(
        self, info: Ctx, vm_id: strawberry.ID, component: ReleaseComponent
    ) -> DesiredVersion:
        p = await info.context.principal()
        view = await info.context.ask(
            contract.GetDesiredVersion(
                tenant_id=p.tenant_id, vm_id=str(vm_id), component=component.value, preview=True
            )
        )
        return DesiredVersion.of(view)


async def _rollout_mutation(
    info: Ctx, action: str, rollout_id: str, message: Any
) -> contract.RolloutView:
    async def run(p: Principal) -> contract.RolloutView:
        return await info.context.ask(message(p))

    return await guarded(
        info, action=action, resource_type="rollout", resource_id=rollout_id, run=run
    )


@strawberry.type
class ReleaseMutation:
    @strawberry.mutation(description="Create a release (versions are unique per component).")
    async def create_release(self, info: Ctx, input: CreateReleaseInput) -> Release:
        async def run(p: Principal) -> contract.ReleaseView:
            return await info.context.ask(
                contract.CreateRelease(
                    tenant_id=p.tenant_id,
                    component=input.component.value,
                    version=input.version,
                    url=input.url,
                    sha256=input.sha256,
                    notes=input.notes,
                )
            )

        view = await guarded(info, action="release.create", resource_type="release", run=run)
        return Release.of(view)

    @strawberry.mutation(
        description="Start rolling a release out; one active rollout per component."
    )
    async def start_rollout(self, info: Ctx, input: StartRolloutInput) -> Rollout:
        labels = _selector(input.labels, "labels")
        rings = _rings(input.rings)

        async def run(p: Principal) -> contract.RolloutView:
            return await info.context.ask(
                contract.StartRollout(
                    tenant_id=p.tenant_id,
                    release_id=str(input.release_id),
                    percentage=input.percentage,
                    labels=labels,
                    rings=rings,
                )
            )

        view = await guarded(info, action="rollout.start", resource_type="rollout", run=run)
        return Rollout.of(view)

    @strawberry.mutation(
        description="Change the share of VMs targeted. Raising it only adds VMs; lowering it "
        "gives no new VM the release (VMs given it keep it)."
    )
    async def set_rollout_percentage(self, info: Ctx, input: SetRolloutPercentageInput) -> Rollout:
        view = await _rollout_mutation(
            info,
            "rollout.percentage.set",
            str(input.id),
            lambda p: contract.SetRolloutPercentage(
                tenant_id=p.tenant_id, id=str(input.id), percentage=input.percentage
            ),
        )
        return Rollout.of(view)

    @strawberry.mutation(description="Target no new VM (VMs given the release keep it).")
    async def pause_rollout(self, info: Ctx, input: PauseRolloutInput) -> Rollout:
        view = await _rollout_mutation(
            info,
            "rollout.pause",
            str(input.id),
            lambda p: contract.PauseRollout(tenant_id=p.tenant_id, id=str(input.id)),
        )
        return Rollout.of(view)

    @strawberry.mutation(description="Resume a paused or halted rollout.")
    async def resume_rollout(self, info: Ctx, input: ResumeRolloutInput) -> Rollout:
        view = await _rollout_mutation(
            info,
            "rollout.resume",
            str(input.id),
            lambda p: contract.ResumeRollout(tenant_id=p.tenant_id, id=str(input.id)),
        )
        return Rollout.of(view)

    @strawberry.mutation(
        description="Send every VM given the release back to the previous release (only the "
        "component's latest rollout)."
    )
    async def rollback_rollout(self, info: Ctx, input: RollbackRolloutInput) -> Rollout:
        view = await _rollout_mutation(
            info,
            "rollout.rollback",
            str(input.id),
            lambda p: contract.RollbackRollout(tenant_id=p.tenant_id, id=str(input.id)),
        )
        return Rollout.of(view)


@strawberry.type
class ReleaseSubscription:
    @strawberry.subscription(
        description="A rollout's progress: its state now, then after every change; ends once "
        "it completes or is rolled back."
    )
    async def rollout_progress(
        self, info: Ctx, rollout_id: strawberry.ID
    ) -> AsyncGenerator[RolloutProgress, None]:
        ctx = info.context
        principal = await ctx.principal()
        wanted = str(rollout_id)
        async with tenant_events(ctx, principal.tenant_id, ("rollout.*",)) as stream:
            # listening already: a change committed after this snapshot is streamed
            view = await ctx.ask(contract.GetRollout(tenant_id=principal.tenant_id, id=wanted))
            yield RolloutProgress.of(view)
            if view.status in _FINAL:
                return
            async for event in stream:
                payload = event.payload
                if not isinstance(payload, dict) or payload.get("rolloutId") != wanted:
                    continue
                yield RolloutProgress.from_event(payload)
                if payload["status"] in _FINAL:
                    return
