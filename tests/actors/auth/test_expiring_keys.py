"""auth-service on both engines: short-lived keys (``expires_at``), as the MCP router makes them
for the tools it runs on synapsex-ops-mcp: they authenticate until they expire (also when the
key is remembered in the authentication cache), and revocation ends them at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import synapsex.actors.auth.actor as auth_actor
from synapsex.contracts.auth import Authenticate, CreateApiKey, ListApiKeys, RevokeApiKey
from synapsex.contracts.errors import InvalidInput, Unauthenticated
from synapsex.contracts.tenant import BootstrapTenant
from synapsex.runtime import Runtime
from synapsex.runtime.testing import raw_sql


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with Runtime.embedded(
        data_dir=tmp_path, services=["tenant-service", "auth-service"], environ=db_environ
    ) as runtime:
        yield runtime


@pytest.fixture
async def owner(rt):
    return await rt.ask(BootstrapTenant(name="Keys", owner_email="o@x.io"))


async def short_lived(rt, owner, minutes: float = 5, role: str = "member"):
    return await rt.ask(
        CreateApiKey(
            tenant_id=owner.tenant.id,
            member_id=owner.owner.id,
            role=role,
            name="mcp plan",
            expires_at=datetime.now(UTC) + timedelta(minutes=minutes),
        )
    )


class _Later(datetime):
    """The actor's clock, two hours ahead."""

    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        return datetime.now(tz) + timedelta(hours=2)


async def test_short_lived_key_authenticates_until_it_expires_even_when_cached(
    rt, owner, monkeypatch
):
    created = await short_lived(rt, owner, minutes=5)
    assert created.api_key.expires_at is not None
    principal = await rt.ask(Authenticate(key=created.key))  # now remembered by the cache
    assert (principal.tenant_id, principal.role) == (owner.tenant.id, "member")
    monkeypatch.setattr(auth_actor, "datetime", _Later)
    with pytest.raises(Unauthenticated, match="expired"):
        await rt.ask(Authenticate(key=created.key))
    monkeypatch.undo()
    assert (await rt.ask(Authenticate(key=created.key))).key_id == created.api_key.id


async def test_expired_key_is_refused_from_the_database(rt, owner):
    created = await short_lived(rt, owner)
    async with raw_sql(rt, "auth-service") as sql:
        await sql(
            "UPDATE api_keys SET expires_at = ? WHERE id = ?",
            datetime.now(UTC) - timedelta(seconds=1),
            created.api_key.id,
        )
    with pytest.raises(Unauthenticated, match="expired"):
        await rt.ask(Authenticate(key=created.key))


async def test_revoking_a_short_lived_key_ends_it_at_once(rt, owner):
    created = await short_lived(rt, owner)
    await rt.ask(Authenticate(key=created.key))
    await rt.ask(RevokeApiKey(tenant_id=owner.tenant.id, key_id=created.api_key.id))
    with pytest.raises(Unauthenticated):
        await rt.ask(Authenticate(key=created.key))
    page = await rt.ask(ListApiKeys(tenant_id=owner.tenant.id))
    (view,) = [k for k in page.items if k.id == created.api_key.id]
    assert view.revoked_at is not None
    assert view.expires_at is not None


async def test_a_key_cannot_be_created_already_expired(rt, owner):
    with pytest.raises(InvalidInput) as caught:
        CreateApiKey(
            tenant_id=owner.tenant.id,
            member_id=owner.owner.id,
            role="member",
            name="late",
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
        )
    assert caught.value.field == "expiresAt"


async def test_keys_without_expiry_keep_working(rt, owner):
    created = await rt.ask(
        CreateApiKey(tenant_id=owner.tenant.id, member_id=owner.owner.id, role="owner", name="k")
    )
    assert created.api_key.expires_at is None
    assert (await rt.ask(Authenticate(key=created.key))).role == "owner"
