"""Ask round trips through the runtime (no database) against a bare asyncio actor.

Measures, in one process and one event loop:

* sequential asks: one caller doing ``await ask(Ping(text="x"))`` in a loop, per-ask latency
  taken with ``time.perf_counter_ns`` (message construction included, on both sides);
* 100 concurrent askers: ``asyncio.gather`` of 100 tasks each doing sequential asks; throughput
  (asks/s over the wall time) and per-ask p50/p99.

The baseline is the smallest actor asyncio allows: a bounded ``asyncio.Queue(1000)`` mailbox and
a Future per reply, served by a task doing ``msg, fut = await q.get(); fut.set_result(msg.text)``.
Baseline and runtime are warmed up, then measured in alternating rounds so machine noise hits
both alike.

Reading the ratio: ``ratio_p50_vs_baseline`` is runtime p50 / baseline p50, i.e. how many times
the bare queue+future round trip the runtime costs (1.0 = no overhead). ``within_budget`` is true
when the sequential ratio is at most ``budget_ratio_p50``; the concurrent section carries its own.

Prints one JSON line on stdout; logs go to stderr. Run: ``.venv/bin/python bench/actor_ask.py``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from synapsex.config import configure_logging
from synapsex.contracts import Message
from synapsex.runtime import Actor, Runtime, handler

WARMUP = 2_000
ROUNDS = 5
PER_ROUND = 5_000
CONCURRENCY = 100
CONC_ROUNDS = 3
CONC_PER_TASK = 40  # per task per round: 100 x 40 x 3 = 12,000 asks per side
BUDGET_RATIO_P50 = 2.0

Ask = Callable[[Any], Awaitable[Any]]


class Ping(Message, service="bench-echo-service"):
    text: str


class Echo(Actor, service="bench-echo-service"):
    @handler
    async def ping(self, msg: Ping) -> str:
        return msg.text


class BaselineActor:
    """A bounded queue mailbox plus a Future reply: the floor any actor runtime pays."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Ping, asyncio.Future[str]]] = asyncio.Queue(1000)
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        q = self.queue
        while True:
            msg, fut = await q.get()
            fut.set_result(msg.text)

    async def ask(self, msg: Ping) -> str:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((msg, fut))
        return await fut

    async def aclose(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def sequential(ask: Ask, n: int, out: list[int]) -> None:
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        reply = await ask(Ping(text="x"))
        out.append(clock() - t0)
        assert reply == "x"


async def concurrent(ask: Ask, out: list[int]) -> int:
    """Run the concurrent askers once; returns the wall time in ns."""
    t0 = time.perf_counter_ns()
    await asyncio.gather(*(sequential(ask, CONC_PER_TASK, out) for _ in range(CONCURRENCY)))
    return time.perf_counter_ns() - t0


def pct(samples: list[int], q: float) -> float:
    """The ``q`` quantile (nearest rank) of nanosecond samples, in microseconds."""
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000, 2)


def summary(base: list[int], rt: list[int]) -> dict[str, float]:
    b50, r50 = pct(base, 0.5), pct(rt, 0.5)
    return {
        "baseline_p50_us": b50,
        "baseline_p99_us": pct(base, 0.99),
        "runtime_p50_us": r50,
        "runtime_p99_us": pct(rt, 0.99),
        "ratio_p50_vs_baseline": round(r50 / b50, 2),
    }


async def main() -> dict[str, Any]:
    configure_logging("warning", "json")  # structlog → stderr, and quiet
    base_actor = BaselineActor()
    with tempfile.TemporaryDirectory(prefix="sx-bench-") as tmp:
        async with Runtime.embedded(data_dir=tmp, actors=[Echo]) as rt:
            sides: dict[str, Ask] = {"baseline": base_actor.ask, "runtime": rt.ask}
            for ask in sides.values():
                await sequential(ask, WARMUP, [])
            seq: dict[str, list[int]] = {k: [] for k in sides}
            for r in range(ROUNDS):
                order = list(sides) if r % 2 == 0 else list(reversed(sides))
                for name in order:
                    gc.collect()
                    await sequential(sides[name], PER_ROUND, seq[name])
            conc: dict[str, list[int]] = {k: [] for k in sides}
            wall: dict[str, int] = dict.fromkeys(sides, 0)
            for r in range(CONC_ROUNDS):
                order = list(sides) if r % 2 == 0 else list(reversed(sides))
                for name in order:
                    gc.collect()
                    wall[name] += await concurrent(sides[name], conc[name])
    await base_actor.aclose()

    result: dict[str, Any] = {"bench": "actor_ask"}
    result.update(summary(seq["baseline"], seq["runtime"]))
    c = {f"{k}_asks_per_s": round(len(conc[k]) / (wall[k] / 1e9)) for k in sides}
    c.update(summary(conc["baseline"], conc["runtime"]))
    c["within_budget"] = c["ratio_p50_vs_baseline"] <= BUDGET_RATIO_P50
    result.update(
        {
            "sequential_asks_per_side": ROUNDS * PER_ROUND,
            "concurrent_100": {"asks_per_side": len(conc["runtime"]), **c},
            "budget_ratio_p50": BUDGET_RATIO_P50,
            "within_budget": result["ratio_p50_vs_baseline"] <= BUDGET_RATIO_P50,
            "python": platform.python_version(),
        }
    )
    return result


if __name__ == "__main__":
    out = asyncio.run(main())
    sys.stdout.write(json.dumps(out) + "\n")
