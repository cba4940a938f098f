"""secrets-service on both engines: versions, envelope encryption bound to its row and tenant,
values absent from the stored bytes and from logs, tenant isolation, service-only fetches that
are audited, deletion, and a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from synapsex.contracts.audit import ListAuditRecords
from synapsex.contracts.errors import Forbidden, InvalidInput, NotFound, ServiceFailure
from synapsex.contracts.message import Message
from synapsex.contracts.secrets import (
    DeleteSecret,
    GetSecret,
    GetSecretValue,
    ListSecrets,
    ListSecretVersions,
    PutSecret,
    RevealSecret,
    SecretValue,
)
from synapsex.runtime import Actor, Runtime, handler
from synapsex.runtime.testing import raw_sql

pytestmark = pytest.mark.usefixtures("db_environ")

SERVICES = ["secrets-service", "audit-service"]
A = "ten_a"
B = "ten_b"
CANARY = "sk-live-CANARY-0123456789-do-not-store-me"


class FetchForTest(Message, service="secret-consumer-test"):
    tenant_id: str
    name: str
    version: int | None = None


class ConsumerActor(Actor, service="secret-consumer-test"):
    """Another service: fetches values by message, as a tool broker would."""

    @handler
    async def fetch(self, msg: FetchForTest) -> SecretValue:
        return await self.actor_runtime.ask(
            GetSecretValue(tenant_id=msg.tenant_id, name=msg.name, version=msg.version)
        )


def embedded(tmp_path: Path, db_environ: dict[str, str]) -> Runtime:
    return Runtime.embedded(
        data_dir=tmp_path, services=SERVICES, actors=[ConsumerActor], environ=db_environ
    )


async def put(rt: Runtime, name: str, value: str, tenant: str = A, **kw):
    return await rt.ask(PutSecret(tenant_id=tenant, name=name, value=value, **kw))


async def reveal(rt: Runtime, name: str, version: int | None = None, tenant: str = A) -> str:
    return (await rt.ask(RevealSecret(tenant_id=tenant, name=name, version=version))).value


# ---------------------------------------------------------------------------- versions


async def test_each_put_adds_a_version_and_every_version_stays_readable(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        first = await put(rt, "OPENAI_API_KEY", "one", description="prod key", member_id="mem_1")
        second = await put(rt, "OPENAI_API_KEY", "two")
        assert (first.version, second.version) == (1, 2)
        assert second.description == "prod key"  # kept when not given
        third = await put(rt, "OPENAI_API_KEY", "three", description="rotated")
        assert third.version == 3
        assert await reveal(rt, "OPENAI_API_KEY") == "three"
        assert await reveal(rt, "OPENAI_API_KEY", 1) == "one"
        assert await reveal(rt, "OPENAI_API_KEY", 2) == "two"
        secret = await rt.ask(GetSecret(tenant_id=A, name="OPENAI_API_KEY"))
        assert secret.latest_version == 3
        assert secret.description == "rotated"
        assert secret.created_by == "mem_1"
        versions = await rt.ask(ListSecretVersions(tenant_id=A, name="OPENAI_API_KEY"))
        assert [v.version for v in versions.items] == [1, 2, 3]
        assert [v.description for v in versions.items] == ["prod key", "prod key", "rotated"]
        with pytest.raises(NotFound, match="version 4"):
            await reveal(rt, "OPENAI_API_KEY", 4)


async def test_concurrent_puts_get_consecutive_versions(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        made = await asyncio.gather(*(put(rt, "shared", f"value-{i}") for i in range(10)))
        assert sorted(v.version for v in made) == list(range(1, 11))
        values = {await reveal(rt, "shared", n) for n in range(1, 11)}
        assert values == {f"value-{i}" for i in range(10)}


async def test_two_runtimes_on_one_database_never_share_a_version(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as one, embedded(tmp_path, db_environ) as two:
        made = await asyncio.gather(
            *(put(rt, "raced", f"v{i}") for i in range(6) for rt in (one, two))
        )
        assert sorted(v.version for v in made) == list(range(1, 13))


async def test_values_and_versions_survive_a_restart(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        await put(rt, "db.password", "hunter2")
    async with embedded(tmp_path, db_environ) as rt:
        assert await reveal(rt, "db.password") == "hunter2"
        assert (await put(rt, "db.password", "hunter3")).version == 2


async def test_delete_removes_every_version_and_the_name_starts_again(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        await put(rt, "temp", "a")
        await put(rt, "temp", "b")
        deleted = await rt.ask(DeleteSecret(tenant_id=A, name="temp"))
        assert deleted.latest_version == 2
        with pytest.raises(NotFound):
            await reveal(rt, "temp")
        with pytest.raises(NotFound):
            await rt.ask(DeleteSecret(tenant_id=A, name="temp"))
        assert (await put(rt, "temp", "c")).version == 1
        async with raw_sql(rt, "secrets-service") as sql:
            assert len(await sql("SELECT id FROM secret_versions WHERE name = ?", "temp")) == 1


# ---------------------------------------------------------------------------- encryption at rest


async def test_values_are_not_in_the_stored_bytes(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        await put(rt, "canary", CANARY, description="a canary")
        await put(rt, "canary", CANARY + "-2")
        async with raw_sql(rt, "secrets-service") as sql:
            rows = await sql("SELECT * FROM secret_versions")
            rows += await sql("SELECT * FROM secrets")
        assert len(rows) == 3
        assert "CANARY" not in repr(rows)
        assert all(r["data_key_sealed"].startswith("v1.") for r in rows if "data_key_sealed" in r)
        if not db_environ:  # SQLite: the file and its write-ahead log, byte for byte
            stored = b"".join(p.read_bytes() for p in tmp_path.glob("secrets.db*"))
            assert b"a canary" in stored  # the witness: the rows are in these bytes
            assert b"CANARY" not in stored


async def test_a_ciphertext_moved_to_another_row_or_tenant_does_not_open(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        await put(rt, "source", "the source value")
        await put(rt, "target", "the target value")
        await put(rt, "target", "the target value", tenant=B)
        async with raw_sql(rt, "secrets-service") as sql:
            (src,) = await sql(
                "SELECT data_key_sealed, ciphertext FROM secret_versions WHERE name = ?", "source"
            )
            await sql(
                "UPDATE secret_versions SET data_key_sealed = ?, ciphertext = ? WHERE name = ?",
                src["data_key_sealed"],
                src["ciphertext"],
                "target",
            )
        for tenant in (A, B):
            with pytest.raises(ServiceFailure, match="cannot be decrypted") as caught:
                await reveal(rt, "target", tenant=tenant)
            assert "source value" not in str(caught.value)
        assert await reveal(rt, "source") == "the source value"  # the actor kept running


async def test_a_version_moved_to_another_version_of_the_same_secret_does_not_open(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as rt:
        await put(rt, "api", "old")
        await put(rt, "api", "new")
        async with raw_sql(rt, "secrets-service") as sql:
            (old,) = await sql("SELECT ciphertext FROM secret_versions WHERE version = 1")
            await sql(
                "UPDATE secret_versions SET ciphertext = ? WHERE version = 2", old["ciphertext"]
            )
        with pytest.raises(ServiceFailure, match="version 2 cannot be decrypted"):
            await reveal(rt, "api")
        assert await reveal(rt, "api", 1) == "old"


# ---------------------------------------------------------------------------- isolation


async def test_another_tenant_sees_nothing_of_a_secret(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        await put(rt, "mine", "a's value")
        await put(rt, "theirs", "b's value", tenant=B)
        for message in (
            GetSecret(tenant_id=B, name="mine"),
            RevealSecret(tenant_id=B, name="mine"),
            ListSecretVersions(tenant_id=B, name="mine"),
            DeleteSecret(tenant_id=B, name="mine"),
        ):
            with pytest.raises(NotFound):
                await rt.ask(message)
        with pytest.raises(NotFound):
            await rt.ask(FetchForTest(tenant_id=B, name="mine"))
        listed = await rt.ask(ListSecrets(tenant_id=B))
        assert [s.name for s in listed.items] == ["theirs"]
        assert await reveal(rt, "mine") == "a's value"
        # the same name in two tenants: two secrets, each its own versions
        assert (await put(rt, "mine", "b's own", tenant=B)).version == 1
        assert await reveal(rt, "mine", tenant=B) == "b's own"


# ---------------------------------------------------------------------------- service fetches


async def test_services_fetch_values_and_each_fetch_is_audited_without_the_value(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as rt:
        await put(rt, "tool.token", CANARY)
        fetched = await rt.ask(FetchForTest(tenant_id=A, name="tool.token"))
        assert (fetched.value, fetched.version) == (CANARY, 1)
        records = await rt.ask(ListAuditRecords(tenant_id=A, action="secret.fetch"))
        (record,) = records.items
        assert record.resource_id == "tool.token@1"
        assert record.actor_key_id == "service:secret-consumer-test"
        assert record.outcome == "SUCCESS"
        assert "CANARY" not in repr(record)


async def test_a_fetch_from_outside_the_runtime_is_forbidden(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        await put(rt, "tool.token", CANARY)
        with pytest.raises(Forbidden, match="services only"):
            await rt.ask(GetSecretValue(tenant_id=A, name="tool.token"))


async def test_values_never_appear_in_logs_or_reprs(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        with capture_logs() as logs:
            message = PutSecret(tenant_id=A, name="logged", value=CANARY)
            await rt.ask(message)
            value = await rt.ask(RevealSecret(tenant_id=A, name="logged"))
            await rt.ask(FetchForTest(tenant_id=A, name="logged"))
        assert value.value == CANARY
        for text in (repr(message), str(message.to_dict()), repr(value), repr(logs)):
            assert "CANARY" not in text


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "name",
    ["", "1starts-with-digit", "has space", "slash/inside", "x" * 129, "ünicode", "-dash"],
    ids=["empty", "digit", "space", "slash", "long", "unicode", "dash"],
)
def test_bad_names_are_refused_naming_the_field(name):
    with pytest.raises(InvalidInput) as caught:
        PutSecret(tenant_id=A, name=name, value="v")
    assert caught.value.field == "name"


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "_private", "github.token", "a-b.c_d9"])
def test_identifier_names_are_accepted(name):
    assert PutSecret(tenant_id=A, name=name, value="v").name == name


def test_empty_or_oversized_values_are_refused_naming_the_field():
    for value in ("", "x" * 65_537):
        with pytest.raises(InvalidInput) as caught:
            PutSecret(tenant_id=A, name="n", value=value)
        assert caught.value.field == "value"
    with pytest.raises(InvalidInput) as caught:
        RevealSecret(tenant_id=A, name="n", version=0)
    assert caught.value.field == "version"
