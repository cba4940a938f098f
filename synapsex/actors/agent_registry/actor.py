"""agent-registry-service handlers: deployments of agents on VMs and the states VMs report.

What must hold across processes lives in the database: one current deployment per agent and
VM is the unique ``slot`` column (NULL once UNDEPLOYED); every state change is a conditional
update on the state it was read in (compare-and-set), so two processes applying reports,
undeploys or redeploys at once cannot both win, and an event is staged only by the one whose
update changed the row.

So every handler may run side by side (``concurrent=True``): a deploy waiting on api-gateway
(``GetAgent``) and vm-registry (``GetVm``) never holds up a heartbeat's report or
``ListVmDeployments``, and nothing here waits for a service that might be waiting for it
(api-gateway only *tells* this service to undeploy an archived agent).
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from synapsex.actors.domain_events import Outbox
from synapsex.contracts.agents import GetAgent
from synapsex.contracts.common import Page, as_utc
from synapsex.contracts.deployments import (
    AGENT_DEPLOYED,
    AGENT_DEPLOYMENT_STATE_CHANGED,
    AGENT_UNDEPLOYED,
    CURRENT_STATES,
    SERVICE,
    DeployAgent,
    DeploymentList,
    DeploymentView,
    GetDeployment,
    ListDeployments,
    ListVmDeployments,
    ReportDeploymentStates,
    UndeployAgent,
    UndeployAll,
    deployment_event,
)
from synapsex.contracts.errors import Conflict, NotFound
from synapsex.contracts.vms import GetVm
from synapsex.runtime import Actor, handler, new_id
from synapsex.runtime.orm import paginate

from .models import AgentDeployment, AgentRegistryOutbox, slot_of

PENDING = "PENDING"
RUNNING = "RUNNING"
FAILED = "FAILED"
UNDEPLOYED = "UNDEPLOYED"


def deployment_view(row: AgentDeployment) -> DeploymentView:
    return DeploymentView(
        id=row.id,
        tenant_id=row.tenant_id,
        agent_id=row.agent_id,
        vm_id=row.vm_id,
        version=row.version,
        state=row.state,
        error=row.error,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        reported_at=None if row.reported_at is None else as_utc(row.reported_at),
        replaces_id=row.replaces_id,
    )


class AgentRegistryActor(
    Actor,
    service=SERVICE,
    models="synapsex.actors.agent_registry.models",
    concurrency=8,
):
    """Owns ``agent_deployments``; publishes ``agent.deployed``,
    ``agent.deployment.state_changed`` and ``agent.undeployed`` through its outbox."""

    async def on_start(self) -> None:
        self._outbox = Outbox(self, AgentRegistryOutbox)
        self._outbox.start()

    async def _deployment(self, tenant_id: str, deployment_id: str) -> AgentDeployment:
        row = await AgentDeployment.filter(id=deployment_id, tenant_id=tenant_id).first()
        if row is None:
            raise NotFound("deployment not found", field="id", id=deployment_id)
        return row

    async def _current_on_vm(self, tenant_id: str, vm_id: str) -> DeploymentList:
        rows = await AgentDeployment.filter(
            tenant_id=tenant_id, vm_id=vm_id, slot__isnull=False
        ).order_by("id")
        return DeploymentList(items=tuple(deployment_view(r) for r in rows))

    # ------------------------------------------------------------------ reads

    @handler(read_only=True)
    async def get_deployment(self, msg: GetDeployment) -> DeploymentView:
        return deployment_view(await self._deployment(msg.tenant_id, msg.id))

    @handler(read_only=True)
    async def list_deployments(self, msg: ListDeployments) -> Page[DeploymentView]:
        query = AgentDeployment.filter(tenant_id=msg.tenant_id)
        if msg.agent_id is not None:
            query = query.filter(agent_id=msg.agent_id)
        if msg.vm_id is not None:
            query = query.filter(vm_id=msg.vm_id)
        if msg.state is None:
            query = query.filter(state__in=CURRENT_STATES)
        else:
            query = query.filter(state=msg.state)
        return await paginate(query, first=msg.first, after=msg.after, view=deployment_view)

    @handler(read_only=True)
    async def list_vm_deployments(self, msg: ListVmDeployments) -> DeploymentList:
        return await self._current_on_vm(msg.tenant_id, msg.vm_id)

    # ------------------------------------------------------------------ deploy, undeploy

    async def _undeploy(
        self, conn, row: AgentDeployment, reason: str, now: datetime
    ) -> DeploymentView | None:
        """Undeploy ``row`` if it is still current (in ``conn``'s transaction) and stage
        ``agent.undeployed``; ``None`` when another writer got there first."""
        undeployed = (
            await AgentDeployment.filter(id=row.id, slot__isnull=False)
            .using_db(conn)
            .update(state=UNDEPLOYED, slot=None, updated_at=now)
        )
        if not undeployed:
            return None
        previous = row.state
        row.state, row.slot, row.updated_at = UNDEPLOYED, None, now
        view = deployment_view(row)
        await self._outbox.stage(
            conn,
            row.tenant_id,
            AGENT_UNDEPLOYED,
            {**deployment_event(view), "from": previous, "reason": reason},
            key=slot_of(row.agent_id, row.vm_id),
        )
        return view

    @handler(concurrent=True)  # the unique slot and conditional updates decide
    async def deploy_agent(self, msg: DeployAgent) -> DeploymentView:
        try:
            agent = await self.actor_runtime.ask(GetAgent(tenant_id=msg.tenant_id, id=msg.agent_id))
        except NotFound:
            raise NotFound("agent not found", field="agentId", id=msg.agent_id) from None
        if agent.status != "ACTIVE":
            raise Conflict("an archived agent cannot be deployed", field="agentId", id=agent.id)
        try:
            await self.actor_runtime.ask(GetVm(tenant_id=msg.tenant_id, id=msg.vm_id))
        except NotFound:
            raise NotFound("VM not found", field="vmId", id=msg.vm_id) from None
        version = msg.version or agent.version
        slot = slot_of(msg.agent_id, msg.vm_id)
        current = await AgentDeployment.filter(tenant_id=msg.tenant_id, slot=slot).first()
        if current is not None and current.version == version and current.state != FAILED:
            return deployment_view(current)  # already deployed (or on its way)
        now = datetime.now(UTC)
        try:
            async with in_transaction() as conn:
                if current is not None:
                    await self._undeploy(conn, current, "REPLACED", now)
                row = await AgentDeployment.create(
                    id=new_id("dep"),
                    tenant_id=msg.tenant_id,
                    agent_id=msg.agent_id,
                    vm_id=msg.vm_id,
                    version=version,
                    state=PENDING,
                    slot=slot,
                    replaces_id=None if current is None else current.id,
                    created_at=now,
                    updated_at=now,
                    using_db=conn,
                )
                view = deployment_view(row)
                await self._outbox.stage(
                    conn, msg.tenant_id, AGENT_DEPLOYED, deployment_event(view), key=slot
                )
        except IntegrityError:  # deployed there at the same moment by another request
            raise Conflict(
                "the agent was being deployed on this VM at the same time; try again",
                field="vmId",
            ) from None
        await self._outbox.flush()
        return view

    @handler(concurrent=True)
    async def undeploy_agent(self, msg: UndeployAgent) -> DeploymentView:
        row = await self._deployment(msg.tenant_id, msg.id)
        if row.slot is None:
            return deployment_view(row)  # undeployed already
        async with in_transaction() as conn:
            view = await self._undeploy(conn, row, "UNDEPLOYED", datetime.now(UTC))
        if view is None:  # undeployed meanwhile
            return deployment_view(await self._deployment(msg.tenant_id, msg.id))
        await self._outbox.flush()
        return view

    @handler(concurrent=True)
    async def undeploy_all(self, msg: UndeployAll) -> DeploymentList:
        query = AgentDeployment.filter(tenant_id=msg.tenant_id, slot__isnull=False)
        if msg.agent_id is not None:
            query = query.filter(agent_id=msg.agent_id)
        if msg.vm_id is not None:
            query = query.filter(vm_id=msg.vm_id)
        rows = await query.order_by("id")
        if not rows:
            return DeploymentList(items=())
        now = datetime.now(UTC)
        undone: list[DeploymentView] = []
        async with in_transaction() as conn:
            for row in rows:
                view = await self._undeploy(conn, row, msg.reason, now)
                if view is not None:
                    undone.append(view)
        await self._outbox.flush()
        return DeploymentList(items=tuple(undone))

    # ------------------------------------------------------------------ reports of VMs

    @handler(concurrent=True)  # compare-and-set on the state each row was read in
    async def report_states(self, msg: ReportDeploymentStates) -> DeploymentList:
        reports = {r.deployment_id: r for r in msg.reports}  # the last report of an id wins
        rows = []
        if reports:
            rows = await AgentDeployment.filter(
                tenant_id=msg.tenant_id,
                vm_id=msg.vm_id,
                id__in=list(reports),
                slot__isnull=False,
            ).order_by("id")
        changes = []
        for row in rows:
            report = reports[row.id]
            error = report.error if report.state == FAILED else None
            if (row.state, row.error) != (report.state, error):
                changes.append((row, report.state, error))
        if changes:
            now = datetime.now(UTC)
            async with in_transaction() as conn:
                for row, state, error in changes:
                    changed = (
                        await AgentDeployment.filter(id=row.id, state=row.state, slot__isnull=False)
                        .using_db(conn)
                        .update(state=state, error=error, updated_at=now, reported_at=now)
                    )
                    if not changed or row.state == state:
                        continue  # changed by another writer meanwhile, or a new error text only
                    previous = row.state
                    row.state, row.error, row.updated_at, row.reported_at = state, error, now, now
                    await self._outbox.stage(
                        conn,
                        msg.tenant_id,
                        AGENT_DEPLOYMENT_STATE_CHANGED,
                        {**deployment_event(deployment_view(row)), "from": previous, "to": state},
                        key=slot_of(row.agent_id, row.vm_id),
                    )
            await self._outbox.flush()
        return await self._current_on_vm(msg.tenant_id, msg.vm_id)
