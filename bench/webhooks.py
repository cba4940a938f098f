"""Webhook deliveries per second through webhook-service against plain aiohttp POSTs.

The receiver: a local aiohttp server on ``127.0.0.1`` (port 0) that reads each request's body
and answers ``200`` at once, counting requests in shared memory. It runs in a process of its
own (``multiprocessing``, spawn), so its work is not charged to either side's event loop, and
every side posts to the same server.

For each engine: ``Runtime.embedded(services=["event-bus-service", "webhook-service"])``
(SQLite files in a temporary folder; PostgreSQL in a fresh ``sx_bench_<hex>`` database dropped
at the end), with ``SYNAPSEX_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true`` so loopback may be reached.
Three sides make N deliveries each per round:

* ``service`` (the budgeted one): deliveries of a backlog. Untimed, a fresh tenant's webhook
  consumer group (:func:`~synapsex.actors.webhook.actor.intake_group`) is made and N events are
  published into it (``PublishEvents``, 100 per ask), before the tenant has any subscription.
  Timed: ``CreateWebhookSubscription`` to the receiver for ``bench.#``, until the receiver has
  counted N more requests **and** the service has recorded every delivery
  (``ListWebhookDeliveries`` with ``status`` ``pending`` and ``sending`` both empty, polled every
  few milliseconds once the receiver has them all; none ``failed``). Inside the time: the
  intake's claims from the event bus, the delivery rows, leasing, signing, the POSTs, recording
  the results, and the acks.
* ``end_to_end`` (reported, not budgeted): the same, but the events are published inside the
  timed part, back to back, to a tenant subscribed once: the publisher's work (the event bus
  writing each event and its consumer-group row) shares the process and is counted too.
* ``plain``: the same N deliveries as a bare client would send them: an event body built as
  the service builds it (:func:`synapsex.actors.webhook.actor.event_body`), Standard Webhooks
  headers from :func:`synapsex.actors.webhook.signing.webhook_headers` (HMAC signing
  included), one ``aiohttp.ClientSession`` (default connector), 64 POSTs in flight, each
  response's body read. No database, no runtime.

Deliveries per second = N / elapsed. The sides' order rotates every round after an untimed
warm-up of each, so machine noise hits them alike.

Reading the ratio: ``ratio`` is service deliveries/s ÷ plain deliveries/s over all rounds
(higher is better; 1.0 = the service delivers as fast as a bare client posts, 0.5 = a delivery
through the service takes twice a bare POST's share of time); ``end_to_end_ratio`` likewise.
``ratio_median_round`` is the median of the per-round ratios, which a burst of load from other
processes moves less. ``<side>_cpu_share``: this process's CPU time (every thread, so
aiosqlite's too) over the side's wall time; well below 1 means the side spent its time waiting
(on a database round trip or the receiver), not computing.

Budget (``budget.met``), from the issue ("at least 0.5 of the plain client's rate"): ``ratio``
at least 0.5 on every engine measured.

PostgreSQL comes from ``SYNAPSEX_BENCH_DATABASE_URL`` or ``SYNAPSEX_TEST_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``); when unreachable its section is
``{"skipped": reason}``. Prints one JSON line on stdout; logs go to stderr. Run:
``.venv/bin/python bench/webhooks.py``.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from scratch_postgres import PostgresUnavailable, scratch_postgres

from synapsex.actors.webhook.actor import USER_AGENT, event_body, intake_group
from synapsex.actors.webhook.signing import new_secret, webhook_headers
from synapsex.config import configure_logging
from synapsex.contracts.events import EventDraft, PublishEvents
from synapsex.contracts.webhooks import CreateWebhookSubscription, ListWebhookDeliveries
from synapsex.runtime import Runtime, new_id

ROUNDS = 6  # rounds; the sides' order rotates each round, so each goes first as often
PER_ROUND = 2_000  # deliveries per side and round
WARMUP = 200  # untimed deliveries per side before the rounds
BATCH = 100  # events per PublishEvents
CONCURRENCY = 64  # the plain client's POSTs in flight
TOPIC = "bench.order.created"
PATTERNS = ("bench.#",)
SOURCE = "bench"
WAIT_S = 60.0  # a round not done in this long fails the run
POLL_S = 0.002  # how often the receiver's count and then the service's records are checked
BUDGET_RATIO_MIN = 0.5


def log(text: str) -> None:
    print(f"[webhooks bench] {text}", file=sys.stderr, flush=True)


def payload(i: int) -> dict[str, Any]:
    return {"order": i, "status": "created", "total_cents": 1999 + i, "note": "x" * 48}


# ---------------------------------------------------------------------------- the receiver


def _receiver_main(count: ctypes.c_int64, conn: Connection) -> None:
    """The receiver process: answer every request 200 once its body is read, and count it."""

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        count.value += 1  # one writer (this loop): no lock needed
        return web.Response(status=200)

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        conn.send(runner.addresses[0][1])
        await asyncio.Event().wait()  # until terminated

    asyncio.run(serve())


class Receiver:
    """The receiver process's URL and its request count."""

    def __init__(self, url: str, count: ctypes.c_int64) -> None:
        self.url = url
        self._count = count

    @property
    def count(self) -> int:
        return self._count.value

    async def wait_for(self, target: int, deadline: float) -> None:
        while self._count.value < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"receiver has {self._count.value} requests, not {target}")
            await asyncio.sleep(POLL_S)


@contextmanager
def receiver() -> Iterator[Receiver]:
    ctx = multiprocessing.get_context("spawn")
    count = ctx.Value("q", 0, lock=False)
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_receiver_main, args=(count, child), daemon=True)
    proc.start()
    try:
        deadline = time.monotonic() + 30
        while not parent.poll(0.05):
            if not proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start")
        port = parent.recv()
        yield Receiver(f"http://127.0.0.1:{port}/hooks", count)
    finally:
        proc.terminate()
        proc.join(5)


# ---------------------------------------------------------------------------- the sides


class Side:
    """One way of making N deliveries: :meth:`prepare` (untimed), then :meth:`deliver` (timed)."""

    async def prepare(self, n: int) -> None:
        self.n = n

    async def deliver(self) -> None:
        raise NotImplementedError


class ServiceBase(Side):
    def __init__(self, rt: Runtime, rcv: Receiver) -> None:
        self.rt = rt
        self.rcv = rcv
        self.seq = 0

    def drafts(self, n: int) -> Iterator[tuple[EventDraft, ...]]:
        for start in range(0, n, BATCH):
            count = min(BATCH, n - start)
            yield tuple(
                EventDraft(topic=TOPIC, payload=payload(self.seq + i)) for i in range(count)
            )
            self.seq += count

    async def publish(self, tenant: str, n: int) -> None:
        for events in self.drafts(n):
            await self.rt.ask(PublishEvents(tenant_id=tenant, source=SOURCE, events=events))

    async def subscribe(self, tenant: str) -> str:
        created = await self.rt.ask(
            CreateWebhookSubscription(tenant_id=tenant, url=self.rcv.url, event_types=PATTERNS)
        )
        return created.subscription.id

    async def finish(self, tenant: str, subscription: str, target: int, deadline: float) -> None:
        """Wait until the receiver has ``target`` requests and the service has recorded every
        delivery (none pending, none sending, none failed)."""

        async def unfinished(status: Any) -> bool:
            page = await self.rt.ask(
                ListWebhookDeliveries(
                    tenant_id=tenant, subscription_id=subscription, status=status, first=1
                )
            )
            return bool(page.items)

        await self.rcv.wait_for(target, deadline)
        while await unfinished("pending") or await unfinished("sending"):
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not record every delivery in time")
            await asyncio.sleep(POLL_S)
        if await unfinished("failed"):
            raise RuntimeError("a delivery failed")
        if self.rcv.count != target:
            raise RuntimeError(f"the receiver got {self.rcv.count - target} requests too many")


class ServiceDrain(ServiceBase):
    """Through the service, from a backlog: N events wait in a fresh tenant's webhook consumer
    group (published untimed, before any subscription); the timed part creates the
    subscription and ends when all N are delivered and recorded."""

    async def prepare(self, n: int) -> None:
        await super().prepare(n)
        self.tenant = new_id("ten")
        await self.rt.ask(intake_group(self.tenant))
        await self.publish(self.tenant, n)

    async def deliver(self) -> None:
        target = self.rcv.count + self.n
        deadline = time.monotonic() + WAIT_S
        subscription = await self.subscribe(self.tenant)
        await self.finish(self.tenant, subscription, target, deadline)


class ServiceEndToEnd(ServiceBase):
    """Through the service, events published in the timed part (100 per ``PublishEvents``,
    back to back) to a tenant subscribed once: the publisher's cost is counted too."""

    async def prepare(self, n: int) -> None:
        await super().prepare(n)
        if not hasattr(self, "tenant"):
            self.tenant = new_id("ten")
            self.subscription = await self.subscribe(self.tenant)

    async def deliver(self) -> None:
        target = self.rcv.count + self.n
        deadline = time.monotonic() + WAIT_S
        await self.publish(self.tenant, self.n)
        await self.finish(self.tenant, self.subscription, target, deadline)


class Plain(Side):
    """A bare aiohttp client: body, signature, POST, 64 in flight."""

    def __init__(self, session: aiohttp.ClientSession, rcv: Receiver) -> None:
        self.session = session
        self.rcv = rcv
        self.secret = new_secret()
        self.seq = 0

    async def post_one(self, i: int) -> None:
        event_id = new_id("evt")
        body = event_body(event_id, TOPIC, datetime.now(UTC), payload(i)).encode()
        headers = webhook_headers((self.secret,), event_id, int(time.time()), body, USER_AGENT)
        async with self.session.post(self.rcv.url, data=body, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"receiver answered {response.status}")

    async def deliver(self) -> None:
        first, self.seq = self.seq, self.seq + self.n
        todo = iter(range(first, first + self.n))

        async def worker() -> None:
            for i in todo:
                await self.post_one(i)

        await asyncio.gather(*(worker() for _ in range(min(CONCURRENCY, self.n))))


async def measure(rt: Runtime, rcv: Receiver) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        sides: dict[str, Side] = {
            "service": ServiceDrain(rt, rcv),
            "plain": Plain(session, rcv),
            "end_to_end": ServiceEndToEnd(rt, rcv),
        }
        for side in sides.values():
            await side.prepare(WARMUP)
            await side.deliver()
        wall = dict.fromkeys(sides, 0)
        cpu = dict.fromkeys(sides, 0.0)
        per_round: list[dict[str, float]] = []
        names = list(sides)
        for r in range(ROUNDS):
            dps: dict[str, float] = {}
            for name in names[r % len(names) :] + names[: r % len(names)]:
                await sides[name].prepare(PER_ROUND)
                c0, t0 = time.process_time(), time.perf_counter_ns()
                await sides[name].deliver()
                elapsed = time.perf_counter_ns() - t0
                cpu[name] += time.process_time() - c0
                wall[name] += elapsed
                dps[name] = PER_ROUND / (elapsed / 1e9)
            log(f"round {r + 1}: " + ", ".join(f"{k} {v:.0f}/s" for k, v in dps.items()))
            per_round.append(dps)
    rate = {name: ROUNDS * PER_ROUND / (wall[name] / 1e9) for name in sides}
    return {
        "deliveries_per_side": ROUNDS * PER_ROUND,
        "service_dps": round(rate["service"], 1),
        "plain_dps": round(rate["plain"], 1),
        "ratio": round(rate["service"] / rate["plain"], 3),
        "ratio_median_round": round(
            statistics.median(d["service"] / d["plain"] for d in per_round), 3
        ),
        "end_to_end_dps": round(rate["end_to_end"], 1),
        "end_to_end_ratio": round(rate["end_to_end"] / rate["plain"], 3),
        **{f"{name}_cpu_share": round(cpu[name] / (wall[name] / 1e9), 2) for name in sides},
        "rounds": [{k: round(v, 1) for k, v in d.items()} for d in per_round],
    }


# ---------------------------------------------------------------------------- engines

ENVIRON = {"SYNAPSEX_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}
SERVICES = ["event-bus-service", "webhook-service"]


async def bench_sqlite(tmp: Path, rcv: Receiver) -> dict[str, Any]:
    async with Runtime.embedded(data_dir=tmp, services=SERVICES, environ=dict(ENVIRON)) as rt:
        return await measure(rt, rcv)


async def bench_postgres(tmp: Path, rcv: Receiver) -> dict[str, Any]:
    try:
        async with scratch_postgres() as db:
            env = {**ENVIRON, "DATABASE_URL": db.url}
            async with Runtime.embedded(data_dir=tmp, services=SERVICES, environ=env) as rt:
                result = await measure(rt, rcv)
            return {"server": db.server_version, **result}
    except PostgresUnavailable as exc:
        return {"skipped": str(exc)}


def budget(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    checked = [engine for engine, section in sections.items() if "skipped" not in section]
    failed = [e for e in checked if sections[e]["ratio"] < BUDGET_RATIO_MIN]
    return {
        "ratio_min": BUDGET_RATIO_MIN,
        "engines": checked,
        "failed": failed,
        "met": bool(checked) and not failed,
    }


async def main() -> dict[str, Any]:
    configure_logging("warning", "json")  # structlog → stderr, and quiet
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sx-bench-") as tmp, receiver() as rcv:
        log("sqlite")
        sqlite = await bench_sqlite(Path(tmp) / "sqlite", rcv)
        log("postgres")
        postgres = await bench_postgres(Path(tmp) / "postgres", rcv)
    return {
        "bench": "webhooks",
        "deliveries_per_round": PER_ROUND,
        "rounds": ROUNDS,
        "concurrency": CONCURRENCY,
        "sqlite": sqlite,
        "postgres": postgres,
        "budget": budget({"sqlite": sqlite, "postgres": postgres}),
        "seconds": round(time.perf_counter() - started, 1),
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    out = asyncio.run(main())
    sys.stdout.write(json.dumps(out) + "\n")
