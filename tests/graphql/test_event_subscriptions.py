"""The ``events`` subscription over graphql-transport-ws, with a real GraphQL client (gql):
live delivery in commit order filtered by topic patterns, replay after an event id that joins
the live feed with no gap and no duplicate, errors, authentication at connection_init, fan-out
to several subscribers, and tenant isolation."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest
from gql.transport.exceptions import TransportConnectionFailed, TransportQueryError

from synapsex.contracts.events import EventDraft, PublishEvents
from synapsex.graphql.events import TenantStream
from synapsex.runtime.broadcast import Listener
from synapsex.runtime.testing import wait_until

from .events_support import (
    DEADLINE,
    Subscription,
    all_events,
    listening,
    live_gateway,  # noqa: F401 (the fixture ``gateway`` of this module)
    publish,
    subscribed,
    ws_client,
)

ADD_MEMBER = """mutation ($email: String!) {
  addTenantMember(input: {email: $email, role: MEMBER}) { id }
}"""
REVOKE_KEY = "mutation ($id: ID!) { revokeApiKey(input: {id: $id}) { id } }"


def ids(events: list[dict]) -> list[str]:
    return [e["id"] for e in events]


def close_code(exc: BaseException) -> int | None:
    """The WebSocket close code the server sent, found along the exception's causes."""
    seen: BaseException | None = exc
    while seen is not None:
        received = getattr(seen, "rcvd", None)
        if received is not None:
            return received.code
        seen = seen.__cause__ or seen.__context__
    return None


async def test_live_events_arrive_in_commit_order_filtered_by_topic_patterns(gateway):
    acme = gateway.acme
    mark = (await all_events(acme))[-1]["id"]

    # the second subscription, for everything, replays from `mark`: it need not be listening
    # before the first publish
    async with (
        subscribed(gateway, acme, ["orders.*", "audit.#"]) as some,
        subscribed(gateway, acme, ["#"], after=mark, live=False) as every,
    ):
        published = []
        for topic in (
            "orders.created",
            "billing.charged",  # neither pattern
            "orders.line.added",  # '*' is one segment
            "audit",  # 'audit.#' matches 'audit' itself
            "audit.login.failed",
            "ordersx.created",
            "orders.paid",
        ):
            published.append(await publish(acme, topic, {"topic": topic}))
        member = (await acme.data(ADD_MEMBER, {"email": "live@acme.io"}))["addTenantMember"]

        wanted = {"orders.created", "audit", "audit.login.failed", "orders.paid"}
        matching = [e for e in published if e["topic"] in wanted]
        assert await some.until(matching[-1]["id"]) == matching
        seen = await every.take(len(published) + 1)
        assert seen[:-1] == published
        domain = seen[-1]
        assert (domain["topic"], domain["source"]) == ("tenant.member.added", "tenant-service")
        assert domain["payload"]["memberId"] == member["id"]
        assert domain["key"] == member["id"]
        # the domain event did not match the first subscription: nothing more came
        last = await publish(acme, "orders.shipped")
        assert await some.next() == last
        assert await every.next() == last
        assert some.pending() == every.pending() == []
    # the server stopped listening when the client went away
    await _not_listening(gateway, acme)


async def test_after_replays_then_continues_live_with_no_gap_and_no_duplicate(gateway, monkeypatch):
    acme = gateway.acme
    early = [await publish(acme, "load.early", {"n": i}) for i in range(5)]
    after = early[1]["id"]
    # Hold the first replay until events have been committed while the subscription already
    # listened: they are then both in its replay and in its live feed (the seam), every time.
    replaying, go_on = asyncio.Event(), asyncio.Event()
    read = TenantStream.read

    def gated_read(stream: TenantStream, up_to: int | None = None):
        async def chunks():
            if up_to is None and not replaying.is_set():
                replaying.set()
                await go_on.wait()
            async for view in read(stream, up_to):
                yield view

        return chunks()

    monkeypatch.setattr(TenantStream, "read", gated_read)
    count = 0

    async def publish_meanwhile() -> str:
        nonlocal count
        last = ""
        while count < 50:
            topic = "load.tick" if count % 3 else "load.tock"
            last = (await publish(acme, topic, {"n": count}))["id"]
            count += 1
        return last

    publisher = asyncio.create_task(publish_meanwhile())
    try:
        await wait_until(lambda: count >= 5, deadline=DEADLINE)
        async with (
            subscribed(gateway, acme, ["#"], after=after, live=False) as every,
            subscribed(gateway, acme, ["load.tick"], after=after, live=False) as ticks,
        ):
            await asyncio.wait_for(replaying.wait(), DEADLINE)
            seam = count
            await wait_until(lambda: count >= seam + 5, deadline=DEADLINE)
            go_on.set()
            last = await asyncio.wait_for(publisher, 30)
            received = await every.until(last, deadline=10)
            expected = await all_events(acme, after=after)

            assert count == 50
            assert ids(received) == ids(expected)  # no gap, no duplicate, in order
            assert received == expected
            assert ids(expected[:3]) == ids(early[2:])
            tick_ids = [e["id"] for e in expected if e["topic"] == "load.tick"]
            assert ids(await ticks.until(tick_ids[-1], deadline=10)) == tick_ids
            assert every.pending() == ticks.pending() == []
    finally:
        go_on.set()
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)


async def test_a_subscriber_that_falls_behind_reads_the_missed_events_back(gateway, monkeypatch):
    acme = gateway.acme
    broadcast = gateway.runtime.broadcast
    listen = broadcast.listen
    listeners: list[Listener] = []

    @asynccontextmanager
    async def small_buffers(channel: str, *, capacity: int = 1000):
        async with listen(channel, capacity=min(capacity, 3)) as listener:
            listeners.append(listener)
            yield listener

    monkeypatch.setattr(broadcast, "listen", small_buffers)
    async with subscribed(gateway, acme, ["bulk.#"]) as sub:
        # 100 events committed (and announced) at once: the subscriber's buffer of 3 keeps the
        # newest and drops the rest, which the subscription reads back from the stream
        drafts = tuple(
            EventDraft(topic="bulk.odd" if i % 2 else "bulk.even", payload={"i": i})
            for i in range(100)
        )
        views = await gateway.runtime.ask(
            PublishEvents(tenant_id=acme.tenant_id, source="test-suite", events=drafts)
        )
        received = await sub.until(views[-1].id)

        assert sum(listener.dropped for listener in listeners) >= 90
        assert [e["payload"]["i"] for e in received] == list(range(100))
        assert ids(received) == [v.id for v in views]
        assert {e["source"] for e in received} == {"test-suite"}
        nxt = await publish(acme, "bulk.more")
        assert await sub.next() == nxt
        assert sub.pending() == []


async def test_subscriptions_refuse_bad_arguments_and_the_socket_stays_usable(gateway):
    acme = gateway.acme
    theirs = await publish(gateway.globex, "orders.created")
    async with ws_client(gateway, {"authorization": f"Bearer {acme.key}"}) as session:
        cases = [
            (["#"], "evt_unknown", "NOT_FOUND"),  # unknown, or no longer kept
            (["#"], theirs["id"], "NOT_FOUND"),  # another tenant's event is unknown here
            (["orders.#.x"], None, "INVALID_INPUT"),
            (["orders*"], None, "INVALID_INPUT"),
            ([], None, "INVALID_INPUT"),
            ([f"t{i}" for i in range(21)], None, "INVALID_INPUT"),
        ]
        for topics, after, expected in cases:
            sub = Subscription(session, topics, after)
            sub.start()
            try:
                with pytest.raises(TransportQueryError) as raised:
                    await sub.next()
            finally:
                await sub.stop()
            (error,) = raised.value.errors or []
            assert error["extensions"]["code"] == expected, (topics, after, error)
            if after is None:
                assert error["extensions"]["field"].startswith("topics"), error
        await _not_listening(gateway, acme)

        # the same socket still carries a good subscription
        sub = Subscription(session, ["orders.*"], None)
        sub.start()
        try:
            await _listening(gateway, acme)
            event = await publish(acme, "orders.created")
            assert await sub.next() == event
        finally:
            await sub.stop()


async def test_connection_init_without_a_valid_key_is_refused_with_4403(gateway):
    admin = await gateway.key_for(gateway.acme, "admin", "ws@acme.io")
    keys = await admin.data("{ apiKeys { edges { node { id name } } } }")
    key_id = next(e["node"]["id"] for e in keys["apiKeys"]["edges"] if e["node"]["name"] == "admin")
    await gateway.acme.data(REVOKE_KEY, {"id": key_id})

    for init_payload in (
        {},
        {"authorization": "Bearer sx_not_a_key"},
        {"authorization": f"Basic {gateway.acme.key}"},
        {"authorization": f"Bearer {admin.key}"},  # revoked
    ):
        with pytest.raises(TransportConnectionFailed) as raised:
            async with ws_client(gateway, init_payload) as session:
                await Subscription(session, ["#"], None).next()
        assert close_code(raised.value) == 4403, init_payload
    assert not listening(gateway, gateway.acme)


async def test_two_subscribers_get_the_same_events(gateway):
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    mark = (await all_events(gateway.acme))[-1]["id"]

    async with (
        subscribed(gateway, gateway.acme, ["#"]) as owners,
        # viewers may subscribe too; this one replays from `mark`, so it need not be live first
        subscribed(gateway, viewer, ["#"], after=mark, live=False) as viewers,
    ):
        published = [await publish(gateway.acme, f"fan.out{i % 3}", {"i": i}) for i in range(12)]

        assert await owners.until(published[-1]["id"]) == published
        assert await viewers.until(published[-1]["id"]) == published


async def test_a_subscriber_sees_nothing_of_another_tenant(gateway):
    acme, globex = gateway.acme, gateway.globex
    async with (
        subscribed(gateway, globex, ["#"]) as theirs,
        subscribed(gateway, acme, ["#"]) as ours,
    ):
        secret = [await publish(acme, "orders.created", {"secret": i}) for i in range(5)]
        assert await ours.until(secret[-1]["id"]) == secret
        own = await publish(globex, "orders.created", {"globex": True})

        # globex's own event is the first and only thing its subscriber gets, and acme's
        # subscriber goes on with acme's next event
        assert await theirs.next() == own
        after = await publish(acme, "orders.paid")
        assert await ours.next() == after
        assert theirs.pending() == []
        assert ours.pending() == []


async def _listening(gateway, caller) -> None:
    await wait_until(lambda: listening(gateway, caller), deadline=DEADLINE)


async def _not_listening(gateway, caller) -> None:
    await wait_until(lambda: not listening(gateway, caller), deadline=DEADLINE)
