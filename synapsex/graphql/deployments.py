"""Agent deployments: which version of which agent runs on which VM, and the state its VM
reports (agent-registry-service).

A deployment starts PENDING; the VM's heartbeat reports RUNNING or FAILED. An agent has at
most one current deployment per VM: deploying it again there with another version (or after a
failure) replaces the current one, which becomes UNDEPLOYED."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from synapsex.contracts import deployments as contract
from synapsex.contracts.agents import GetAgent
from synapsex.contracts.auth import Principal
from synapsex.contracts.errors import InvalidInput, NotFound
from synapsex.contracts.vms import VM_TOKEN_PREFIX, GetVm
from synapsex.graphql.agents import Agent, registered_by_caller
from synapsex.graphql.context import GatewayContext, bearer_key
from synapsex.graphql.guard import guarded
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.tenants import First

if TYPE_CHECKING:
    from synapsex.graphql.vms import Vm

Ctx = Info[GatewayContext, None]


@strawberry.enum(
    description="PENDING until the VM reports; RUNNING or FAILED as it reports; UNDEPLOYED "
    "once undeployed or replaced (final)."
)
class DeploymentState(Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    UNDEPLOYED = "UNDEPLOYED"


@strawberry.type(description="One version of an agent deployed on one VM.")
class AgentDeployment:
    id: strawberry.ID
    agent_id: strawberry.ID
    vm_id: strawberry.ID
    version: str
    state: DeploymentState
    error: str | None = strawberry.field(description="What the VM said went wrong (FAILED).")
    created_at: datetime
    updated_at: datetime
    reported_at: datetime | None = strawberry.field(
        description="When a report of the VM last changed the state (null: not yet)."
    )
    replaces_id: strawberry.ID | None = strawberry.field(
        description="The deployment this one replaced on the same VM."
    )

    @strawberry.field(description="The deployed agent.")
    async def agent(self, info: Ctx) -> Agent | None:
        tenant_id = await _caller_tenant_id(info.context)
        try:
            view = await info.context.ask(GetAgent(tenant_id=tenant_id, id=str(self.agent_id)))
        except NotFound:
            return None
        return Agent.of(view)

    @strawberry.field(description="The VM it is deployed on (null once the VM is deregistered).")
    async def vm(self, info: Ctx) -> Annotated[Vm, strawberry.lazy("synapsex.graphql.vms")] | None:
        from synapsex.graphql.vms import Vm  # imports this module: loaded when first resolved

        tenant_id = await _caller_tenant_id(info.context)
        try:
            view = await info.context.ask(GetVm(tenant_id=tenant_id, id=str(self.vm_id)))
        except NotFound:
            return None
        return Vm.of(view)

    @classmethod
    def of(cls, view: contract.DeploymentView) -> AgentDeployment:
        return cls(
            id=strawberry.ID(view.id),
            agent_id=strawberry.ID(view.agent_id),
            vm_id=strawberry.ID(view.vm_id),
            version=view.version,
            state=DeploymentState(view.state),
            error=view.error,
            created_at=view.created_at,
            updated_at=view.updated_at,
            reported_at=view.reported_at,
            replaces_id=strawberry.ID(view.replaces_id) if view.replaces_id else None,
        )


async def _caller_tenant_id(ctx: GatewayContext) -> str:
    """The caller's tenant: a user's, or a VM's when a VM reads its own deployments in the
    reply to its heartbeat (the only place a VM token reaches a deployment)."""
    token = bearer_key(ctx.authorization)
    if token is not None and token.startswith(VM_TOKEN_PREFIX):
        return (await ctx.vm_principal()).tenant_id
    return (await ctx.principal()).tenant_id


@strawberry.input
class DeployAgentInput:
    agent_id: strawberry.ID = strawberry.field(description="An ACTIVE agent of the tenant.")
    vm_id: strawberry.ID = strawberry.field(description="A VM of the tenant.")
    version: str | None = strawberry.field(
        default=None,
        description="A semantic version; null or omitted: the agent's current version.",
    )


@strawberry.input
class UndeployAgentInput:
    id: strawberry.ID = strawberry.field(description="A deployment id.")


@strawberry.type
class DeploymentQuery:
    @strawberry.field(
        description="The tenant's deployments, oldest first, narrowed by agent and VM; the "
        "current ones (not UNDEPLOYED) unless state says otherwise."
    )
    async def agent_deployments(
        self,
        info: Ctx,
        agent_id: strawberry.ID | None = None,
        vm_id: strawberry.ID | None = None,
        state: DeploymentState | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[AgentDeployment]:
        return await tenant_connection(
            info,
            contract.ListDeployments,
            AgentDeployment.of,
            agent_id=None if agent_id is None else str(agent_id),
            vm_id=None if vm_id is None else str(vm_id),
            state=None if state is None else state.value,
            first=first,
            after=after,
        )

    @strawberry.field(description="One deployment of the tenant.")
    async def agent_deployment(self, info: Ctx, id: strawberry.ID) -> AgentDeployment:
        p = await info.context.principal()
        view = await info.context.ask(contract.GetDeployment(tenant_id=p.tenant_id, id=str(id)))
        return AgentDeployment.of(view)


@strawberry.type
class DeploymentMutation:
    @strawberry.mutation(
        description="Deploy a version of an ACTIVE agent on a VM (PENDING until the VM "
        "reports). Deploying the same version again while PENDING or RUNNING changes nothing; "
        "another version (or the same after FAILED) replaces the current deployment."
    )
    async def deploy_agent(self, info: Ctx, input: DeployAgentInput) -> AgentDeployment:
        agent_id = str(input.agent_id)

        async def run(p: Principal) -> contract.DeploymentView:
            return await info.context.ask(
                contract.DeployAgent(
                    tenant_id=p.tenant_id,
                    agent_id=agent_id,
                    vm_id=str(input.vm_id),
                    version=input.version,
                )
            )

        view = await guarded(
            info,
            action="agent.deploy",
            resource_type="agent_deployment",
            run=run,
            is_own_resource=await registered_by_caller(info, agent_id),
        )
        return AgentDeployment.of(view)

    @strawberry.mutation(
        description="Undeploy a deployment (it becomes UNDEPLOYED; undeploying it again "
        "changes nothing)."
    )
    async def undeploy_agent(self, info: Ctx, input: UndeployAgentInput) -> AgentDeployment:
        deployment_id = str(input.id)
        own = False
        p = await info.context.principal()
        try:
            current = await info.context.ask(
                contract.GetDeployment(tenant_id=p.tenant_id, id=deployment_id)
            )
            own = await registered_by_caller(info, current.agent_id)
        except (NotFound, InvalidInput):
            pass  # the mutation answers NOT_FOUND (audited)

        async def run(p: Principal) -> contract.DeploymentView:
            return await info.context.ask(
                contract.UndeployAgent(tenant_id=p.tenant_id, id=deployment_id)
            )

        view = await guarded(
            info,
            action="agent.undeploy",
            resource_type="agent_deployment",
            resource_id=deployment_id,
            run=run,
            is_own_resource=own,
        )
        return AgentDeployment.of(view)
