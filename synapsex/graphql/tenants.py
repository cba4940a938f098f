"""Tenants, members and ``me``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from synapsex.contracts import tenant as contract
from synapsex.contracts.auth import RevokeMemberKeys
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.enums import Plan, Role
from synapsex.graphql.guard import check_role_ceiling, guarded
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.scalars import BigInt

Ctx = Info[GatewayContext, None]


@strawberry.type
class Limits:
    members: int
    agents: int
    vms: int
    workspaces: int
    storage_bytes: BigInt
    tool_calls_per_day: int

    @classmethod
    def of(cls, limits: contract.Limits) -> Limits:
        return cls(
            members=limits.members,
            agents=limits.agents,
            vms=limits.vms,
            workspaces=limits.workspaces,
            storage_bytes=limits.storage_bytes,
            tool_calls_per_day=limits.tool_calls_per_day,
        )


@strawberry.type
class Tenant:
    id: strawberry.ID
    name: str
    slug: str
    plan: Plan
    limits: Limits
    member_count: int
    created_at: datetime

    @classmethod
    def of(cls, view: contract.TenantView) -> Tenant:
        return cls(
            id=strawberry.ID(view.id),
            name=view.name,
            slug=view.slug,
            plan=Plan(view.plan),
            limits=Limits.of(view.limits),
            member_count=view.member_count,
            created_at=view.created_at,
        )


@strawberry.type
class TenantMember:
    id: strawberry.ID
    email: str
    role: Role
    created_at: datetime

    @classmethod
    def of(cls, view: contract.MemberView) -> TenantMember:
        return cls(
            id=strawberry.ID(view.id),
            email=view.email,
            role=Role(view.role),
            created_at=view.created_at,
        )


@strawberry.type(description="The caller: the member behind the API key, and their tenant.")
class Me:
    member_id: strawberry.ID
    key_id: strawberry.ID
    role: Role
    tenant_id: strawberry.Private[str]

    @strawberry.field
    async def email(self, info: Ctx) -> str:
        member = await info.context.ask(
            contract.GetMember(tenant_id=self.tenant_id, member_id=self.member_id)
        )
        return member.email

    @strawberry.field
    async def tenant(self, info: Ctx) -> Tenant:
        return Tenant.of(await info.context.ask(contract.GetTenant(id=self.tenant_id)))


@strawberry.input
class AddTenantMemberInput:
    email: str
    role: Role = Role.MEMBER


@strawberry.input
class RemoveTenantMemberInput:
    id: strawberry.ID


@strawberry.input
class UpdateTenantPlanInput:
    plan: Plan


First = Annotated[int, strawberry.argument(description="At most 100.")]


@strawberry.type
class TenantQuery:
    @strawberry.field(description="The caller and their tenant.")
    async def me(self, info: Ctx) -> Me:
        p = await info.context.principal()
        return Me(
            member_id=strawberry.ID(p.member_id),
            key_id=strawberry.ID(p.key_id),
            role=Role(p.role),
            tenant_id=p.tenant_id,
        )

    @strawberry.field(description="The tenant's members, oldest first.")
    async def tenant_members(
        self, info: Ctx, first: First = 50, after: str | None = None
    ) -> Connection[TenantMember]:
        return await tenant_connection(
            info, contract.ListMembers, TenantMember.of, first=first, after=after
        )


@strawberry.type
class TenantMutation:
    @strawberry.mutation(description="Add a member (admins and owners).")
    async def add_tenant_member(self, info: Ctx, input: AddTenantMemberInput) -> TenantMember:
        async def run(p):
            check_role_ceiling(p, input.role.value, "add a member")
            return await info.context.ask(
                contract.AddMember(tenant_id=p.tenant_id, email=input.email, role=input.role.value)
            )

        view = await guarded(
            info, action="tenant.member.add", resource_type="tenant_member", run=run
        )
        return TenantMember.of(view)

    @strawberry.mutation(description="Remove a member (admins and owners); never the last owner.")
    async def remove_tenant_member(self, info: Ctx, input: RemoveTenantMemberInput) -> TenantMember:
        async def run(p):
            member_id = str(input.id)
            target = await info.context.ask(
                contract.GetMember(tenant_id=p.tenant_id, member_id=member_id)
            )
            check_role_ceiling(p, target.role, "remove a member")
            removed = await info.context.ask(
                contract.RemoveMember(tenant_id=p.tenant_id, member_id=member_id)
            )
            # A member who leaves takes their keys along.
            await info.context.ask(RevokeMemberKeys(tenant_id=p.tenant_id, member_id=member_id))
            return removed

        view = await guarded(
            info,
            action="tenant.member.remove",
            resource_type="tenant_member",
            resource_id=str(input.id),
            run=run,
        )
        return TenantMember.of(view)

    @strawberry.mutation(description="Change the tenant's plan (owners only).")
    async def update_tenant_plan(self, info: Ctx, input: UpdateTenantPlanInput) -> Tenant:
        async def run(p):
            return await info.context.ask(
                contract.UpdateTenantPlan(tenant_id=p.tenant_id, plan=input.plan.value)
            )

        view = await guarded(info, action="tenant.plan.update", resource_type="tenant", run=run)
        return Tenant.of(view)
