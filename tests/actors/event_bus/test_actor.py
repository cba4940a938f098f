"""event-bus-service on both engines: publishing, consumer groups, leases, dead letters, streams.

Leases, backoffs and delays run on the database clock, so the tests use fractions of a second
and wait for the effect with a deadline (a claim that finally returns something, counts that
finally change); they never sleep to synchronise.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from synapsex.actors.event_bus.internal import Maintain
from synapsex.contracts.errors import Conflict, InvalidInput, NotFound, ServiceFailure
from synapsex.contracts.events import (
    SERVICE,
    AckEvent,
    AckEvents,
    ClaimEvents,
    CreateConsumerGroup,
    DeleteConsumerGroup,
    DeleteDeadLetters,
    DeliveryView,
    EventDraft,
    EventView,
    ExtendLease,
    GetConsumerGroup,
    GetEvent,
    LeaseRef,
    ListConsumerGroups,
    ListDeadLetters,
    ListEvents,
    NackEvent,
    PublishEvent,
    PublishEvents,
    ReadStream,
    RedriveDeadLetters,
    StreamPosition,
    encode_payload,
    events_channel,
)
from synapsex.runtime import Runtime, testing
from synapsex.runtime.testing import wait_until

pytestmark = pytest.mark.usefixtures("db_environ")

A = "ten_a"
B = "ten_b"
#: how long a test waits for a lease, a delay or a backoff to run out on the database clock
DEADLINE = 5.0


def embedded(tmp_path, db_environ, **environ: str) -> Runtime:
    return Runtime.embedded(
        data_dir=tmp_path, services=[SERVICE], environ={**db_environ, **environ}
    )


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as runtime:
        yield runtime


def raw_sql(rt: Runtime):
    """A connection of its own to the event bus's database, to change rows behind its back."""
    return testing.raw_sql(rt, SERVICE)


async def publish(rt: Runtime, topic: str = "orders.created", tenant: str = A, **fields):
    fields.setdefault("source", "test-service")
    return await rt.ask(PublishEvent(tenant_id=tenant, topic=topic, **fields))


async def publish_many(rt: Runtime, topics, tenant: str = A) -> tuple[EventView, ...]:
    drafts = tuple(EventDraft(topic=t) for t in topics)
    return await rt.ask(PublishEvents(tenant_id=tenant, source="test-service", events=drafts))


async def create_group(rt: Runtime, name: str = "workers", tenant: str = A, **fields):
    fields.setdefault("topics", ("#",))
    return await rt.ask(CreateConsumerGroup(tenant_id=tenant, name=name, **fields))


async def claim(rt: Runtime, group: str = "workers", tenant: str = A, **fields):
    fields.setdefault("limit", 100)
    return await rt.ask(ClaimEvents(tenant_id=tenant, group=group, **fields))


async def claim_when_due(rt: Runtime, group: str = "workers", tenant: str = A, **fields):
    """Claim until something is delivered (a lease, delay or backoff ran out), or fail."""
    return await wait_until(
        lambda: claim(rt, group, tenant, **fields),
        deadline=DEADLINE,
        message=f"nothing became claimable in group {group!r}",
    )


async def counts(rt: Runtime, group: str = "workers", tenant: str = A):
    return (await rt.ask(GetConsumerGroup(tenant_id=tenant, name=group))).counts


async def lapsed(rt: Runtime) -> bool:
    """The group's one delivery is no longer under a valid lease."""
    c = await counts(rt)
    return c.leased == 0 and c.pending == 1


async def dead_letters(rt: Runtime) -> int:
    return (await counts(rt)).dead_letter


def lease_msg(cls, d: DeliveryView, group: str = "workers", tenant: str = A, **fields):
    return cls(tenant_id=tenant, group=group, event_id=d.event.id, lease_id=d.lease_id, **fields)


def ids(items) -> list[str]:
    return [i.event.id if isinstance(i, DeliveryView) else i.id for i in items]


# ---------------------------------------------------------------------------- publishing


async def test_publish_returns_the_stored_event_with_consecutive_seq_per_tenant(rt):
    payload = {"order": {"id": 7, "lines": [1, 2.5, None, True]}, "note": "grüße ✓ 注文"}
    first = await rt.ask(
        PublishEvent(
            tenant_id=A, source="orders-service", topic="orders.created", payload=payload, key="o7"
        ),
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )
    second = await publish(rt, "orders.paid")
    other = await publish(rt, "orders.created", tenant=B)
    third = await publish(rt, "orders.shipped")

    assert (first.seq, second.seq, third.seq) == (1, 2, 3)
    assert other.seq == 1
    assert first.id.startswith("evt_")
    assert first.id < second.id < third.id
    assert (first.tenant_id, first.topic, first.key) == (A, "orders.created", "o7")
    assert first.source == "orders-service"
    assert first.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert second.trace_id  # a trace is started when the asker gave none
    assert second.key is None
    assert second.payload is None
    assert first.occurred_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - first.occurred_at) < timedelta(minutes=1)
    assert first.occurred_at <= second.occurred_at <= third.occurred_at

    stored = await rt.ask(GetEvent(tenant_id=A, event_id=first.id))
    assert stored == first
    assert stored.payload == payload


async def test_publish_events_stores_a_batch_in_order(rt):
    await publish(rt, "before")
    views = await rt.ask(
        PublishEvents(
            tenant_id=A,
            source="test-service",
            events=(
                EventDraft(topic="batch.one", payload=[1]),
                EventDraft(topic="batch.two", key="k"),
                EventDraft(topic="batch.three", payload={"x": "y"}),
            ),
        )
    )
    assert [v.seq for v in views] == [2, 3, 4]
    assert [v.topic for v in views] == ["batch.one", "batch.two", "batch.three"]
    assert len({v.occurred_at for v in views}) == 1
    listed = await rt.ask(ListEvents(tenant_id=A))
    assert [e.id for e in listed.items[1:]] == [v.id for v in views]
    assert listed.items[1:] == views


async def test_a_batch_that_fails_midway_publishes_nothing(rt):
    await publish(rt, "first")
    # a row planted at seq 3 makes the batch's second insert fail inside its transaction
    async with raw_sql(rt) as run:
        await run(
            "INSERT INTO events (id, tenant_id, seq, topic, payload, occurred_at_ms, source) "
            "VALUES ('evt_planted', ?, 3, 'planted', 'null', 0, 'test')",
            A,
        )
    with pytest.raises(ServiceFailure):
        await publish_many(rt, ["batch.one", "batch.two", "batch.three"])
    await wait_until(lambda: rt.ready, message="the event bus did not restart")
    async with raw_sql(rt) as run:
        await run("DELETE FROM events WHERE id = 'evt_planted'")
    # nothing of the batch was kept: no event, no seq used up
    assert [e.topic for e in (await rt.ask(ListEvents(tenant_id=A))).items] == ["first"]
    assert await rt.ask(StreamPosition(tenant_id=A)) == 1
    again = await publish_many(rt, ["batch.one", "batch.two", "batch.three"])
    assert [v.seq for v in again] == [2, 3, 4]


def bus_tasks() -> list[str]:
    """The event bus's background tasks running in this loop: its ticker, its LISTEN."""
    return sorted(
        t.get_name()
        for t in asyncio.all_tasks()
        if not t.done() and t.get_name().startswith(("event-bus-ticker", "listen-sx_events"))
    )


async def test_a_crashed_event_bus_leaves_no_ticker_or_listener_behind(tmp_path, db_environ):
    one_instance = ["event-bus-ticker"] + (["listen-sx_events_event_bus"] if db_environ else [])
    async with embedded(tmp_path, db_environ) as rt:
        await wait_until(lambda: bus_tasks() == one_instance, message="the bus never started")
        await publish(rt, "first")
        async with raw_sql(rt) as run:  # makes the next publish fail: the actor crashes
            await run(
                "INSERT INTO events (id, tenant_id, seq, topic, payload, occurred_at_ms, source) "
                "VALUES ('evt_planted', ?, 2, 'planted', 'null', 0, 'test')",
                A,
            )
        with pytest.raises(ServiceFailure):
            await publish(rt, "second")
        await wait_until(lambda: rt.ready, message="the event bus did not restart")
        await wait_until(
            lambda: bus_tasks() == one_instance, message="the crashed instance's tasks run on"
        )
    await wait_until(lambda: bus_tasks() == [], message="tasks outlived the runtime")


async def test_a_batch_holds_at_most_100_events(rt):
    views = await publish_many(rt, ["t"] * 100)
    assert [v.seq for v in views] == list(range(1, 101))
    with pytest.raises(InvalidInput) as err:
        PublishEvents(
            tenant_id=A, source="s", events=tuple(EventDraft(topic="t") for _ in range(101))
        )
    assert err.value.field == "events"
    with pytest.raises(InvalidInput) as err:  # one bad draft refuses the batch before sending
        PublishEvents(tenant_id=A, source="s", events=(EventDraft(topic="a.*"),))
    assert err.value.field == "topic"
    assert await rt.ask(StreamPosition(tenant_id=A)) == 100


# ---------------------------------------------------------------------------- consumer groups


async def test_consumer_groups_are_created_read_listed_and_deleted(rt):
    created = await create_group(
        rt,
        "billing",
        topics=("invoice.*", "payment.#"),
        max_attempts=3,
        visibility_timeout_seconds=12.5,
        retry_backoff_seconds=0.5,
        max_retry_backoff_seconds=60,
    )
    assert created.id.startswith("cgr_")
    assert (created.tenant_id, created.name) == (A, "billing")
    assert created.topics == ("invoice.*", "payment.#")
    assert created.max_attempts == 3
    assert created.visibility_timeout_seconds == 12.5
    assert (created.retry_backoff_seconds, created.max_retry_backoff_seconds) == (0.5, 60)
    assert created.created_at.utcoffset() == timedelta(0)
    assert (created.counts.pending, created.counts.leased, created.counts.acked) == (0, 0, 0)
    assert created.counts.dead_letter == 0
    assert created.counts.oldest_pending_age_seconds is None
    assert await rt.ask(GetConsumerGroup(tenant_id=A, name="billing")) == created

    names = ["billing"] + [f"g{i}" for i in range(4)]
    for name in names[1:]:
        await create_group(rt, name)
    await create_group(rt, "elsewhere", tenant=B)
    seen, after = [], None
    while True:
        page = await rt.ask(ListConsumerGroups(tenant_id=A, first=2, after=after))
        assert len(page.items) <= 2
        seen += [g.name for g in page.items]
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert seen == names

    deleted = await rt.ask(DeleteConsumerGroup(tenant_id=A, name="billing"))
    assert deleted.id == created.id
    with pytest.raises(NotFound):
        await rt.ask(GetConsumerGroup(tenant_id=A, name="billing"))
    with pytest.raises(NotFound):
        await rt.ask(DeleteConsumerGroup(tenant_id=A, name="billing"))
    with pytest.raises(NotFound):
        await claim(rt, "billing")
    assert [g.name for g in (await rt.ask(ListConsumerGroups(tenant_id=A))).items] == names[1:]


async def test_group_names_are_unique_per_tenant(rt):
    await create_group(rt, "workers")
    with pytest.raises(Conflict) as err:
        await create_group(rt, "workers", topics=("other",))
    assert err.value.details["field"] == "name"
    other = await create_group(rt, "workers", tenant=B)
    assert other.tenant_id == B
    # a deleted name can be taken again; the new group starts from new events only
    await publish(rt)
    await rt.ask(DeleteConsumerGroup(tenant_id=A, name="workers"))
    await create_group(rt, "workers")
    assert await claim(rt) == ()


async def test_topic_patterns_decide_which_events_a_group_gets(rt):
    await create_group(rt, "direct", topics=("orders.*",))
    await create_group(rt, "subtree", topics=("orders.#",))
    await create_group(rt, "everything", topics=("#",))
    await create_group(rt, "mixed", topics=("*.eu.created", "billing.invoice"))
    await create_group(rt, "exact", topics=("orders.created",))
    topics = [
        "orders.created",
        "orders.eu.created",
        "orders",
        "billing.invoice",
        "billing.invoice.paid",
        "shipping.eu.created",
        "ordersx.created",
    ]
    await publish_many(rt, topics)

    async def got(group: str) -> list[str]:
        return [d.event.topic for d in await claim(rt, group)]

    assert await got("direct") == ["orders.created"]
    assert await got("subtree") == ["orders.created", "orders.eu.created", "orders"]
    assert await got("everything") == topics
    assert await got("mixed") == ["orders.eu.created", "billing.invoice", "shipping.eu.created"]
    assert await got("exact") == ["orders.created"]


async def test_events_published_before_a_group_exists_are_not_delivered_to_it(rt):
    await publish(rt, "orders.created")
    await create_group(rt)
    assert await claim(rt) == ()
    later = await publish(rt, "orders.created")
    assert ids(await claim(rt)) == [later.id]
    assert (await counts(rt)).pending == 0


async def test_counts_follow_each_delivery_state(rt):
    await create_group(rt, max_attempts=1)
    await publish_many(rt, ["t"] * 5)
    c = await counts(rt)
    assert (c.pending, c.leased, c.acked, c.dead_letter) == (5, 0, 0, 0)
    assert 0 <= c.oldest_pending_age_seconds < 60

    one, two, three = await claim(rt, limit=3)
    await rt.ask(lease_msg(AckEvent, one))
    await rt.ask(lease_msg(NackEvent, two, error="broken"))
    c = await counts(rt)
    assert (c.pending, c.leased, c.acked, c.dead_letter) == (2, 1, 1, 1)

    # the age is that of the oldest event still waiting (pending or leased)
    async with raw_sql(rt) as run:
        await run(
            "UPDATE event_deliveries SET occurred_at_ms = occurred_at_ms - 3600000 "
            "WHERE event_id = ?",
            three.event.id,
        )
    c = await counts(rt)
    assert 3600 <= c.oldest_pending_age_seconds < 3660
    for d in (three, *await claim(rt)):
        await rt.ask(lease_msg(AckEvent, d))
    c = await counts(rt)
    assert (c.pending, c.leased, c.acked, c.dead_letter) == (0, 0, 4, 1)
    assert c.oldest_pending_age_seconds is None


# ---------------------------------------------------------------------------- claims


async def test_claims_lease_batches_in_stream_order_and_never_twice(rt):
    await create_group(rt, visibility_timeout_seconds=30)
    events = await publish_many(rt, [f"t{i}" for i in range(5)])
    first = await claim(rt, limit=2)
    second = await claim(rt, limit=2)
    third = await claim(rt, limit=2)
    assert ids(first) == [e.id for e in events[:2]]
    assert ids(second) == [e.id for e in events[2:4]]
    assert ids(third) == [events[4].id]
    assert await claim(rt) == ()
    d = first[0]
    assert (d.group, d.state, d.attempt, d.last_error) == ("workers", "leased", 1, None)
    assert d.event == events[0]
    assert d.lease_id
    assert len({x.lease_id for x in (*first, *second, *third)}) == 3  # one lease per claim
    assert timedelta(seconds=30) <= d.lease_expires_at - d.event.occurred_at < timedelta(seconds=35)
    # were the lease to lapse, the event would wait out the group's backoff (1 s) as well
    assert d.available_at - d.lease_expires_at == timedelta(seconds=1)
    c = await counts(rt)
    assert (c.pending, c.leased) == (0, 5)


async def test_an_expired_lease_is_delivered_again_with_a_new_lease(rt):
    await create_group(rt, visibility_timeout_seconds=0.2, retry_backoff_seconds=0.05)
    event = await publish(rt)
    (first,) = await claim(rt)
    assert await claim(rt) == ()  # still leased
    (again,) = await claim_when_due(rt, visibility_timeout_seconds=30)
    assert again.event.id == event.id
    assert (again.attempt, again.state) == (2, "leased")
    assert again.lease_id != first.lease_id
    assert again.lease_expires_at > first.lease_expires_at
    # after a lapse the backoff doubles with each attempt: 50 ms, then 100 ms
    assert first.available_at - first.lease_expires_at == timedelta(milliseconds=50)
    assert again.available_at - again.lease_expires_at == timedelta(milliseconds=100)
    acked = await rt.ask(lease_msg(AckEvent, again))
    assert (acked.state, acked.lease_id, acked.attempt) == ("acked", None, 2)


async def test_a_claim_may_choose_its_own_visibility_timeout(rt):
    await create_group(rt, visibility_timeout_seconds=600, retry_backoff_seconds=0.05)
    await publish_many(rt, ["short", "long"])
    (short,) = await claim(rt, limit=1, visibility_timeout_seconds=0.2)
    (long,) = await claim(rt, limit=1)
    assert short.lease_expires_at - short.event.occurred_at < timedelta(seconds=5)
    assert long.lease_expires_at - long.event.occurred_at >= timedelta(seconds=600)
    (again,) = await claim_when_due(rt)
    assert (again.event.id, again.attempt) == (short.event.id, 2)
    # the redelivery uses the group's timeout again
    assert again.lease_expires_at - again.event.occurred_at >= timedelta(seconds=600)


async def test_a_claim_may_take_payloads_as_their_stored_json(rt):
    await create_group(rt)
    payload = {"order": 7, "name": "Zoë", "lines": [{"sku": "a", "qty": 1.5}]}
    await publish(rt, payload=payload)
    await publish(rt, payload=payload)
    (decoded,) = await claim(rt, limit=1)
    (raw,) = await claim(rt, limit=1, raw_payloads=True)
    assert (decoded.event.payload, decoded.event.payload_json) == (payload, None)
    assert raw.event.payload is None
    assert json.loads(raw.event.payload_json) == payload
    assert raw.event.payload_json == encode_payload(payload)


# ---------------------------------------------------------------------------- key ordering


async def test_events_sharing_a_key_are_leased_one_at_a_time_in_order(rt):
    await create_group(rt, visibility_timeout_seconds=30)
    drafts = (
        EventDraft(topic="a1", key="cart-1"),
        EventDraft(topic="a2", key="cart-1"),
        EventDraft(topic="b1", key="cart-2"),
        EventDraft(topic="n1"),
        EventDraft(topic="a3", key="cart-1"),
        EventDraft(topic="b2", key="cart-2"),
        EventDraft(topic="n2"),
    )
    await rt.ask(PublishEvents(tenant_id=A, source="s", events=drafts))

    def topics(ds) -> list[str]:
        return [d.event.topic for d in ds]

    first = await claim(rt)
    assert topics(first) == ["a1", "b1", "n1", "n2"]
    assert await claim(rt) == ()
    a1, b1 = first[0], first[1]
    await rt.ask(lease_msg(AckEvent, a1))
    second = await claim(rt)
    assert topics(second) == ["a2"]
    await rt.ask(lease_msg(AckEvent, b1))
    await rt.ask(lease_msg(AckEvent, second[0]))
    assert topics(await claim(rt)) == ["a3", "b2"]


async def test_a_key_waits_while_the_earlier_event_is_retried_and_moves_on_once_dead(rt):
    await create_group(
        rt, max_attempts=2, visibility_timeout_seconds=0.2, retry_backoff_seconds=0.05
    )
    drafts = (EventDraft(topic="first", key="k"), EventDraft(topic="second", key="k"))
    first, second = await rt.ask(PublishEvents(tenant_id=A, source="s", events=drafts))
    (lease,) = await claim(rt)
    assert lease.event.id == first.id
    # the lease lapses: the earlier event comes back, the later one still waits
    (retry,) = await claim_when_due(rt, visibility_timeout_seconds=30)
    assert (retry.event.id, retry.attempt) == (first.id, 2)
    dead = await rt.ask(lease_msg(NackEvent, retry, error="cannot"))
    assert dead.state == "dead_letter"
    (next_one,) = await claim(rt)
    assert next_one.event.id == second.id


async def test_a_redriven_event_waits_while_a_later_event_of_its_key_is_leased(rt):
    await create_group(rt, max_attempts=1, visibility_timeout_seconds=30)
    drafts = (EventDraft(topic="first", key="k"), EventDraft(topic="second", key="k"))
    first, second = await rt.ask(PublishEvents(tenant_id=A, source="s", events=drafts))
    (d1,) = await claim(rt)
    await rt.ask(lease_msg(NackEvent, d1))  # dead: the key moves on
    (d2,) = await claim(rt)
    assert d2.event.id == second.id
    await rt.ask(RedriveDeadLetters(tenant_id=A, group="workers", event_ids=(first.id,)))
    assert await claim(rt) == ()  # never two leases on one key, even out of order
    await rt.ask(lease_msg(AckEvent, d2))
    (again,) = await claim(rt)
    assert (again.event.id, again.attempt) == (first.id, 1)


# ---------------------------------------------------------------------------- stale leases


async def test_a_superseded_lease_can_no_longer_ack_nack_or_extend(rt):
    await create_group(rt, visibility_timeout_seconds=0.2, retry_backoff_seconds=0.05)
    await publish(rt)
    (old,) = await claim(rt)
    (new,) = await claim_when_due(rt, visibility_timeout_seconds=30)
    for msg in (
        lease_msg(AckEvent, old),
        lease_msg(NackEvent, old),
        lease_msg(ExtendLease, old, visibility_timeout_seconds=30),
    ):
        with pytest.raises(Conflict) as err:
            await rt.ask(msg)
        assert err.value.details["field"] == "leaseId"
    extended = await rt.ask(lease_msg(ExtendLease, new, visibility_timeout_seconds=30))
    assert extended.lease_id == new.lease_id
    assert (await rt.ask(lease_msg(AckEvent, new))).state == "acked"
    with pytest.raises(Conflict):  # acked: the lease is over
        await rt.ask(lease_msg(AckEvent, new))


async def test_ack_after_the_lease_expired_is_a_conflict(rt):
    await create_group(rt, max_attempts=3, visibility_timeout_seconds=30)
    await publish(rt)
    (d,) = await claim(rt, visibility_timeout_seconds=0.2)
    await wait_until(lambda: lapsed(rt), deadline=DEADLINE, message="the lease never lapsed")
    with pytest.raises(Conflict):
        await rt.ask(lease_msg(AckEvent, d))
    with pytest.raises(Conflict):
        await rt.ask(lease_msg(ExtendLease, d, visibility_timeout_seconds=30))
    with pytest.raises(Conflict):
        await rt.ask(lease_msg(NackEvent, d))


async def test_unknown_events_and_groups_are_not_found(rt):
    await create_group(rt, topics=("orders.#",))
    unmatched = await publish(rt, "billing.paid")
    lease = "lse_whatever"
    for event_id in ("evt_missing", unmatched.id):
        for msg in (
            AckEvent(tenant_id=A, group="workers", event_id=event_id, lease_id=lease),
            NackEvent(tenant_id=A, group="workers", event_id=event_id, lease_id=lease),
            ExtendLease(
                tenant_id=A,
                group="workers",
                event_id=event_id,
                lease_id=lease,
                visibility_timeout_seconds=1,
            ),
        ):
            with pytest.raises(NotFound):
                await rt.ask(msg)
    for msg in (
        AckEvent(tenant_id=A, group="nope", event_id=unmatched.id, lease_id=lease),
        ClaimEvents(tenant_id=A, group="nope"),
        ListDeadLetters(tenant_id=A, group="nope"),
        RedriveDeadLetters(tenant_id=A, group="nope"),
        AckEvents(tenant_id=A, group="nope", leases=(LeaseRef(event_id="e", lease_id="l"),)),
    ):
        with pytest.raises(NotFound):
            await rt.ask(msg)
    with pytest.raises(NotFound):
        await rt.ask(GetEvent(tenant_id=A, event_id="evt_missing"))


# ---------------------------------------------------------------------------- nack, extend


async def test_nack_retries_after_the_delay_then_dead_letters_past_max_attempts(rt):
    await create_group(
        rt, max_attempts=3, visibility_timeout_seconds=30, retry_backoff_seconds=0.05
    )
    event = await publish(rt)
    (d,) = await claim(rt)
    nacked = await rt.ask(lease_msg(NackEvent, d, delay_seconds=0.3, error="boom"))
    assert (nacked.state, nacked.last_error, nacked.lease_id) == ("pending", "boom", None)
    assert nacked.available_at - event.occurred_at >= timedelta(seconds=0.3)
    assert await claim(rt) == ()  # not before the delay
    (d,) = await claim_when_due(rt)
    assert (d.attempt, d.last_error) == (2, "boom")  # the error is kept for the retry
    await rt.ask(lease_msg(NackEvent, d))  # the group's backoff: 0.1 s for a second retry
    (d,) = await claim_when_due(rt)
    assert (d.attempt, d.last_error) == (3, "nacked")
    dead = await rt.ask(lease_msg(NackEvent, d, error="gave up"))
    assert (dead.state, dead.attempt, dead.last_error) == ("dead_letter", 3, "gave up")
    c = await counts(rt)
    assert (c.pending, c.leased, c.dead_letter) == (0, 0, 1)
    assert await claim(rt) == ()
    (letter,) = (await rt.ask(ListDeadLetters(tenant_id=A, group="workers"))).items
    assert (letter.event.id, letter.last_error) == (event.id, "gave up")


async def test_nack_without_delay_backs_off_exponentially_up_to_the_maximum(rt):
    await create_group(
        rt,
        max_attempts=5,
        visibility_timeout_seconds=30,
        retry_backoff_seconds=100,
        max_retry_backoff_seconds=150,
    )
    event = await publish(rt)

    def wait_of(d: DeliveryView) -> timedelta:
        return d.available_at - event.occurred_at

    (d,) = await claim(rt)
    first = await rt.ask(lease_msg(NackEvent, d))
    assert timedelta(seconds=100) <= wait_of(first) < timedelta(seconds=105)
    assert await claim(rt) == ()
    # skip the wait by hand, then the second backoff doubles, capped at 150 s
    async with raw_sql(rt) as run:
        await run("UPDATE event_deliveries SET available_at_ms = 0")
    (d,) = await claim(rt)
    assert d.attempt == 2
    second = await rt.ask(lease_msg(NackEvent, d))
    assert timedelta(seconds=150) <= wait_of(second) < timedelta(seconds=155)
    # an explicit delay of zero makes it claimable at once
    async with raw_sql(rt) as run:
        await run("UPDATE event_deliveries SET available_at_ms = 0")
    (d,) = await claim(rt)
    await rt.ask(lease_msg(NackEvent, d, delay_seconds=0))
    (d,) = await claim(rt)
    assert d.attempt == 4


async def test_a_lapsed_lease_on_the_last_attempt_becomes_a_dead_letter(rt):
    await create_group(rt, max_attempts=1, visibility_timeout_seconds=0.2)
    event = await publish(rt)
    (d,) = await claim(rt)
    await wait_until(lambda: dead_letters(rt), deadline=DEADLINE, message="no dead letter appeared")
    (letter,) = (await rt.ask(ListDeadLetters(tenant_id=A, group="workers"))).items
    assert letter.event.id == event.id
    assert letter.state == "dead_letter"
    assert letter.lease_id is None
    assert letter.last_error.startswith("lease expired")
    assert await claim(rt) == ()
    with pytest.raises(Conflict):
        await rt.ask(lease_msg(AckEvent, d))


async def test_extending_a_lease_keeps_it_past_its_first_expiry(rt):
    await create_group(rt, visibility_timeout_seconds=0.5, retry_backoff_seconds=0.05)
    kept_event, lapsing_event = await publish_many(rt, ["kept", "lapsing"])
    kept, _lapsing = await claim(rt)
    extended = await rt.ask(lease_msg(ExtendLease, kept, visibility_timeout_seconds=30))
    assert extended.lease_id == kept.lease_id
    assert extended.lease_expires_at - kept.lease_expires_at > timedelta(seconds=25)
    assert extended.available_at - extended.lease_expires_at == timedelta(milliseconds=50)
    # the lease claimed with it lapses and comes back; the extended one does not
    (again,) = await claim_when_due(rt)
    assert again.event.id == lapsing_event.id
    assert (await counts(rt)).leased == 2
    acked = await rt.ask(lease_msg(AckEvent, kept))
    assert (acked.event.id, acked.state, acked.attempt) == (kept_event.id, "acked", 1)


# ---------------------------------------------------------------------------- batches, dead letters


async def test_ack_events_reports_acked_and_stale_leases(rt):
    await create_group(rt, visibility_timeout_seconds=30)
    await publish_many(rt, ["a", "b", "c", "d"])
    a, b, c, d = await claim(rt)
    await rt.ask(lease_msg(AckEvent, c))
    result = await rt.ask(
        AckEvents(
            tenant_id=A,
            group="workers",
            leases=(
                LeaseRef(event_id=b.event.id, lease_id=b.lease_id),
                LeaseRef(event_id=c.event.id, lease_id=c.lease_id),  # already acked
                LeaseRef(event_id=a.event.id, lease_id=a.lease_id),
                LeaseRef(event_id=d.event.id, lease_id="lse_forged"),
            ),
        )
    )
    assert result.acked == (b.event.id, a.event.id)
    assert result.stale == (c.event.id, d.event.id)
    got = await counts(rt)
    assert (got.acked, got.leased) == (3, 1)


async def test_ack_events_names_an_event_once_whatever_leases_it_was_given(rt):
    await create_group(rt, visibility_timeout_seconds=30)
    await publish_many(rt, ["a"])
    (a,) = await claim(rt)
    result = await rt.ask(
        AckEvents(
            tenant_id=A,
            group="workers",
            leases=(
                LeaseRef(event_id=a.event.id, lease_id="lse_stale"),
                LeaseRef(event_id=a.event.id, lease_id=a.lease_id),
            ),
        )
    )
    assert (result.acked, result.stale) == ((a.event.id,), ())


async def test_dead_letters_are_listed_redriven_and_deleted(rt):
    await create_group(rt, max_attempts=1, visibility_timeout_seconds=30)
    events = await publish_many(rt, [f"t{i}" for i in range(5)])
    for i, d in enumerate(await claim(rt)):
        await rt.ask(lease_msg(NackEvent, d, error=f"error {i}"))
    seen, after = [], None
    while True:
        page = await rt.ask(ListDeadLetters(tenant_id=A, group="workers", first=2, after=after))
        seen += page.items
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert ids(seen) == [e.id for e in events]
    assert [d.last_error for d in seen] == [f"error {i}" for i in range(5)]
    with pytest.raises(InvalidInput) as err:
        await rt.ask(ListDeadLetters(tenant_id=A, group="workers", after="evt_missing"))
    assert err.value.field == "after"

    named = await rt.ask(
        RedriveDeadLetters(
            tenant_id=A, group="workers", event_ids=(events[1].id, events[0].id, "evt_x")
        )
    )
    assert named.event_ids == (events[0].id, events[1].id)  # stream order
    c = named.group.counts
    assert (c.pending, c.dead_letter) == (2, 3)
    redriven = await claim(rt)
    assert ids(redriven) == [events[0].id, events[1].id]
    assert [d.attempt for d in redriven] == [1, 1]  # a fresh attempt count

    everything = await rt.ask(RedriveDeadLetters(tenant_id=A, group="workers"))
    assert set(everything.event_ids) == {e.id for e in events[2:]}
    assert (everything.group.counts.pending, everything.group.counts.dead_letter) == (3, 0)
    for d in await claim(rt):
        await rt.ask(lease_msg(NackEvent, d))
    deleted = await rt.ask(
        DeleteDeadLetters(tenant_id=A, group="workers", event_ids=(events[2].id, events[3].id))
    )
    assert deleted.event_ids == (events[2].id, events[3].id)
    c = deleted.group.counts
    assert (c.pending, c.leased, c.dead_letter) == (0, 2, 1)
    assert ids((await rt.ask(ListDeadLetters(tenant_id=A, group="workers"))).items) == [
        events[4].id
    ]
    # a deleted delivery is gone from the group, the event stays in the stream
    assert (await rt.ask(GetEvent(tenant_id=A, event_id=events[2].id))).id == events[2].id


# ---------------------------------------------------------------------------- delay, idempotency


async def test_a_delayed_event_is_claimable_only_after_its_delay(rt):
    await create_group(rt, visibility_timeout_seconds=30)
    delayed = await publish(rt, "later", delay_seconds=0.3)
    prompt = await publish(rt, "now")
    assert ids(await claim(rt)) == [prompt.id]
    assert await claim(rt) == ()
    assert (await counts(rt)).pending == 1
    (d,) = await claim_when_due(rt)
    assert (d.event.id, d.attempt) == (delayed.id, 1)
    assert d.event.occurred_at == delayed.occurred_at  # the event itself is not delayed
    assert (await rt.ask(StreamPosition(tenant_id=A))) == 2


async def test_an_idempotency_key_returns_the_first_event(rt):
    await create_group(rt, visibility_timeout_seconds=30)
    first = await publish(rt, "orders.created", payload={"n": 1}, idempotency_key="order-1")
    again = await publish(rt, "orders.changed", payload={"n": 2}, idempotency_key="order-1")
    assert again == first
    batch = await rt.ask(
        PublishEvents(
            tenant_id=A,
            source="s",
            events=(
                EventDraft(topic="x", idempotency_key="order-2"),
                EventDraft(topic="y", idempotency_key="order-2"),
                EventDraft(topic="z", idempotency_key="order-1"),
                EventDraft(topic="w"),
            ),
        )
    )
    assert batch[0] == batch[1]
    assert batch[2] == first
    assert [v.seq for v in batch] == [2, 2, 1, 3]
    other = await publish(rt, "orders.created", tenant=B, idempotency_key="order-1")
    assert other.seq == 1
    assert other.id != first.id
    assert await rt.ask(StreamPosition(tenant_id=A)) == 3
    assert ids(await claim(rt)) == [first.id, batch[0].id, batch[3].id]


async def test_an_idempotency_key_is_free_again_after_24_hours(rt):
    first = await publish(rt, idempotency_key="order-1")
    async with raw_sql(rt) as run:
        await run(
            "UPDATE events SET occurred_at_ms = occurred_at_ms - ? WHERE id = ?",
            24 * 3600 * 1000 + 1000,
            first.id,
        )
    fresh = await publish(rt, idempotency_key="order-1")
    assert fresh.id != first.id
    assert fresh.seq == 2
    assert await publish(rt, idempotency_key="order-1") == fresh
    # the old event is still there
    assert (await rt.ask(GetEvent(tenant_id=A, event_id=first.id))).seq == 1


# ---------------------------------------------------------------------------- retention


async def test_retention_prunes_acked_events_but_keeps_the_unfinished(
    tmp_path, db_environ, monkeypatch
):
    async with embedded(tmp_path, db_environ) as rt:
        await create_group(rt, topics=("work.#",), max_attempts=1, visibility_timeout_seconds=30)
        acked, dead, unwatched, recent, pending = await publish_many(
            rt, ["work.acked", "work.dead", "nobody.cares", "work.recent", "work.pending"]
        )
        d_acked, d_dead, d_recent = await claim(rt, limit=3)
        await rt.ask(lease_msg(AckEvent, d_acked))
        await rt.ask(lease_msg(NackEvent, d_dead))  # the only attempt: a dead letter
        await rt.ask(lease_msg(AckEvent, d_recent))
        await rt.ask(Maintain())
        kept = await rt.ask(ListEvents(tenant_id=A))
        assert len(kept.items) == 5  # nothing is past the 7-day default
        old = [acked.id, pending.id, dead.id, unwatched.id]
        async with raw_sql(rt) as run:
            await run(
                "UPDATE events SET occurred_at_ms = occurred_at_ms - 7200000 "
                f"WHERE id IN ({', '.join('?' * len(old))})",
                *old,
            )
    # batches of one: the prune loops until nothing past the cut-off is left
    monkeypatch.setattr("synapsex.actors.event_bus.actor.PRUNE_BATCH", 1)
    async with embedded(tmp_path, db_environ, SYNAPSEX_EVENT_RETENTION="1h") as rt:
        await rt.ask(Maintain())  # the first maintenance turn of a runtime prunes
        kept = await rt.ask(ListEvents(tenant_id=A))
        assert [e.id for e in kept.items] == [dead.id, recent.id, pending.id]
        with pytest.raises(NotFound):
            await rt.ask(GetEvent(tenant_id=A, event_id=acked.id))
        c = await counts(rt)
        assert (c.pending, c.acked, c.dead_letter) == (1, 1, 1)
        assert (await publish(rt)).seq == 6  # the stream goes on


# ---------------------------------------------------------------------------- streams


async def test_stream_position_and_read_stream(rt):
    events = await publish_many(rt, ["a.x", "b.y", "a.x", "b.y", "a.z"])
    await publish(rt, "a.x", tenant=B)
    assert await rt.ask(StreamPosition(tenant_id=A)) == 5
    assert await rt.ask(StreamPosition(tenant_id="ten_empty")) == 0
    assert await rt.ask(StreamPosition(tenant_id=A, after_event_id=events[1].id)) == 2
    for unknown in ("evt_missing", (await rt.ask(ListEvents(tenant_id=B))).items[0].id):
        with pytest.raises(NotFound):
            await rt.ask(StreamPosition(tenant_id=A, after_event_id=unknown))

    whole = await rt.ask(ReadStream(tenant_id=A, after_seq=0))
    assert whole.events == events
    assert (whole.last_seq, whole.head_seq) == (5, 5)
    matching = await rt.ask(ReadStream(tenant_id=A, after_seq=1, topics=("a.*",)))
    assert [e.seq for e in matching.events] == [3, 5]
    assert matching.last_seq == 5
    limited = await rt.ask(ReadStream(tenant_id=A, after_seq=0, limit=2, topics=("a.#",)))
    assert [e.seq for e in limited.events] == [1]
    assert (limited.last_seq, limited.head_seq) == (2, 5)  # scanned up to 2
    bounded = await rt.ask(ReadStream(tenant_id=A, after_seq=1, up_to_seq=3))
    assert [e.seq for e in bounded.events] == [2, 3]
    assert (bounded.last_seq, bounded.head_seq) == (3, 5)
    caught_up = await rt.ask(ReadStream(tenant_id=A, after_seq=5))
    assert (caught_up.events, caught_up.last_seq) == ((), 5)
    empty = await rt.ask(ReadStream(tenant_id="ten_empty", after_seq=0))
    assert (empty.events, empty.last_seq, empty.head_seq) == ((), 0, 0)


async def test_list_events_pages_through_a_topic_filter(rt):
    first = await publish(rt, "a.x")
    await publish_many(rt, ["b.y"] * 100)
    await publish_many(rt, ["b.y"] * 100)
    await publish_many(rt, ["b.y"] * 30)
    second = await publish(rt, "a.z")
    page = await rt.ask(ListEvents(tenant_id=A, topic="a.*", first=1))
    assert ids(page.items) == [first.id]
    assert page.has_next_page
    page = await rt.ask(ListEvents(tenant_id=A, topic="a.*", first=1, after=page.end_cursor))
    assert ids(page.items) == [second.id]
    assert not page.has_next_page

    seen, after = [], None
    while True:
        page = await rt.ask(ListEvents(tenant_id=A, first=100, after=after))
        seen += [e.seq for e in page.items]
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert seen == list(range(1, 233))
    concrete = await rt.ask(ListEvents(tenant_id=A, topic="a.z"))
    assert ids(concrete.items) == [second.id]
    with pytest.raises(InvalidInput) as err:
        await rt.ask(ListEvents(tenant_id=A, after="evt_missing"))
    assert err.value.field == "after"
    with pytest.raises(InvalidInput) as err:
        ListEvents(tenant_id=A, topic="a.#.b")
    assert err.value.field == "topic"


async def test_committed_events_are_announced_live_in_seq_order(rt):
    async with rt.broadcast.listen(events_channel(A)) as items:
        batch = await publish_many(rt, ["live.one", "live.two"])
        await publish(rt, "elsewhere", tenant=B)
        single = await publish(rt, "live.three")
        got = [await items.next(DEADLINE) for _ in range(3)]
        assert got == [*batch, single]
        assert all(isinstance(e, EventView) for e in got)
        await publish(rt, "elsewhere", tenant=B)
        last = await publish(rt, "live.four")
        assert await items.next(DEADLINE) == last
        assert items.dropped == 0


# ---------------------------------------------------------------------------- isolation, restart


async def test_tenants_never_see_each_others_events_or_groups(rt):
    await create_group(rt, "shared", tenant=A, visibility_timeout_seconds=30)
    await create_group(rt, "shared", tenant=B, visibility_timeout_seconds=30)
    await create_group(rt, "only-a", tenant=A)
    mine = await publish(rt, "x", tenant=A)
    theirs = await publish(rt, "x", tenant=B)
    with pytest.raises(NotFound):
        await rt.ask(GetEvent(tenant_id=B, event_id=mine.id))
    with pytest.raises(NotFound):
        await rt.ask(GetConsumerGroup(tenant_id=B, name="only-a"))
    with pytest.raises(NotFound):
        await claim(rt, "only-a", tenant=B)
    assert ids((await rt.ask(ListEvents(tenant_id=B))).items) == [theirs.id]
    assert [g.name for g in (await rt.ask(ListConsumerGroups(tenant_id=B))).items] == ["shared"]

    (d,) = await claim(rt, "shared", tenant=A)
    assert d.event.id == mine.id
    with pytest.raises(NotFound):  # A's delivery is not in B's group of the same name
        await rt.ask(lease_msg(AckEvent, d, group="shared", tenant=B))
    assert (await counts(rt, "shared", tenant=A)).leased == 1
    c = await counts(rt, "shared", tenant=B)
    assert (c.pending, c.leased) == (1, 0)
    (theirs_d,) = await claim(rt, "shared", tenant=B)
    assert theirs_d.event.id == theirs.id


async def test_events_and_groups_survive_a_restart(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        await create_group(rt, visibility_timeout_seconds=600)
        events = await publish_many(rt, ["one", "two", "three"])
        one, two = await claim(rt, limit=2)
        await rt.ask(lease_msg(AckEvent, one))
    async with embedded(tmp_path, db_environ) as rt:
        assert await rt.ask(GetEvent(tenant_id=A, event_id=events[2].id)) == events[2]
        c = await counts(rt)
        assert (c.pending, c.leased, c.acked) == (1, 1, 1)
        fourth = await publish(rt, "four")
        assert fourth.seq == 4
        assert ids(await claim(rt)) == [events[2].id, fourth.id]
        assert (await rt.ask(lease_msg(AckEvent, two))).state == "acked"  # the lease held
