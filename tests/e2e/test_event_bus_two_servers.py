"""Two ``synapsex serve`` processes on one PostgreSQL database behave as one event bus.

Two real servers, A and B, run on the same ``DATABASE_URL`` (migrated first), with one tenant
whose key works on both:

* live delivery crosses processes: a ``graphql-transport-ws`` subscriber on B receives the
  events published through A's HTTP endpoint, exactly once each and in publish order, within
  milliseconds (``LISTEN``/``NOTIFY``, not the once-a-second fallback look at the stream);
  and a ``claimEvents`` long poll waiting on B wakes when an event is published through A;
* claims never lease an event twice: 4 claimers per process claim and ack a consumer group's
  events while they are published through both processes; every event is claimed exactly
  once (the 30 s lease outlives the test, so a second claim could only be a double lease),
  every ack finds its lease current, events sharing a key are leased one at a time in publish
  order, and the group ends with everything acked.

Each test stops both servers with SIGTERM (killing them if that fails) and checks that neither
logged an error.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

from synapsex.runtime.testing import wait_until

from .support import GraphQL, Server, bootstrap, run_cli

pytestmark = pytest.mark.postgres

#: how long a test waits for something that should happen at once
DEADLINE = 5.0

PUBLISH = """mutation($input: PublishEventInput!) {
  publishEvent(input: $input) { id topic payload key }
}"""
CREATE_GROUP = """mutation($input: CreateConsumerGroupInput!) {
  createConsumerGroup(input: $input) { name visibilityTimeoutSeconds }
}"""
CLAIM = """mutation($input: ClaimEventsInput!) {
  claimEvents(input: $input) { state attempt leaseId event { id topic key } }
}"""
ACK_MANY = "mutation($input: AckEventsInput!) { ackEvents(input: $input) { acked stale } }"
COUNTS = "query($name: String!) { consumerGroup(name: $name) { pending leased acked deadLetter } }"
EVENTS = """query($topic: String, $after: String) {
  events(topic: $topic, first: 100, after: $after) {
    edges { node { id key } }
    pageInfo { hasNextPage endCursor }
  }
}"""
VERIFY_AUDIT = "query { verifyAuditChain { ok checked firstBrokenId } }"
SUBSCRIBE = "subscription($topics: [String!]!) { events(topics: $topics) { id topic payload } }"

EVENT_BUS_HANDLED = re.compile(
    r'^synapsex_actor_handled_total\{service="event-bus-service"\} (\d+)$', re.MULTILINE
)


# ------------------------------------------------------------------------------ two servers


@dataclass
class Node:
    """One server with a GraphQL client on it."""

    name: str
    server: Server
    gql: GraphQL

    @property
    def ws_url(self) -> str:
        return self.server.url.replace("http", "ws", 1)

    @property
    def metrics_url(self) -> str:
        return self.server.url.rsplit("/", 1)[0] + "/metrics"


@dataclass
class Cluster:
    a: Node
    b: Node
    key: str
    session: aiohttp.ClientSession


def listening_for_commits(server: Server) -> bool:
    """Whether the server's ``LISTEN`` connection is up (it logs so once connected)."""
    return any(line.get("event") == "listening for committed events" for line in server.log)


@asynccontextmanager
async def two_servers(tmp_path: Path, pg_url: str, tenant: str) -> AsyncIterator[Cluster]:
    """``synapsex migrate``, then servers A and B on the same database and one tenant. On
    the way out both get SIGTERM (and are killed if that fails); when the body succeeded,
    both must have exited 0 without logging an error."""
    env = {"DATABASE_URL": pg_url}
    await run_cli(tmp_path, "migrate", env=env)
    servers = [Server(tmp_path, env), Server(tmp_path, env)]
    statuses: list[int | None] = [None, None]
    try:
        # both at the same moment, as a deployment starts them: creating the runtime's
        # bookkeeping tables must not collide
        await asyncio.gather(*(server.start() for server in servers))
        key = await bootstrap(tmp_path, tenant, env)
        for server in servers:
            await wait_until(
                lambda server=server: listening_for_commits(server),
                deadline=DEADLINE,
                message=f"no LISTEN connection: {server.log}",
            )
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            a, b = (
                Node(name, server, GraphQL(session, server.url, key))
                for name, server in zip("AB", servers, strict=True)
            )
            yield Cluster(a, b, key, session)
    finally:
        for i, server in enumerate(servers):
            if server.proc is not None and server.proc.returncode is None:
                with suppress(TimeoutError, ProcessLookupError):
                    statuses[i] = await server.stop(timeout=15)
            await server.aclose()  # kills it if SIGTERM did not end it
    # reached only when the body succeeded
    for name, server, status in zip("AB", servers, statuses, strict=True):
        assert status == 0, f"server {name} exited {status} on SIGTERM"
        assert not server.errors(), f"server {name} logged errors: {server.errors()}"


async def publish(node: Node, topic: str, payload: Any, key: str | None = None) -> dict:
    data = await node.gql(PUBLISH, input={"topic": topic, "payload": payload, "key": key})
    return data["publishEvent"]


async def group_counts(node: Node, group: str) -> dict[str, int]:
    return (await node.gql(COUNTS, name=group))["consumerGroup"]


async def event_bus_handled(cluster: Cluster, node: Node) -> int:
    """How many messages the server's event-bus actor has handled (its ``/metrics``)."""
    async with cluster.session.get(node.metrics_url) as response:
        text = await response.text()
    match = EVENT_BUS_HANDLED.search(text)
    assert match, text
    return int(match.group(1))


async def handled_at_least(cluster: Cluster, node: Node, count: int) -> bool:
    return await event_bus_handled(cluster, node) >= count


# ------------------------------------------------------------------------------ subscriptions


class LiveEvents:
    """One ``events`` subscription over graphql-transport-ws, read by a task of its own into
    a queue of ``(arrival time, event)``."""

    def __init__(self, session: Any, topics: list[str]) -> None:
        self._request = gql(SUBSCRIBE)
        self._request.variable_values = {"topics": topics}
        self._session = session
        self._items: asyncio.Queue[tuple[float, dict] | BaseException] = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with aclosing(self._session.subscribe(self._request)) as stream:
                async for item in stream:
                    self._items.put_nowait((loop.time(), item["events"]))
        except Exception as exc:  # handed to the reader
            self._items.put_nowait(exc)

    async def next(self, deadline: float = DEADLINE) -> tuple[float, dict]:
        item = await asyncio.wait_for(self._items.get(), deadline)
        if isinstance(item, BaseException):
            raise item
        return item

    async def stop(self) -> None:
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task


@asynccontextmanager
async def subscribed(cluster: Cluster, node: Node, topics: list[str]) -> AsyncIterator[LiveEvents]:
    transport = WebsocketsTransport(
        url=node.ws_url,
        init_payload={"authorization": f"Bearer {cluster.key}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        close_timeout=2,
    )
    async with Client(transport=transport) as session:
        live = LiveEvents(session, topics)
        try:
            yield live
        finally:
            await live.stop()


# ------------------------------------------------------------------------------ live delivery

LIVE_EVENTS = 20
#: the product's fallback without NOTIFY looks at the stream heads once a second (and a
#: waiting claim looks again every 0.5 s): a median well under that shows NOTIFY carried them
NOTIFY_MEDIAN_LATENCY = 0.25
WAKE_LATENCY = 3.0
WAIT_SECONDS = 10


async def test_events_published_through_a_reach_subscribers_and_waiting_claims_on_b(
    tmp_path, pg_url
):
    loop = asyncio.get_running_loop()
    async with two_servers(tmp_path, pg_url, "Live") as cluster:
        a, b = cluster.a, cluster.b

        # ---------------------------------------------------------- subscriber on B
        async with subscribed(cluster, b, ["#"]) as live:
            # live once it receives what is published next on its own server
            probe = await publish(b, "probe.b", {"probe": True})
            _, first = await live.next()
            assert first["id"] == probe["id"], first

            sent: list[tuple[float, str]] = []
            for i in range(LIVE_EVENTS):
                before = loop.time()
                event = await publish(a, f"live.{i % 3}", {"i": i})
                sent.append((before, event["id"]))
            received = [await live.next() for _ in range(LIVE_EVENTS)]
            # nothing more (no duplicate, nothing else): the next thing is an end marker
            end = await publish(a, "live.end", None)
            _, last = await live.next()
            assert last["id"] == end["id"], last

        assert [e["id"] for _, e in received] == [event_id for _, event_id in sent]
        assert [e["payload"] for _, e in received] == [{"i": i} for i in range(LIVE_EVENTS)]
        assert [e["topic"] for _, e in received] == [f"live.{i % 3}" for i in range(LIVE_EVENTS)]
        latencies = [at - before for (at, _), (before, _) in zip(received, sent, strict=True)]
        median = statistics.median(latencies)
        print(
            f"\nA -> subscriber on B: {LIVE_EVENTS} events, latency from publish sent: "
            f"median {median * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
        )
        assert max(latencies) < DEADLINE, latencies
        assert median < NOTIFY_MEDIAN_LATENCY, latencies

        # ---------------------------------------------------------- a claim waiting on B
        await a.gql(CREATE_GROUP, input={"name": "waiters", "topics": ["wake.#"]})
        handled = await event_bus_handled(cluster, b)
        started = loop.time()

        async def claim_waiting() -> tuple[list[dict], float]:
            request = {"group": "waiters", "limit": 10, "waitSeconds": WAIT_SECONDS}
            data = await b.gql(CLAIM, input=request)
            return data["claimEvents"], loop.time()

        claim = asyncio.create_task(claim_waiting())
        try:
            # the claim is waiting once B's event bus has handled three more messages: its
            # first (empty) claim, the second it makes after listening for the tenant's events,
            # and one more (a poll, or at most one maintenance tick in under a second)
            await wait_until(
                lambda: handled_at_least(cluster, b, handled + 3),
                deadline=DEADLINE,
                message="the claim on B never waited",
            )
            assert not claim.done(), claim
            before = loop.time()
            woken = await publish(a, "wake.up", {"from": "A"})
            published = loop.time()
            claimed, returned = await asyncio.wait_for(claim, WAIT_SECONDS + DEADLINE)
        finally:
            claim.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await claim
        assert [(d["state"], d["attempt"], d["event"]["id"]) for d in claimed] == [
            ("LEASED", 1, woken["id"])
        ]
        print(
            f"claim waiting on B ({before - started:.2f} s in) returned "
            f"{(returned - before) * 1000:.1f} ms after the publish through A was sent "
            f"(the publish took {(published - before) * 1000:.1f} ms)"
        )
        assert returned - before < WAKE_LATENCY
        result = await b.gql(
            ACK_MANY,
            input={
                "group": "waiters",
                "leases": [{"eventId": woken["id"], "leaseId": claimed[0]["leaseId"]}],
            },
        )
        assert result["ackEvents"] == {"acked": [woken["id"]], "stale": []}


# ------------------------------------------------------------------------------ no double lease

GROUP = "scale-out"
KEYS = [f"k{i}" for i in range(8)]
PER_KEY = 25  # 200 keyed events
PLAIN_PUBLISHERS = 4
PER_PLAIN_PUBLISHER = 50  # 200 events without a key
TOTAL = len(KEYS) * PER_KEY + PLAIN_PUBLISHERS * PER_PLAIN_PUBLISHER
CLAIMERS_PER_SERVER = 4
CLAIM_LIMIT = 10
VISIBILITY_SECONDS = 30
#: claimers long-poll briefly (woken by NOTIFY when something is published anywhere)
CLAIM_WAIT_SECONDS = 0.5
DRAIN_DEADLINE = 30.0


@dataclass
class Claimed:
    order: int  # when the claim's answer was read, among all claims and acks
    event_id: str
    lease_id: str
    attempt: int
    key: str | None
    node: str
    claimer: int


@dataclass
class Ledger:
    published_by_key: dict[str | None, list[str]] = field(default_factory=lambda: defaultdict(list))
    published_through: Counter[str] = field(default_factory=Counter)
    claims: list[Claimed] = field(default_factory=list)
    #: event id -> when its ack was sent (same clock as ``Claimed.order``)
    ack_sent: dict[str, int] = field(default_factory=dict)
    claim_calls: Counter[str] = field(default_factory=Counter)
    empty_claims: int = 0
    ack_calls: int = 0
    clock: itertools.count = field(default_factory=itertools.count)
    publishing_done: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def published(self) -> list[str]:
        return [e for ids in self.published_by_key.values() for e in ids]


async def publish_keyed(nodes: tuple[Node, Node], ledger: Ledger, n: int, key: str) -> None:
    """One key's events one after another (so their publish order is known), alternating
    between the servers."""
    for i in range(PER_KEY):
        node = nodes[(n + i) % 2]
        event = await publish(node, f"load.keyed.{key}", {"key": key, "i": i}, key=key)
        ledger.published_by_key[key].append(event["id"])
        ledger.published_through[node.name] += 1


async def publish_plain(nodes: tuple[Node, Node], ledger: Ledger, n: int) -> None:
    for i in range(PER_PLAIN_PUBLISHER):
        node = nodes[(n + i) % 2]
        event = await publish(node, "load.plain", {"publisher": n, "i": i})
        ledger.published_by_key[None].append(event["id"])
        ledger.published_through[node.name] += 1


async def claimer(node: Node, n: int, ledger: Ledger) -> None:
    """Claim and ack until the group shows everything published acked."""
    while not ledger.drained.is_set():
        data = await node.gql(
            CLAIM,
            input={
                "group": GROUP,
                "limit": CLAIM_LIMIT,
                "visibilityTimeoutSeconds": VISIBILITY_SECONDS,
                "waitSeconds": CLAIM_WAIT_SECONDS,
            },
        )
        ledger.claim_calls[node.name] += 1
        deliveries = data["claimEvents"]
        if not deliveries:
            ledger.empty_claims += 1
            if ledger.publishing_done and await group_counts(node, GROUP) == {
                "pending": 0,
                "leased": 0,
                "acked": TOTAL,
                "deadLetter": 0,
            }:
                ledger.drained.set()
            continue
        order = next(ledger.clock)
        for d in deliveries:
            assert d["state"] == "LEASED", d
            ledger.claims.append(
                Claimed(
                    order=order,
                    event_id=d["event"]["id"],
                    lease_id=d["leaseId"],
                    attempt=d["attempt"],
                    key=d["event"]["key"],
                    node=node.name,
                    claimer=n,
                )
            )
        ids = [d["event"]["id"] for d in deliveries]
        sent = next(ledger.clock)
        ledger.ack_sent.update(dict.fromkeys(ids, sent))
        data = await node.gql(
            ACK_MANY,
            input={
                "group": GROUP,
                "leases": [
                    {"eventId": d["event"]["id"], "leaseId": d["leaseId"]} for d in deliveries
                ],
            },
        )
        ledger.ack_calls += 1
        result = data["ackEvents"]
        assert result == {"acked": ids, "stale": []}, (node.name, n, ids, result)


async def stream_order(node: Node) -> list[dict]:
    """The group's events in commit order, as the ``events`` query lists them."""
    out: list[dict] = []
    after = None
    while True:
        page = (await node.gql(EVENTS, topic="load.#", after=after))["events"]
        out += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return out
        after = page["pageInfo"]["endCursor"]


async def test_claimers_on_two_servers_never_lease_an_event_twice(tmp_path, pg_url):
    loop = asyncio.get_running_loop()
    ledger = Ledger()
    async with two_servers(tmp_path, pg_url, "ScaleOut") as cluster:
        a, b = cluster.a, cluster.b
        created = await a.gql(
            CREATE_GROUP,
            input={
                "name": GROUP,
                "topics": ["load.#"],
                "visibilityTimeoutSeconds": VISIBILITY_SECONDS,
            },
        )
        assert created["createConsumerGroup"]["visibilityTimeoutSeconds"] == VISIBILITY_SECONDS

        started = loop.time()
        claimers = [
            asyncio.create_task(claimer(node, n, ledger))
            for node in (a, b)
            for n in range(CLAIMERS_PER_SERVER)
        ]
        publishers = [
            asyncio.create_task(publish_keyed((a, b), ledger, n, key)) for n, key in enumerate(KEYS)
        ]
        publishers += [
            asyncio.create_task(publish_plain((a, b), ledger, n)) for n in range(PLAIN_PUBLISHERS)
        ]
        try:
            await asyncio.wait_for(asyncio.gather(*publishers), DRAIN_DEADLINE)
            published_in = loop.time() - started
            ledger.publishing_done = True
            # the claimers end once one of them sees everything acked; a claimer's failed
            # assertion fails the test here at once
            remaining = DRAIN_DEADLINE - (loop.time() - started)
            try:
                await asyncio.wait_for(asyncio.gather(*claimers), remaining)
            except TimeoutError:
                raise AssertionError(
                    f"not drained within {DRAIN_DEADLINE}s: {len(ledger.claims)} claimed, "
                    f"counts {await group_counts(a, GROUP)}"
                ) from None
            drained_in = loop.time() - started
        finally:
            for task in [*claimers, *publishers]:
                task.cancel()
            await asyncio.gather(*claimers, *publishers, return_exceptions=True)

        published = ledger.published
        assert len(published) == len(set(published)) == TOTAL
        assert ledger.published_through == {"A": TOTAL // 2, "B": TOTAL // 2}

        # every event delivered exactly once, on its first attempt: with a 30 s lease, a
        # second claim of an event would be a double lease
        times = Counter(c.event_id for c in ledger.claims)
        twice = {event_id: n for event_id, n in times.items() if n > 1}
        assert not twice, f"{len(twice)} events claimed more than once: {list(twice.items())[:5]}"
        assert set(times) == set(published)
        assert {c.attempt for c in ledger.claims} == {1}

        # both servers handed out deliveries
        by_node = Counter(c.node for c in ledger.claims)
        assert by_node["A"] > 0, by_node
        assert by_node["B"] > 0, by_node

        # publish order is the stream's commit order, whichever server published
        stream = await stream_order(b)
        assert len(stream) == TOTAL
        for key in KEYS:
            assert [e["id"] for e in stream if e["key"] == key] == ledger.published_by_key[key]

        # events sharing a key: claimed in publish order, one at a time (each claimed only
        # after the ack of the one before it was sent)
        claimed_by_key: dict[str, list[Claimed]] = defaultdict(list)
        for c in sorted(ledger.claims, key=lambda c: c.order):
            if c.key is not None:
                claimed_by_key[c.key].append(c)
        for key in KEYS:
            claims = claimed_by_key[key]
            assert [c.event_id for c in claims] == ledger.published_by_key[key], key
            for before, after in itertools.pairwise(claims):
                assert after.order > ledger.ack_sent[before.event_id], (key, before, after)

        # the group, seen from either server, ends with everything acked
        for node in (a, b):
            assert await group_counts(node, GROUP) == {
                "pending": 0,
                "leased": 0,
                "acked": TOTAL,
                "deadLetter": 0,
            }
        # every mutation above was audited by one of the two processes into one chain
        audit = (await a.gql(VERIFY_AUDIT))["verifyAuditChain"]
        assert audit["ok"], audit

        by_claimer = Counter((c.node, c.claimer) for c in ledger.claims)
        print(
            f"\n{TOTAL} events published through A and B in {published_in:.2f} s, all acked "
            f"after {drained_in:.2f} s; deliveries by server {dict(sorted(by_node.items()))}, "
            f"by claimer {sorted(by_claimer.values())}; claims "
            f"{dict(sorted(ledger.claim_calls.items()))} ({ledger.empty_claims} empty), "
            f"{ledger.ack_calls} ackEvents; audit chain of {audit['checked']} records intact"
        )
