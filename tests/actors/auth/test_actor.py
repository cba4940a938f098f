from __future__ import annotations

import hashlib

import pytest

from synapsex.contracts.auth import (
    Authenticate,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey,
    RevokeMemberKeys,
)
from synapsex.contracts.errors import Forbidden, NotFound, Unauthenticated
from synapsex.contracts.tenant import AddMember, BootstrapTenant
from synapsex.runtime import Runtime


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with Runtime.embedded(
        data_dir=tmp_path, services=["tenant-service", "auth-service"], environ=db_environ
    ) as runtime:
        yield runtime


@pytest.fixture
async def owner(rt):
    return await rt.ask(BootstrapTenant(name="Keys", owner_email="o@x.io"))


async def new_key(rt, owner, role="owner", name="k"):
    return await rt.ask(
        CreateApiKey(tenant_id=owner.tenant.id, member_id=owner.owner.id, role=role, name=name)
    )


async def test_created_key_authenticates_as_its_tenant_member_and_role(rt, owner):
    created = await new_key(rt, owner, role="admin")
    assert created.key.startswith("sx_")
    assert len(created.key) == 46
    assert created.api_key.prefix == created.key[:11]
    principal = await rt.ask(Authenticate(key=created.key))
    assert principal.tenant_id == owner.tenant.id
    assert principal.member_id == owner.owner.id
    assert (principal.role, principal.key_id) == ("admin", created.api_key.id)


async def test_only_a_hash_and_a_prefix_are_stored(rt, owner):
    created = await new_key(rt, owner)
    db = next(d for d in rt.databases() if d.service == "auth-service")
    await db.open()
    try:
        rows = await db.client().execute_query_dict("SELECT * FROM api_keys")
    finally:
        await db.aclose()
    (row,) = rows
    assert created.key not in str(row)
    assert row["key_hash"] == hashlib.sha256(created.key.encode()).hexdigest()


async def test_unknown_malformed_and_revoked_keys_are_unauthenticated(rt, owner):
    created = await new_key(rt, owner)
    for bad in (
        "",
        "sx_short",
        "nope" * 12,
        created.key[:-1] + ("A" if created.key[-1] != "A" else "B"),
    ):
        with pytest.raises(Unauthenticated):
            await rt.ask(Authenticate(key=bad))
    revoked = await rt.ask(RevokeApiKey(tenant_id=owner.tenant.id, key_id=created.api_key.id))
    assert revoked.revoked_at is not None
    with pytest.raises(Unauthenticated):
        await rt.ask(Authenticate(key=created.key))


async def test_authenticate_records_last_use(rt, owner):
    created = await new_key(rt, owner)
    assert created.api_key.last_used_at is None
    await rt.ask(Authenticate(key=created.key))
    page = await rt.ask(ListApiKeys(tenant_id=owner.tenant.id))
    assert page.items[0].last_used_at is not None


async def test_a_key_cannot_outrank_its_member(rt, owner):
    viewer = await rt.ask(AddMember(tenant_id=owner.tenant.id, email="v@x.io", role="viewer"))
    with pytest.raises(Forbidden):
        await rt.ask(
            CreateApiKey(tenant_id=owner.tenant.id, member_id=viewer.id, role="member", name="k")
        )


async def test_keys_of_another_tenant_are_not_found(rt, owner):
    created = await new_key(rt, owner)
    other = await rt.ask(BootstrapTenant(name="Other", owner_email="x@y.io"))
    with pytest.raises(NotFound):
        await rt.ask(RevokeApiKey(tenant_id=other.tenant.id, key_id=created.api_key.id))
    with pytest.raises(NotFound):
        await rt.ask(
            CreateApiKey(
                tenant_id=other.tenant.id, member_id=owner.owner.id, role="viewer", name="k"
            )
        )
    assert (await rt.ask(ListApiKeys(tenant_id=other.tenant.id))).items == ()


async def test_the_plaintext_key_never_shows_in_reprs(rt, owner):
    created = await new_key(rt, owner)
    assert created.key not in repr(created)
    assert created.key not in repr(Authenticate(key=created.key))


async def test_revoking_a_members_keys_revokes_all_of_them_at_once(rt, owner):
    first = await new_key(rt, owner, name="one")
    second = await new_key(rt, owner, name="two")
    await rt.ask(Authenticate(key=first.key))  # now remembered by the actor
    revoked = await rt.ask(RevokeMemberKeys(tenant_id=owner.tenant.id, member_id=owner.owner.id))
    assert revoked == 2
    for created in (first, second):
        with pytest.raises(Unauthenticated):
            await rt.ask(Authenticate(key=created.key))
