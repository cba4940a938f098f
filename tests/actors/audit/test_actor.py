from __future__ import annotations

import asyncio
import dataclasses
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from synapsex.actors.audit.actor import AuditActor
from synapsex.contracts.audit import (
    GENESIS_HASH,
    ListAuditRecords,
    RecordAudit,
    VerifyAuditChain,
    audit_record_hash,
)
from synapsex.contracts.errors import InvalidInput
from synapsex.runtime import Runtime

pytestmark = pytest.mark.usefixtures("db_environ")


def embedded(tmp_path, db_environ) -> Runtime:
    return Runtime.embedded(data_dir=tmp_path, actors=[AuditActor], environ=db_environ)


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as runtime:
        yield runtime


@asynccontextmanager
async def raw_client(rt: Runtime):
    """A connection of its own to audit-service's database, for tampering behind its back."""
    (db,) = [d for d in rt.databases() if d.service == "audit-service"]
    await db.open()
    try:
        yield db.client()
    finally:
        await db.aclose()


def record(tenant_id: str = "ten_a", **fields) -> RecordAudit:
    fields.setdefault("action", "member.add")
    fields.setdefault("resource_type", "member")
    fields.setdefault("outcome", "SUCCESS")
    return RecordAudit(tenant_id=tenant_id, **fields)


async def record_many(rt: Runtime, n: int, tenant_id: str = "ten_a") -> list:
    return [await rt.ask(record(tenant_id, resource_id=f"mem_{i}")) for i in range(n)]


async def test_records_get_consecutive_seq_and_link_to_the_previous_hash(rt):
    first = await rt.ask(
        record(
            actor_member_id="mem_1",
            actor_key_id="key_1",
            resource_id="mem_2",
            request_id="req_1",
        )
    )
    second = await rt.ask(record(action="member.remove", outcome="DENIED", error_code="FORBIDDEN"))
    assert first.id.startswith("aud_")
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.actor_member_id == "mem_1"
    assert first.request_id == "req_1"
    assert second.error_code == "FORBIDDEN"
    assert second.resource_id is None
    assert first.at.tzinfo is not None
    assert first.at <= second.at
    for view in (first, second):  # anyone holding a view can check its hash
        assert len(view.hash) == 64
        assert audit_record_hash(dataclasses.asdict(view)) == view.hash


async def test_listed_records_are_what_was_hashed(rt):
    written = await record_many(rt, 3)
    listed = (await rt.ask(ListAuditRecords(tenant_id="ten_a"))).items
    assert [v.hash for v in listed] == [w.hash for w in reversed(written)]
    for view in listed:  # read back from the database, the fields hash to the same value
        assert audit_record_hash(dataclasses.asdict(view)) == view.hash


async def test_tenants_have_independent_chains(rt):
    a1 = await rt.ask(record("ten_a"))
    b1 = await rt.ask(record("ten_b"))
    a2 = await rt.ask(record("ten_a"))
    b2 = await rt.ask(record("ten_b"))
    assert (a1.seq, a2.seq, b1.seq, b2.seq) == (1, 2, 1, 2)
    assert b1.prev_hash == GENESIS_HASH
    assert b2.prev_hash == b1.hash
    assert a2.prev_hash == a1.hash
    assert [r.id for r in (await rt.ask(ListAuditRecords(tenant_id="ten_b"))).items] == [
        b2.id,
        b1.id,
    ]
    assert (await rt.ask(VerifyAuditChain(tenant_id="ten_a"))).ok
    assert (await rt.ask(VerifyAuditChain(tenant_id="ten_b"))).ok


async def test_list_is_newest_first_filtered_and_paginated(rt):
    specs = [
        ("member.add", "SUCCESS"),
        ("member.remove", "DENIED"),
        ("member.add", "FAILURE"),
        ("member.add", "SUCCESS"),
        ("key.create", "SUCCESS"),
        ("member.add", "SUCCESS"),
    ]
    written = [await rt.ask(record(action=a, outcome=o)) for a, o in specs]
    await rt.ask(record("ten_other", action="member.add"))

    seen, after = [], None
    while True:
        page = await rt.ask(ListAuditRecords(tenant_id="ten_a", first=4, after=after))
        seen += [r.seq for r in page.items]
        if not page.has_next_page:
            break
        assert page.end_cursor == page.items[-1].id  # the cursor is the last record's id
        after = page.end_cursor
    assert seen == [6, 5, 4, 3, 2, 1]

    adds = await rt.ask(ListAuditRecords(tenant_id="ten_a", action="member.add", first=2))
    assert [r.seq for r in adds.items] == [6, 4]
    assert adds.has_next_page
    rest = await rt.ask(
        ListAuditRecords(tenant_id="ten_a", action="member.add", first=2, after=adds.end_cursor)
    )
    assert [r.seq for r in rest.items] == [3, 1]
    assert not rest.has_next_page

    ok_adds = await rt.ask(
        ListAuditRecords(tenant_id="ten_a", action="member.add", outcome="SUCCESS")
    )
    assert [r.id for r in ok_adds.items] == [written[5].id, written[3].id, written[0].id]
    denied = await rt.ask(ListAuditRecords(tenant_id="ten_a", outcome="DENIED"))
    assert [r.action for r in denied.items] == ["member.remove"]

    empty = await rt.ask(ListAuditRecords(tenant_id="ten_none"))
    assert empty.items == ()
    assert not empty.has_next_page
    assert empty.end_cursor is None
    with pytest.raises(InvalidInput) as err:  # another tenant's record is no cursor here
        await rt.ask(ListAuditRecords(tenant_id="ten_other", after=written[0].id))
    assert err.value.field == "after"


async def test_verify_reports_an_intact_chain(rt):
    empty = await rt.ask(VerifyAuditChain(tenant_id="ten_a"))
    assert (empty.ok, empty.checked, empty.first_broken_id) == (True, 0, None)
    await record_many(rt, 7)
    result = await rt.ask(VerifyAuditChain(tenant_id="ten_a"))
    assert (result.ok, result.checked, result.first_broken_id) == (True, 7, None)


async def test_verify_walks_long_chains_in_batches(rt, monkeypatch):
    monkeypatch.setattr("synapsex.actors.audit.actor.VERIFY_BATCH", 3)
    written = await record_many(rt, 10)
    result = await rt.ask(VerifyAuditChain(tenant_id="ten_a"))
    assert (result.ok, result.checked) == (True, 10)
    async with raw_client(rt) as client:
        await client.execute_script(
            f"UPDATE audit_records SET resource_id = 'forged' WHERE id = '{written[7].id}'"
        )
    result = await rt.ask(VerifyAuditChain(tenant_id="ten_a"))
    assert (result.ok, result.checked, result.first_broken_id) == (False, 8, written[7].id)


def one_microsecond_later(view) -> str:
    return f"at = '{(view.at + timedelta(microseconds=1)).isoformat()}'"


@pytest.mark.parametrize(
    "assignment",
    [
        lambda view: "outcome = 'DENIED'",
        lambda view: "action = 'member.view'",
        lambda view: "actor_member_id = 'mem_intruder'",
        one_microsecond_later,
    ],
    ids=["outcome", "action", "actor", "at"],
)
async def test_a_tampered_record_is_the_first_broken(rt, assignment):
    written = await record_many(rt, 5)
    await rt.ask(record("ten_b"))
    target = written[2]
    async with raw_client(rt) as client:
        await client.execute_script(
            f"UPDATE audit_records SET {assignment(target)} WHERE id = '{target.id}'"
        )
    result = await rt.ask(VerifyAuditChain(tenant_id="ten_a"))
    assert (result.ok, result.first_broken_id) == (False, target.id)
    assert (await rt.ask(VerifyAuditChain(tenant_id="ten_b"))).ok  # other chains unaffected


async def test_a_renumbered_record_leaves_a_gap(rt):
    written = await record_many(rt, 5)
    async with raw_client(rt) as client:
        await client.execute_script(
            f"UPDATE audit_records SET seq = 30 WHERE id = '{written[2].id}'"
        )
    result = await rt.ask(VerifyAuditChain(tenant_id="ten_a"))
    # in seq order the walk meets seq 4 where 3 was due: the gap is reported there
    assert (result.ok, result.checked, result.first_broken_id) == (False, 3, written[3].id)


async def test_a_rehashed_record_breaks_the_link_of_the_next(rt):
    # a forger who recomputes the tampered record's hash still breaks its successor's link
    written = await record_many(rt, 4)
    forged = {**dataclasses.asdict(written[1]), "outcome": "FAILURE"}
    digest = audit_record_hash(forged)
    async with raw_client(rt) as client:
        await client.execute_script(
            f"UPDATE audit_records SET outcome = 'FAILURE', hash = '{digest}' "
            f"WHERE id = '{written[1].id}'"
        )
    result = await rt.ask(VerifyAuditChain(tenant_id="ten_a"))
    assert (result.ok, result.first_broken_id) == (False, written[2].id)


async def test_a_deleted_middle_record_is_found(rt):
    written = await record_many(rt, 5)
    async with raw_client(rt) as client:
        await client.execute_script(f"DELETE FROM audit_records WHERE id = '{written[2].id}'")
    result = await rt.ask(VerifyAuditChain(tenant_id="ten_a"))
    # the gap is reported at the record after it (seq 4 follows seq 2)
    assert (result.ok, result.checked, result.first_broken_id) == (False, 3, written[3].id)


async def test_deleted_last_records_and_forged_appends_are_found(rt):
    written = await record_many(rt, 4)
    async with raw_client(rt) as client:
        await client.execute_script(f"DELETE FROM audit_records WHERE id = '{written[3].id}'")
    cut = await rt.ask(VerifyAuditChain(tenant_id="ten_a"))
    assert (cut.ok, cut.checked, cut.first_broken_id) == (False, 3, None)

    # a record with a valid hash, inserted behind the service's back, is still found
    view = dataclasses.asdict(written[3])
    view["hash"] = audit_record_hash(view)
    columns = ", ".join(view)
    values = ", ".join("NULL" if v is None else f"'{v}'" for v in view.values())
    async with raw_client(rt) as client:
        await client.execute_script("DELETE FROM audit_chain_heads WHERE tenant_id = 'ten_a'")
        await client.execute_script(f"INSERT INTO audit_records ({columns}) VALUES ({values})")
    forged = await rt.ask(VerifyAuditChain(tenant_id="ten_a"))
    assert (forged.ok, forged.first_broken_id) == (False, written[0].id)


async def test_concurrent_records_from_two_runtimes_keep_one_chain(tmp_path, db_environ):
    # Two runtimes on one database stand for two `synapsex serve` processes: the chain's order
    # must be decided in the database, not in one actor's turn-taking.
    async with embedded(tmp_path, db_environ) as a, embedded(tmp_path, db_environ) as b:
        asks = [
            rt.ask(record(resource_id=f"{name}{i}"), timeout=30)
            for i in range(25)
            for rt, name in ((a, "a"), (b, "b"))
        ]
        written = await asyncio.gather(*asks)
        assert sorted(r.seq for r in written) == list(range(1, 51))
        by_seq = {r.seq: r for r in written}
        for seq in range(2, 51):
            assert by_seq[seq].prev_hash == by_seq[seq - 1].hash
        assert by_seq[1].prev_hash == GENESIS_HASH
        for rt in (a, b):
            result = await rt.ask(VerifyAuditChain(tenant_id="ten_a"))
            assert (result.ok, result.checked) == (True, 50)
        listed = await a.ask(ListAuditRecords(tenant_id="ten_a", first=100))
        assert [r.seq for r in listed.items] == list(range(50, 0, -1))
        assert {r.resource_id for r in listed.items} == {f"{n}{i}" for n in "ab" for i in range(25)}


async def test_concurrent_first_records_of_a_tenant_from_two_runtimes(tmp_path, db_environ):
    # the head row does not exist yet: both insert it, the loser retries from the new head
    async with embedded(tmp_path, db_environ) as a, embedded(tmp_path, db_environ) as b:
        for attempt in range(5):
            tenant = f"ten_race{attempt}"
            one, two = await asyncio.gather(a.ask(record(tenant)), b.ask(record(tenant)))
            assert {one.seq, two.seq} == {1, 2}
            assert (await a.ask(VerifyAuditChain(tenant_id=tenant))).ok


async def test_messages_validate_their_fields():
    cases = [
        ({"outcome": "OK"}, "outcome"),
        ({"outcome": "success"}, "outcome"),
        ({"action": ""}, "action"),
        ({"action": "a" * 101}, "action"),
        ({"resource_type": ""}, "resource_type"),
        ({"resource_type": " member"}, "resource_type"),
        ({"actor_member_id": ""}, "actor_member_id"),
        ({"resource_id": "r" * 256}, "resource_id"),
        ({"error_code": ""}, "error_code"),
        ({"request_id": "x" * 101}, "request_id"),
    ]
    for fields, name in cases:
        with pytest.raises(InvalidInput) as err:
            record(**fields)
        assert err.value.field == name, fields
    assert record(action="a" * 100).action == "a" * 100
    with pytest.raises(InvalidInput) as err:
        RecordAudit(tenant_id="", action="x", resource_type="y", outcome="SUCCESS")
    assert err.value.field == "tenant_id"
    with pytest.raises(TypeError):  # the service sets the chain fields, never the caller
        record(seq=3)
    with pytest.raises(InvalidInput) as err:
        ListAuditRecords(tenant_id="t", outcome="MAYBE")
    assert err.value.field == "outcome"
    with pytest.raises(InvalidInput) as err:
        ListAuditRecords(tenant_id="t", first=0)
    assert err.value.field == "first"
    with pytest.raises(InvalidInput) as err:
        VerifyAuditChain(tenant_id="")
    assert err.value.field == "tenant_id"


async def test_records_survive_a_runtime_restart(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        before = await record_many(rt, 3)
    async with embedded(tmp_path, db_environ) as rt:
        after = await rt.ask(record())
        listed = await rt.ask(ListAuditRecords(tenant_id="ten_a"))
        result = await rt.ask(VerifyAuditChain(tenant_id="ten_a"))
    assert after.seq == 4
    assert after.prev_hash == before[-1].hash
    assert list(listed.items[1:]) == list(reversed(before))
    assert (result.ok, result.checked) == (True, 4)
