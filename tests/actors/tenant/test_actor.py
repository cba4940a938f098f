from __future__ import annotations

import asyncio

import pytest

from synapsex.contracts.errors import Conflict, InvalidInput, LimitExceeded, NotFound
from synapsex.contracts.tenant import (
    AddMember,
    BootstrapTenant,
    CreateTenant,
    GetMember,
    GetTenant,
    ListMembers,
    ListTenants,
    RemoveMember,
    UpdateTenantPlan,
)
from synapsex.runtime import Runtime

pytestmark = pytest.mark.usefixtures("db_environ")


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with Runtime.embedded(
        data_dir=tmp_path, services=["tenant-service"], environ=db_environ
    ) as runtime:
        yield runtime


async def test_create_tenant_with_owner_returns_plan_limits(rt):
    created = await rt.ask(BootstrapTenant(name="Acme Labs", plan="pro", owner_email="Ann@Acme.io"))
    assert created.tenant.slug == "acme-labs"
    assert created.tenant.limits.members == 50
    assert created.tenant.member_count == 1
    assert created.owner.role == "owner"
    assert created.owner.email == "ann@acme.io"


async def test_tenant_name_and_slug_are_unique(rt):
    await rt.ask(CreateTenant(name="Acme"))
    with pytest.raises(Conflict):
        await rt.ask(CreateTenant(name="Acme"))
    with pytest.raises(Conflict):
        await rt.ask(CreateTenant(name="ACME"))  # same slug


async def test_limit_overrides_apply_and_are_validated(rt):
    created = await rt.ask(CreateTenant(name="Big", limits={"members": 2}))
    assert created.limits.members == 2
    assert created.limits.agents == 3  # the free plan's
    assert created.member_count == 0
    with pytest.raises(InvalidInput) as err:
        CreateTenant(name="Bad", limits={"seats": 3})
    assert err.value.field == "limits.seats"


async def test_add_member_past_limit_is_limit_exceeded(rt):
    tenant = await rt.ask(CreateTenant(name="Small", limits={"members": 2}))
    await rt.ask(AddMember(tenant_id=tenant.id, email="a@x.io"))
    await rt.ask(AddMember(tenant_id=tenant.id, email="b@x.io"))
    with pytest.raises(LimitExceeded):
        await rt.ask(AddMember(tenant_id=tenant.id, email="c@x.io"))
    assert (await rt.ask(GetTenant(id=tenant.id))).member_count == 2


async def test_member_email_is_unique_per_tenant(rt):
    one = await rt.ask(CreateTenant(name="One"))
    two = await rt.ask(CreateTenant(name="Two"))
    await rt.ask(AddMember(tenant_id=one.id, email="a@x.io"))
    await rt.ask(AddMember(tenant_id=two.id, email="a@x.io"))
    with pytest.raises(Conflict) as err:
        await rt.ask(AddMember(tenant_id=one.id, email="A@x.io"))
    assert err.value.details["field"] == "email"
    assert (await rt.ask(GetTenant(id=one.id))).member_count == 1


async def test_remove_member_frees_a_seat_but_never_the_last_owner(rt):
    created = await rt.ask(
        BootstrapTenant(name="Seats", limits={"members": 2}, owner_email="o@x.io")
    )
    tenant = created.tenant
    member = await rt.ask(AddMember(tenant_id=tenant.id, email="m@x.io", role="viewer"))
    with pytest.raises(Conflict):
        await rt.ask(RemoveMember(tenant_id=tenant.id, member_id=created.owner.id))
    await rt.ask(RemoveMember(tenant_id=tenant.id, member_id=member.id))
    again = await rt.ask(AddMember(tenant_id=tenant.id, email="n@x.io"))
    assert again.email == "n@x.io"


async def test_members_of_another_tenant_are_not_found(rt):
    one = await rt.ask(BootstrapTenant(name="One", owner_email="o@x.io"))
    two = await rt.ask(CreateTenant(name="Two"))
    with pytest.raises(NotFound):
        await rt.ask(GetMember(tenant_id=two.id, member_id=one.owner.id))
    with pytest.raises(NotFound):
        await rt.ask(RemoveMember(tenant_id=two.id, member_id=one.owner.id))


async def test_update_plan_changes_limits(rt):
    tenant = await rt.ask(CreateTenant(name="Up", limits={"vms": 9}))
    kept = await rt.ask(UpdateTenantPlan(tenant_id=tenant.id, plan="enterprise"))
    assert kept.limits.members == 1000
    assert kept.limits.vms == 9
    cleared = await rt.ask(UpdateTenantPlan(tenant_id=tenant.id, plan="pro", limits={}))
    assert cleared.limits.vms == 25
    with pytest.raises(NotFound):
        await rt.ask(UpdateTenantPlan(tenant_id="ten_missing", plan="pro"))


async def test_lists_are_paginated_oldest_first(rt):
    tenant = await rt.ask(CreateTenant(name="Many", plan="pro"))
    emails = [f"m{i}@x.io" for i in range(5)]
    for email in emails:
        await rt.ask(AddMember(tenant_id=tenant.id, email=email))
    seen, after = [], None
    while True:
        page = await rt.ask(ListMembers(tenant_id=tenant.id, first=2, after=after))
        seen += [m.email for m in page.items]
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert seen == emails
    tenants = await rt.ask(ListTenants())
    assert [t.name for t in tenants.items] == ["Many"]


async def test_messages_validate_their_fields():
    with pytest.raises(InvalidInput) as err:
        AddMember(tenant_id="t", email="not-an-email")
    assert err.value.field == "email"
    with pytest.raises(InvalidInput) as err:
        AddMember(tenant_id="t", email="a@x.io", role="root")
    assert err.value.field == "role"
    with pytest.raises(InvalidInput) as err:
        CreateTenant(name=" padded ")
    assert err.value.field == "name"
    with pytest.raises(InvalidInput) as err:
        ListMembers(tenant_id="t", first=101)
    assert err.value.field == "first"


async def test_tenants_survive_a_runtime_restart(tmp_path, db_environ):
    async with Runtime.embedded(
        data_dir=tmp_path, services=["tenant-service"], environ=db_environ
    ) as rt:
        created = await rt.ask(BootstrapTenant(name="Durable", owner_email="o@x.io"))
    async with Runtime.embedded(
        data_dir=tmp_path, services=["tenant-service"], environ=db_environ
    ) as rt:
        tenant = await rt.ask(GetTenant(id=created.tenant.id))
        member = await rt.ask(GetMember(tenant_id=tenant.id, member_id=created.owner.id))
    assert tenant.name == "Durable"
    assert member.email == "o@x.io"


async def test_concurrent_adds_at_the_limit_from_two_runtimes_admit_exactly_one(
    tmp_path, db_environ
):
    # Two runtimes on one database stand for two `synapsex serve` processes: the limit must
    # hold in the database, not in one actor's turn-taking.
    async with (
        Runtime.embedded(data_dir=tmp_path, services=["tenant-service"], environ=db_environ) as a,
        Runtime.embedded(data_dir=tmp_path, services=["tenant-service"], environ=db_environ) as b,
    ):
        for attempt in range(5):
            tenant = await a.ask(CreateTenant(name=f"Race {attempt}", limits={"members": 1}))
            results = await asyncio.gather(
                a.ask(AddMember(tenant_id=tenant.id, email="a@x.io")),
                b.ask(AddMember(tenant_id=tenant.id, email="b@x.io")),
                return_exceptions=True,
            )
            admitted = [r for r in results if not isinstance(r, BaseException)]
            refused = [r for r in results if isinstance(r, BaseException)]
            assert len(admitted) == 1, results
            assert all(isinstance(r, LimitExceeded) for r in refused), results
            assert (await b.ask(GetTenant(id=tenant.id))).member_count == 1
