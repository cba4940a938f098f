"""tenant-service handlers."""

from __future__ import annotations

from typing import Any

from cachetools import TTLCache
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from synapsex.actors.domain_events import Outbox
from synapsex.contracts.common import Page
from synapsex.contracts.errors import Conflict, LimitExceeded
from synapsex.contracts.tenant import (
    PLAN_LIMITS,
    AddMember,
    BootstrappedTenant,
    BootstrapTenant,
    CreateTenant,
    GetMember,
    GetTenant,
    Limits,
    ListMembers,
    ListTenants,
    MemberView,
    RemoveMember,
    TenantView,
    UpdateTenantPlan,
    slugify,
)
from synapsex.runtime import Actor, handler, new_id
from synapsex.runtime.orm import db_errors, get_or_not_found, paginate

from .models import Tenant, TenantMember, TenantOutbox


def limits_of(tenant: Tenant) -> Limits:
    """The plan's limits with the tenant's overrides applied."""
    return Limits(**{**PLAN_LIMITS[tenant.plan], **(tenant.limit_overrides or {})})


def tenant_view(tenant: Tenant) -> TenantView:
    return TenantView(
        id=tenant.id,
        name=tenant.name,
        slug=tenant.slug,
        plan=tenant.plan,
        limits=limits_of(tenant),
        member_count=tenant.member_count,
        created_at=tenant.created_at,
    )


def member_view(member: TenantMember) -> MemberView:
    return MemberView(
        id=member.id,
        tenant_id=member.tenant_id,  # type: ignore[attr-defined]
        email=member.email,
        role=member.role,
        created_at=member.created_at,
    )


def _tenant_event(tenant: Tenant) -> dict[str, Any]:
    return {"tenantId": tenant.id, "name": tenant.name, "slug": tenant.slug, "plan": tenant.plan}


def _member_event(member: TenantMember) -> dict[str, Any]:
    return {
        "tenantId": member.tenant_id,  # type: ignore[attr-defined]
        "memberId": member.id,
        "email": member.email,
        "role": member.role,
    }


#: how long a tenant read is remembered. This actor drops the entry whenever it changes the
#: tenant; a change made by another process sharing the database shows within this many seconds.
TENANT_CACHE_SECONDS = 5.0


class TenantActor(Actor, service="tenant-service", models="synapsex.actors.tenant.models"):
    """Owns ``tenants`` and ``tenant_members``; publishes ``tenant.created`` and
    ``tenant.member.added`` / ``.removed`` through its outbox."""

    async def on_start(self) -> None:
        # GetTenant runs on most requests (``me { tenant }``, limits); the actor is the writer
        self._tenants: TTLCache[str, TenantView] = TTLCache(
            maxsize=10_000, ttl=TENANT_CACHE_SECONDS
        )
        self._outbox = Outbox(self, TenantOutbox)
        self._outbox.start()

    async def _tenant(self, tenant_id: str) -> Tenant:
        return await get_or_not_found(Tenant.filter(id=tenant_id), "tenant", id=tenant_id)

    async def _create(
        self, msg: CreateTenant | BootstrapTenant, owner_email: str | None
    ) -> tuple[Tenant, TenantMember | None]:
        fields = {
            "name": msg.name,
            "slug": slugify(msg.name),
            "plan": msg.plan,
            "limit_overrides": msg.limits or {},
        }
        with db_errors(conflict=f"a tenant named {msg.name!r} (or with the same slug) exists"):
            async with in_transaction() as conn:
                tenant = await Tenant.create(
                    id=new_id("ten"),
                    member_count=0 if owner_email is None else 1,
                    using_db=conn,
                    **fields,
                )
                await self._outbox.stage(
                    conn, tenant.id, "tenant.created", _tenant_event(tenant), key=tenant.id
                )
                owner = None
                if owner_email is not None:
                    owner = await TenantMember.create(
                        id=new_id("mem"),
                        tenant_id=tenant.id,
                        email=owner_email.lower(),
                        role="owner",
                        using_db=conn,
                    )
                    await self._outbox.stage(
                        conn, tenant.id, "tenant.member.added", _member_event(owner), key=owner.id
                    )
        await self._outbox.flush()
        return tenant, owner

    @handler
    async def create_tenant(self, msg: CreateTenant) -> TenantView:
        tenant, _ = await self._create(msg, None)
        return tenant_view(tenant)

    @handler
    async def bootstrap_tenant(self, msg: BootstrapTenant) -> BootstrappedTenant:
        tenant, owner = await self._create(msg, msg.owner_email)
        assert owner is not None
        return BootstrappedTenant(tenant=tenant_view(tenant), owner=member_view(owner))

    @handler
    async def get_tenant(self, msg: GetTenant) -> TenantView:
        view = self._tenants.get(msg.id)
        if view is None:
            view = self._tenants[msg.id] = tenant_view(await self._tenant(msg.id))
        return view

    @handler
    async def list_tenants(self, msg: ListTenants) -> Page[TenantView]:
        return await paginate(Tenant.all(), first=msg.first, after=msg.after, view=tenant_view)

    @handler
    async def update_plan(self, msg: UpdateTenantPlan) -> TenantView:
        tenant = await self._tenant(msg.tenant_id)
        tenant.plan = msg.plan
        if msg.limits is not None:
            tenant.limit_overrides = msg.limits
        await tenant.save(update_fields=["plan", "limit_overrides", "updated_at"])
        self._tenants.pop(tenant.id, None)
        return tenant_view(tenant)

    @handler
    async def add_member(self, msg: AddMember) -> MemberView:
        tenant = await self._tenant(msg.tenant_id)
        limit = limits_of(tenant).members
        email = msg.email.lower()
        with db_errors(conflict=f"{email} is already a member", field="email"):
            async with in_transaction() as conn:
                # Claim a seat with a conditional update: it takes the row's write lock, so two
                # processes adding at the limit cannot both pass (no read-then-write race).
                claimed = (
                    await Tenant.filter(id=tenant.id, member_count__lt=limit)
                    .using_db(conn)
                    .update(member_count=F("member_count") + 1)
                )
                if not claimed:
                    raise LimitExceeded(
                        f"the {tenant.plan} plan allows {limit} members", limit="members"
                    )
                member = await TenantMember.create(
                    id=new_id("mem"), tenant_id=tenant.id, email=email, role=msg.role, using_db=conn
                )
                await self._outbox.stage(
                    conn, tenant.id, "tenant.member.added", _member_event(member), key=member.id
                )
        self._tenants.pop(tenant.id, None)
        await self._outbox.flush()
        return member_view(member)

    @handler
    async def remove_member(self, msg: RemoveMember) -> MemberView:
        member = await self._member(msg.tenant_id, msg.member_id)
        async with in_transaction() as conn:
            if member.role == "owner":
                owners = (
                    await TenantMember.filter(tenant_id=msg.tenant_id, role="owner")
                    .using_db(conn)
                    .count()
                )
                if owners <= 1:
                    raise Conflict("the last owner cannot be removed", id=member.id)
            await member.delete(using_db=conn)
            await (
                Tenant.filter(id=msg.tenant_id)
                .using_db(conn)
                .update(member_count=F("member_count") - 1)
            )
            await self._outbox.stage(
                conn, msg.tenant_id, "tenant.member.removed", _member_event(member), key=member.id
            )
        self._tenants.pop(msg.tenant_id, None)
        await self._outbox.flush()
        return member_view(member)

    async def _member(self, tenant_id: str, member_id: str) -> TenantMember:
        return await get_or_not_found(
            TenantMember.filter(id=member_id, tenant_id=tenant_id), "member", id=member_id
        )

    @handler
    async def get_member(self, msg: GetMember) -> MemberView:
        return member_view(await self._member(msg.tenant_id, msg.member_id))

    @handler
    async def list_members(self, msg: ListMembers) -> Page[MemberView]:
        return await paginate(
            TenantMember.filter(tenant_id=msg.tenant_id),
            first=msg.first,
            after=msg.after,
            view=member_view,
        )
