"""VMs (vm-registry-service): registration with a VM token shown once, heartbeats sent by the
VM with that token, derived health, token rotation and deregistration.

A VM token (``sxvm_…``) only lets its VM send ``vmHeartbeat`` and ask for its desired versions;
anything else with it is FORBIDDEN (see ``GatewayContext.principal``). ``vmHeartbeat`` takes
nothing else: an API key there is FORBIDDEN too (a user cannot act as a VM).

Heartbeats are frequent, so they are audited only when they change the VM's versions or status
(action ``vm.heartbeat``, ``actorKeyId`` the VM's id, no member)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
import structlog
from strawberry.types import Info

from synapsex.contracts import vms as contract
from synapsex.contracts.audit import RecordAudit
from synapsex.contracts.auth import Principal
from synapsex.contracts.deployments import DeploymentReport, ListVmDeployments
from synapsex.contracts.errors import ContractError, InvalidInput, Timeout, Unavailable
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.deployments import AgentDeployment
from synapsex.graphql.guard import guarded, made_by_caller
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.scalars import JSON
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]
log = structlog.get_logger("synapsex.gateway")

VERSION_HELP = "A semantic version: MAJOR.MINOR.PATCH[-prerelease][+build], e.g. 1.4.0."
LABELS_HELP = (
    f"A JSON object of at most {contract.MAX_LABELS} labels (Kubernetes rules): keys "
    "[prefix/]name, name 1 to 63 letters, digits, '.', '_' or '-' starting and ending with a "
    "letter or digit, prefix a lower-case DNS subdomain; values strings of at most 63 such "
    'characters (or empty). E.g. {"zone": "eu-west", "example.com/gpu": "a100"}.'
)


# ---------------------------------------------------------------------------- types


@strawberry.enum(description="What a VM reports about itself in its heartbeats.")
class VmStatus(Enum):
    READY = "READY"
    BUSY = "BUSY"
    UPDATING = "UPDATING"
    FAILED = "FAILED"


@strawberry.enum(
    description=f"From the time since the VM's last heartbeat: HEALTHY within "
    f"{contract.STALE_AFTER_INTERVALS} heartbeat intervals, STALE after that (or not heard from "
    f"yet), OFFLINE after {contract.OFFLINE_AFTER_INTERVALS} intervals (or never heard from "
    "that long after its registration)."
)
class VmHealth(Enum):
    HEALTHY = "HEALTHY"
    STALE = "STALE"
    OFFLINE = "OFFLINE"


@strawberry.enum(description="What a VM may report about one of its deployments.")
class ReportedDeploymentState(Enum):
    RUNNING = "RUNNING"
    FAILED = "FAILED"


@strawberry.type(description="A VM of the tenant.")
class Vm:
    id: strawberry.ID
    name: str = strawberry.field(description="Unique in the tenant (case-insensitively).")
    labels: JSON = strawberry.field(description="Label keys to values.")
    runtime_version: str
    agent_version: str
    status: VmStatus = strawberry.field(
        description="What the VM last reported (READY until its first heartbeat)."
    )
    last_heartbeat_at: datetime | None = strawberry.field(
        description="The last heartbeat (null: never)."
    )
    health: VmHealth
    created_at: datetime
    created_by: strawberry.ID | None = strawberry.field(description="The member who registered it.")

    @classmethod
    def of(cls, view: contract.VmView) -> Vm:
        return cls(
            id=strawberry.ID(view.id),
            name=view.name,
            labels=JSON(dict(view.labels)),
            runtime_version=view.runtime_version,
            agent_version=view.agent_version,
            status=VmStatus(view.status),
            last_heartbeat_at=view.last_heartbeat_at,
            health=VmHealth(view.health),
            created_at=view.created_at,
            created_by=strawberry.ID(view.created_by) if view.created_by else None,
        )


@strawberry.type(description="A VM and its token.")
class VmTokenPayload:
    token: str = strawberry.field(
        description="The VM token: shown once, never again. It only lets the VM send "
        "heartbeats and ask for its desired versions."
    )
    vm: Vm


@strawberry.type(description="What a heartbeat answers the VM.")
class VmHeartbeatPayload:
    vm: Vm
    deployments: list[AgentDeployment] | None = strawberry.field(
        description="The VM's current deployments (not UNDEPLOYED): what it should run. "
        "Their states may not show this heartbeat's reports yet (those are passed on without "
        "waiting). Null when they cannot be read right now (agent-registry unavailable): keep "
        "running what runs, and ask again with the next heartbeat."
    )
    heartbeat_interval_seconds: float = strawberry.field(
        description="Send the next heartbeat within this many seconds."
    )


# ---------------------------------------------------------------------------- inputs


@strawberry.input
class RegisterVmInput:
    name: str = strawberry.field(
        description="1 to 63 letters, digits, '.', '_' or '-', starting and ending with a letter "
        "or digit; unique in the tenant (case-insensitively)."
    )
    labels: JSON | None = strawberry.field(default=None, description=LABELS_HELP)
    runtime_version: str = strawberry.field(description=VERSION_HELP)
    agent_version: str = strawberry.field(description=VERSION_HELP)


@strawberry.input
class RotateVmTokenInput:
    id: strawberry.ID


@strawberry.input
class DeregisterVmInput:
    id: strawberry.ID


@strawberry.input(description="One deployment's state as the VM sees it.")
class VmDeploymentReportInput:
    deployment_id: strawberry.ID
    state: ReportedDeploymentState
    error: str | None = strawberry.field(default=None, description="What went wrong (FAILED).")


@strawberry.input
class VmHeartbeatInput:
    runtime_version: str = strawberry.field(description=VERSION_HELP)
    agent_version: str = strawberry.field(description=VERSION_HELP)
    status: VmStatus
    deployments: list[VmDeploymentReportInput] = strawberry.field(
        default_factory=list,
        description="The state of each deployment the VM runs (unknown ids are ignored).",
    )


def _labels(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("labels", "must be a JSON object of label keys to string values")
    return value


# ---------------------------------------------------------------------------- resolvers


@strawberry.type
class VmQuery:
    @strawberry.field(
        description="The tenant's VMs, oldest first, narrowed by status, health and label "
        "(key=value: the VM has that label with that value, e.g. zone=eu-west)."
    )
    async def vms(
        self,
        info: Ctx,
        status: VmStatus | None = None,
        health: VmHealth | None = None,
        label: str | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[Vm]:
        return await tenant_connection(
            info,
            contract.ListVms,
            Vm.of,
            status=None if status is None else status.value,
            health=None if health is None else health.value,
            label=label,
            first=first,
            after=after,
        )

    @strawberry.field(description="One VM of the tenant.")
    async def vm(self, info: Ctx, id: strawberry.ID) -> Vm:
        p = await info.context.principal()
        return Vm.of(await info.context.ask(contract.GetVm(tenant_id=p.tenant_id, id=str(id))))


async def _registered_by_caller(info: Ctx, vm_id: str) -> bool:
    """Whether the caller registered the VM (``False`` when it is not found)."""
    return await made_by_caller(info, lambda t: contract.GetVm(tenant_id=t, id=vm_id))


@strawberry.type
class VmMutation:
    @strawberry.mutation(
        description="Register a VM. The reply carries its VM token, shown once: install it on "
        "the VM, which sends its heartbeats with it."
    )
    async def register_vm(self, info: Ctx, input: RegisterVmInput) -> VmTokenPayload:
        async def run(p: Principal) -> contract.RegisteredVm:
            return await info.context.ask(
                contract.RegisterVm(
                    tenant_id=p.tenant_id,
                    name=input.name,
                    labels=_labels(input.labels),
                    runtime_version=input.runtime_version,
                    agent_version=input.agent_version,
                    created_by=p.member_id,
                )
            )

        created = await guarded(
            info,
            action="vm.create",
            resource_type="vm",
            run=run,
            resource_id_of=lambda result: result.vm.id,
        )
        return VmTokenPayload(token=created.token, vm=Vm.of(created.vm))

    @strawberry.mutation(
        description="Give the VM a new token (shown once); the old one stops working at once."
    )
    async def rotate_vm_token(self, info: Ctx, input: RotateVmTokenInput) -> VmTokenPayload:
        vm_id = str(input.id)

        async def run(p: Principal) -> contract.RegisteredVm:
            return await info.context.ask(contract.RotateVmToken(tenant_id=p.tenant_id, id=vm_id))

        rotated = await guarded(
            info,
            action="vm.token.rotate",
            resource_type="vm",
            resource_id=vm_id,
            run=run,
            is_own_resource=await _registered_by_caller(info, vm_id),
        )
        return VmTokenPayload(token=rotated.token, vm=Vm.of(rotated.vm))

    @strawberry.mutation(
        description="Remove a VM: its token stops working, its name and its place under the "
        "plan's VM limit are freed, and what was deployed on it is undeployed."
    )
    async def deregister_vm(self, info: Ctx, input: DeregisterVmInput) -> Vm:
        vm_id = str(input.id)

        async def run(p: Principal) -> contract.VmView:
            return await info.context.ask(contract.DeregisterVm(tenant_id=p.tenant_id, id=vm_id))

        view = await guarded(
            info,
            action="vm.deregister",
            resource_type="vm",
            resource_id=vm_id,
            run=run,
            is_own_resource=await _registered_by_caller(info, vm_id),
        )
        return Vm.of(view)

    @strawberry.mutation(
        description="Sent by a VM, with its VM token (an API key is FORBIDDEN): its versions, "
        "its status and its deployments' states. Answers the VM and what it should run."
    )
    async def vm_heartbeat(self, info: Ctx, input: VmHeartbeatInput) -> VmHeartbeatPayload:
        ctx = info.context
        vm = await ctx.vm_principal()
        reports = tuple(
            DeploymentReport(deployment_id=str(r.deployment_id), state=r.state.value, error=r.error)
            for r in input.deployments
        )
        ack = await ctx.ask(
            contract.VmHeartbeat(
                tenant_id=vm.tenant_id,
                vm_id=vm.vm_id,
                runtime_version=input.runtime_version,
                agent_version=input.agent_version,
                status=input.status.value,
                deployments=reports,
            )
        )
        if ack.changed:
            await _audit_heartbeat(ctx, ack.vm)
        return VmHeartbeatPayload(
            vm=Vm.of(ack.vm),
            deployments=await _current_deployments(ctx, ack.vm),
            heartbeat_interval_seconds=ack.heartbeat_interval_seconds,
        )


async def _current_deployments(
    ctx: GatewayContext, vm: contract.VmView
) -> list[AgentDeployment] | None:
    """What the VM should run; ``None`` when agent-registry cannot say (not running here,
    restarting, too slow): an empty list would tell the VM to stop everything."""
    try:
        listed = await ctx.ask(ListVmDeployments(tenant_id=vm.tenant_id, vm_id=vm.id))
    except (Unavailable, Timeout) as exc:
        log.warning(
            "heartbeat answered without deployments",
            request_id=ctx.request_id,
            error_code=exc.code,
        )
        return None
    return [AgentDeployment.of(view) for view in listed.items]


async def _audit_heartbeat(ctx: GatewayContext, vm: contract.VmView) -> None:
    """The record of a heartbeat that changed the VM (the VM is the actor, as its id)."""
    try:
        await ctx.ask(
            RecordAudit(
                tenant_id=vm.tenant_id,
                actor_key_id=vm.id,
                action="vm.heartbeat",
                resource_type="vm",
                resource_id=vm.id,
                outcome="SUCCESS",
                request_id=ctx.request_id,
            )
        )
    except ContractError as exc:
        # the heartbeat stands; the missing record is an operator's alarm
        log.error(
            "audit record not written",
            action="vm.heartbeat",
            request_id=ctx.request_id,
            error_code=exc.code,
        )
