"""What request tracing costs: the gateway benchmark's query with tracing on and off, one run.

Two ``synapsex serve`` processes, each bootstrapped on its own temporary data folder (SQLite)
exactly as ``bench/gateway.py`` starts its SynapseX target (same helpers: real settings, JSON
logs at ``info``, one log line per request, drained):

* ``tracing_on``: the default. Every request opens a trace (the ``traceparent`` response header,
  ``extensions.traceId``), the gateway's root span and one span per actor message (here two:
  ``Authenticate`` to auth-service, ``GetTenant`` to tenant-service) are appended to the span
  buffer, and the observability-service stores them in batches in the same process, so the
  inserts' cost is inside the measurement.
* ``tracing_off``: the same with ``SYNAPSEX_TRACING=false``: nothing is recorded.

The load is ``bench/gateway.py``'s: one ``aiohttp.ClientSession``, 32 workers POSTing
``{ me { tenant { name } } }`` back to back; a response counts only when it is HTTP 200 with
the expected data (a ``traceId`` in ``extensions`` is allowed). Each target is warmed up for
1 s, then ``--seconds`` (default 10) per target are split into ``--rounds`` (default 6)
alternating rounds (on, off, off, on, ...), so machine noise hits both alike.

Reading it: ``ratio`` is tracing-on requests/s ÷ tracing-off requests/s (1.0 = tracing is
free); ``overhead`` is ``1 - ratio``. ``within_budget`` is true when ``ratio`` is at least
``budget_min_ratio`` (0.9: tracing costs at most 10 % of requests/s) and no request failed.
``spans`` are the tracing-on server's span-buffer counters read from its ``/metrics`` at the
end: ``recorded`` shows tracing did its work (about three spans per request), ``dropped`` that
the buffer kept up (it never blocks: a full buffer drops and counts).

Prints one JSON line on stdout; logs go to stderr. Run:
``.venv/bin/python bench/telemetry_overhead.py [--seconds 10] [--rounds 6]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import structlog

# bench/gateway.py, beside this file: its server start, load and statistics
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway

from synapsex.config import configure_logging

log = structlog.get_logger("bench.telemetry_overhead")

DEFAULT_SECONDS = 10.0
DEFAULT_ROUNDS = 6
BUDGET_MIN_RATIO = 0.9
TRACING_ENV = "SYNAPSEX_TRACING"
_SPAN_METRIC = re.compile(r"^synapsex_spans_(recorded|dropped)_total (\d+)$", re.MULTILINE)


async def start(name: str, data_dir: Path, tracing: bool, procs: list) -> gateway.Target:
    """A ``synapsex serve`` started as ``bench/gateway.py`` starts it, tracing on or off."""
    previous = os.environ.get(TRACING_ENV)
    os.environ[TRACING_ENV] = "true" if tracing else "false"  # child_env copies os.environ
    try:
        target = await gateway.start_synapsex(data_dir, procs)
    finally:
        if previous is None:
            os.environ.pop(TRACING_ENV, None)
        else:
            os.environ[TRACING_ENV] = previous
    target.name = name
    return target


async def span_counters(target: gateway.Target) -> dict[str, int]:
    """The span buffer's counters from the server's ``/metrics``."""
    url = target.url.removesuffix("/graphql") + "/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    return {kind: int(value) for kind, value in _SPAN_METRIC.findall(text)}


async def measure(targets: list[gateway.Target], seconds: float, rounds: int) -> None:
    for target in targets:
        log.info("warm-up", target=target.name, url=target.url)
        await gateway.load(target, gateway.WARMUP_SECONDS, record=False)
    for r in range(rounds):
        for target in targets if r % 2 == 0 else list(reversed(targets)):
            gc.collect()
            await gateway.load(target, seconds / rounds, record=True)
            log.info("round", target=target.name, round=r, requests=len(target.latencies_ns))


async def main(seconds: float, rounds: int) -> dict[str, Any]:
    configure_logging("info", "json")  # structlog → stderr
    tmp = Path(tempfile.mkdtemp(prefix="sx-bench-telemetry-"))
    procs: list[asyncio.subprocess.Process] = []
    targets: list[gateway.Target] = []
    spans: dict[str, int] = {}
    try:
        targets.append(await start("tracing_on", tmp / "on", True, procs))
        targets.append(await start("tracing_off", tmp / "off", False, procs))
        await measure(targets, seconds, rounds)
        spans = await span_counters(targets[0])
        off_spans = await span_counters(targets[1])
        if off_spans.get("recorded"):
            raise RuntimeError(f"tracing_off recorded spans: {off_spans}")
    finally:
        await gateway.stop(procs)
        for target in targets:
            if target.drain is not None:
                target.drain.cancel()
                await asyncio.gather(target.drain, return_exceptions=True)
        shutil.rmtree(tmp, ignore_errors=True)

    on, off = (gateway.stats(t) for t in targets)
    ratio = round(on["rps"] / off["rps"], 3) if off["rps"] else None
    no_errors = on["errors"] == 0 and off["errors"] == 0
    return {
        "bench": "telemetry_overhead",
        "seconds": seconds,
        "rounds": rounds,
        "concurrency": gateway.CONCURRENCY,
        "query": gateway.QUERY,
        "tracing_on": on,
        "tracing_off": off,
        "ratio": ratio,
        "overhead": round(1 - ratio, 3) if ratio is not None else None,
        "budget_min_ratio": BUDGET_MIN_RATIO,
        "within_budget": bool(ratio and ratio >= BUDGET_MIN_RATIO and no_errors),
        "spans": spans,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def positive_rounds(text: str) -> int:
    value = int(text)
    if not 2 <= value <= 100:
        raise argparse.ArgumentTypeError("must be 2 to 100")
    return value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--seconds",
        type=gateway.positive_seconds,
        default=DEFAULT_SECONDS,
        help=f"measured seconds per target (default {DEFAULT_SECONDS:g})",
    )
    parser.add_argument(
        "--rounds",
        type=positive_rounds,
        default=DEFAULT_ROUNDS,
        help=f"alternating rounds per target (default {DEFAULT_ROUNDS})",
    )
    args = parser.parse_args()
    out = asyncio.run(main(args.seconds, args.rounds))
    sys.stdout.write(json.dumps(out) + "\n")
