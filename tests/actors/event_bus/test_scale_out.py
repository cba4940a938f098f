"""event-bus-service run by two processes on one PostgreSQL database (PostgreSQL only).

Two runtimes in one event loop stand for two ``synapsex serve`` processes: what keeps a lease
exclusive, a batch atomic and a live stream complete must hold in the database and through
``LISTEN``/``NOTIFY``, not in one actor's turn-taking.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from synapsex.contracts.errors import NotFound
from synapsex.contracts.events import (
    SERVICE,
    AckEvent,
    AckEvents,
    ClaimEvents,
    CreateConsumerGroup,
    DeleteConsumerGroup,
    DeliveryView,
    EventDraft,
    GetConsumerGroup,
    LeaseRef,
    ListDeadLetters,
    PublishEvent,
    PublishEvents,
    ReadStream,
    RedriveDeadLetters,
    events_channel,
)
from synapsex.runtime import Runtime
from synapsex.runtime.testing import wait_until

T = "ten_scale"
DEADLINE = 5.0


@pytest.fixture
async def pair(tmp_path, pg_url):
    """Two runtimes on one database; the first applies the migrations."""
    environ = {"DATABASE_URL": pg_url}
    async with (
        Runtime.embedded(data_dir=tmp_path / "a", services=[SERVICE], environ=environ) as a,
        Runtime.embedded(data_dir=tmp_path / "b", services=[SERVICE], environ=environ) as b,
    ):
        yield a, b


def drafts(start: int, n: int) -> tuple[EventDraft, ...]:
    # every other event has one of 16 keys, so key ordering is exercised across processes
    return tuple(
        EventDraft(topic="load.tick", payload={"i": i}, key=f"k{i % 16}" if i % 2 else None)
        for i in range(start, start + n)
    )


async def test_concurrent_claimers_on_two_processes_lease_each_event_once(pair):
    a, b = pair
    await a.ask(
        CreateConsumerGroup(tenant_id=T, name="workers", topics=("load.#",), max_attempts=1)
    )
    batches, size = 24, 25
    total = batches * size
    held: dict[str, DeliveryView] = {}  # leased, ack not yet sent
    held_keys: set[str] = set()
    acked: Counter[str] = Counter()
    claimed_by: Counter[str] = Counter()  # deliveries per process
    last_seq_of_key: dict[str, int] = {}
    problems: list[str] = []

    async def publisher(rt: Runtime, parity: int) -> None:
        for n in range(parity, batches, 2):
            await rt.ask(PublishEvents(tenant_id=T, source="load", events=drafts(n * size, size)))

    async def claimer(rt: Runtime, batch_acks: bool) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while sum(acked.values()) < total:
            assert loop.time() < end, f"only {sum(acked.values())} of {total} acked"
            got = await rt.ask(ClaimEvents(tenant_id=T, group="workers", limit=10))
            claimed_by["a" if rt is a else "b"] += len(got)
            for d in got:
                e = d.event
                if e.id in held or acked[e.id]:
                    problems.append(f"{e.id} leased again (attempt {d.attempt})")
                if e.key is not None:
                    if e.key in held_keys:
                        problems.append(f"key {e.key} leased twice at once (seq {e.seq})")
                    if last_seq_of_key.get(e.key, 0) > e.seq:
                        problems.append(f"key {e.key}: seq {e.seq} after a later one")
                    last_seq_of_key[e.key] = e.seq
                    held_keys.add(e.key)
                held[e.id] = d
            # forget what is about to be acked before the ack is sent: from then on the
            # database may lease the next event of its key
            for d in got:
                del held[d.event.id]
                held_keys.discard(d.event.key)
                acked[d.event.id] += 1
            if batch_acks and got:
                result = await rt.ask(
                    AckEvents(
                        tenant_id=T,
                        group="workers",
                        leases=tuple(
                            LeaseRef(event_id=d.event.id, lease_id=d.lease_id) for d in got
                        ),
                    )
                )
                assert result.stale == (), result
            else:
                for d in got:
                    done = await rt.ask(
                        AckEvent(
                            tenant_id=T, group="workers", event_id=d.event.id, lease_id=d.lease_id
                        )
                    )
                    assert done.state == "acked"

    await asyncio.gather(
        publisher(a, 0),
        publisher(b, 1),
        *(claimer(rt, batch_acks=i % 2 == 0) for rt in (a, b) for i in range(4)),
    )
    assert problems == []
    assert len(acked) == total
    assert set(acked.values()) == {1}
    assert min(claimed_by["a"], claimed_by["b"]) > 0, claimed_by  # both processes took part
    for rt in (a, b):
        c = (await rt.ask(GetConsumerGroup(tenant_id=T, name="workers"))).counts
        assert (c.pending, c.leased, c.acked, c.dead_letter) == (0, 0, total, 0)


async def test_a_reader_on_another_process_never_sees_part_of_a_batch(pair):
    a, b = pair
    size, batches = 50, 10
    seen_heads: set[int] = set()

    async def read_until_done() -> None:
        while True:
            chunk = await b.ask(ReadStream(tenant_id=T, after_seq=0, limit=1000))
            assert chunk.head_seq % size == 0, chunk.head_seq
            assert [e.seq for e in chunk.events] == list(range(1, chunk.head_seq + 1))
            seen_heads.add(chunk.head_seq)
            if chunk.head_seq == size * batches:
                return

    async def publish() -> None:
        for n in range(batches):
            await a.ask(PublishEvents(tenant_id=T, source="load", events=drafts(n * size, size)))

    await asyncio.wait_for(asyncio.gather(read_until_done(), publish()), 30)
    assert size * batches in seen_heads


async def test_idempotent_publishes_racing_on_two_processes_make_one_event(pair):
    a, b = pair
    views = await asyncio.gather(
        *(
            rt.ask(PublishEvent(tenant_id=T, source="s", topic="once", idempotency_key="k1"))
            for _ in range(5)
            for rt in (a, b)
        )
    )
    assert {v.id for v in views} == {views[0].id}
    assert views[0].seq == 1
    chunk = await b.ask(ReadStream(tenant_id=T, after_seq=0))
    assert chunk.head_seq == 1


async def test_events_published_on_one_process_reach_live_listeners_on_the_other(pair):
    a, b = pair
    async with (
        a.broadcast.listen(events_channel(T)) as on_a,
        b.broadcast.listen(events_channel(T)) as on_b,
    ):
        warm_up = await a.ask(PublishEvent(tenant_id=T, source="s", topic="live.warm-up"))
        assert await on_a.next(DEADLINE) == warm_up
        assert await on_b.next(DEADLINE) == warm_up
        # interleaved publishes: each process announces the other's events too, in seq order
        published = []
        for i in range(10):
            rt = (a, b)[i % 2]
            published.append(
                await rt.ask(PublishEvent(tenant_id=T, source="s", topic=f"live.n{i}"))
            )
        for items in (on_a, on_b):
            got = [await items.next(DEADLINE) for _ in published]
            assert got == published
            assert items.dropped == 0


async def test_a_group_deleted_by_the_other_process_is_not_found(pair):
    a, b = pair
    await a.ask(CreateConsumerGroup(tenant_id=T, name="workers", topics=("#",)))
    await a.ask(GetConsumerGroup(tenant_id=T, name="workers"))  # a remembers it
    await b.ask(DeleteConsumerGroup(tenant_id=T, name="workers"))
    for msg in (
        GetConsumerGroup(tenant_id=T, name="workers"),
        RedriveDeadLetters(tenant_id=T, group="workers"),
        DeleteConsumerGroup(tenant_id=T, name="workers"),
    ):
        with pytest.raises(NotFound):
            await a.ask(msg)
    # the name can be taken again, by either process
    again = await b.ask(CreateConsumerGroup(tenant_id=T, name="workers", topics=("#",)))
    assert (await a.ask(GetConsumerGroup(tenant_id=T, name="workers"))).id == again.id
    await a.ask(PublishEvent(tenant_id=T, source="s", topic="after"))
    (d,) = await wait_until(
        lambda: a.ask(ClaimEvents(tenant_id=T, group="workers")),
        deadline=DEADLINE,
        message="the new group never delivered",
    )
    assert d.event.topic == "after"
    assert (await a.ask(ListDeadLetters(tenant_id=T, group="workers"))).items == ()
