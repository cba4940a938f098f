"""Agents: the tenant's named, versioned agent records (api-gateway's ``agents`` table).

Names are unique in the tenant (case-insensitively) among ACTIVE agents; versions are semantic
versions; the plan's ``agents`` limit counts ACTIVE agents. Members register agents and change
their own; admins and owners change any (the default policy)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.types import Info

from synapsex.contracts import agents as contract
from synapsex.contracts.auth import Principal
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.guard import guarded, made_by_caller
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]

CAPABILITIES_HELP = (
    f"At most {contract.MAX_CAPABILITIES} distinct tags of 1 to {contract.MAX_CAPABILITY_LENGTH} "
    "letters, digits, '.', '_', ':', '/' or '-' (e.g. web_search, code:python)."
)
VERSION_HELP = "A semantic version: MAJOR.MINOR.PATCH[-prerelease][+build], e.g. 1.4.0."


@strawberry.enum(description="ACTIVE agents count towards the plan; ARCHIVED ones are retired.")
class AgentStatus(Enum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


@strawberry.type(description="An agent of the tenant.")
class Agent:
    id: strawberry.ID
    name: str = strawberry.field(description="Unique among the tenant's ACTIVE agents.")
    description: str
    capabilities: list[str]
    version: str = strawberry.field(description=VERSION_HELP)
    status: AgentStatus
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    created_by: strawberry.ID | None = strawberry.field(description="The member who registered it.")

    @classmethod
    def of(cls, view: contract.AgentView) -> Agent:
        return cls(
            id=strawberry.ID(view.id),
            name=view.name,
            description=view.description,
            capabilities=list(view.capabilities),
            version=view.version,
            status=AgentStatus(view.status),
            created_at=view.created_at,
            updated_at=view.updated_at,
            archived_at=view.archived_at,
            created_by=strawberry.ID(view.created_by) if view.created_by else None,
        )


@strawberry.input
class RegisterAgentInput:
    name: str = strawberry.field(
        description=f"1 to {contract.MAX_NAME_LENGTH} letters, digits, spaces, '.', '_' or '-', "
        "starting with a letter or digit; unique in the tenant (case-insensitively)."
    )
    description: str = strawberry.field(
        default="", description=f"At most {contract.MAX_DESCRIPTION_LENGTH} characters."
    )
    capabilities: list[str] = strawberry.field(default_factory=list, description=CAPABILITIES_HELP)
    version: str = strawberry.field(description=VERSION_HELP)


@strawberry.input
class UpdateAgentInput:
    id: strawberry.ID
    name: str | None = strawberry.field(default=None, description="Null or omitted: unchanged.")
    description: str | None = strawberry.field(
        default=None, description="Null or omitted: unchanged; an empty string clears it."
    )
    capabilities: list[str] | None = strawberry.field(
        default=None, description=f"Null or omitted: unchanged. {CAPABILITIES_HELP}"
    )
    version: str | None = strawberry.field(default=None, description="Null or omitted: unchanged.")


@strawberry.input
class ArchiveAgentInput:
    id: strawberry.ID


async def registered_by_caller(info: Ctx, agent_id: str) -> bool:
    """Whether the caller registered the agent (``False`` when it is not found)."""
    return await made_by_caller(info, lambda t: contract.GetAgent(tenant_id=t, id=agent_id))


@strawberry.type
class AgentQuery:
    @strawberry.field(
        description="The tenant's agents, oldest first: ACTIVE ones unless status says otherwise "
        "(null: both); capability keeps those with that tag (case-insensitively)."
    )
    async def agents(
        self,
        info: Ctx,
        status: AgentStatus | None = AgentStatus.ACTIVE,
        capability: str | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[Agent]:
        return await tenant_connection(
            info,
            contract.ListAgents,
            Agent.of,
            status=None if status is None else status.value,
            capability=capability,
            first=first,
            after=after,
        )

    @strawberry.field(description="One agent of the tenant (ACTIVE or ARCHIVED).")
    async def agent(self, info: Ctx, id: strawberry.ID) -> Agent:
        p = await info.context.principal()
        return Agent.of(
            await info.context.ask(contract.GetAgent(tenant_id=p.tenant_id, id=str(id)))
        )


@strawberry.type
class AgentMutation:
    @strawberry.mutation(
        description="Register an ACTIVE agent (LIMIT_EXCEEDED past the plan's agents limit)."
    )
    async def register_agent(self, info: Ctx, input: RegisterAgentInput) -> Agent:
        async def run(p: Principal) -> contract.AgentView:
            return await info.context.ask(
                contract.RegisterAgent(
                    tenant_id=p.tenant_id,
                    name=input.name,
                    description=input.description,
                    capabilities=tuple(input.capabilities),
                    version=input.version,
                    created_by=p.member_id,
                )
            )

        view = await guarded(info, action="agent.create", resource_type="agent", run=run)
        return Agent.of(view)

    @strawberry.mutation(description="Change the given fields of an ACTIVE agent.")
    async def update_agent(self, info: Ctx, input: UpdateAgentInput) -> Agent:
        agent_id = str(input.id)

        async def run(p: Principal) -> contract.AgentView:
            return await info.context.ask(
                contract.UpdateAgent(
                    tenant_id=p.tenant_id,
                    id=agent_id,
                    name=input.name,
                    description=input.description,
                    capabilities=None if input.capabilities is None else tuple(input.capabilities),
                    version=input.version,
                )
            )

        view = await guarded(
            info,
            action="agent.update",
            resource_type="agent",
            resource_id=agent_id,
            run=run,
            is_own_resource=await registered_by_caller(info, agent_id),
        )
        return Agent.of(view)

    @strawberry.mutation(
        description="Archive an agent: it stops counting towards the plan, frees its name and "
        "its deployments are undeployed. Archiving an archived agent changes nothing."
    )
    async def archive_agent(self, info: Ctx, input: ArchiveAgentInput) -> Agent:
        agent_id = str(input.id)

        async def run(p: Principal) -> contract.AgentView:
            return await info.context.ask(contract.ArchiveAgent(tenant_id=p.tenant_id, id=agent_id))

        view = await guarded(
            info,
            action="agent.archive",
            resource_type="agent",
            resource_id=agent_id,
            run=run,
            is_own_resource=await registered_by_caller(info, agent_id),
        )
        return Agent.of(view)
