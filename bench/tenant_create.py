"""``CreateTenant`` asks per second through the runtime, on SQLite and on PostgreSQL.

For each engine: ``Runtime.embedded(services=["tenant-service"])`` (SQLite files in a temporary
folder; PostgreSQL in a fresh ``sx_bench_<hex>`` database dropped at the end), 50 warm-up
creates, then 1,000 sequential creates with unique names and 16 concurrent askers, each create
timed with ``time.perf_counter_ns``.

The baseline, in the same run and the same database: a raw insert of an equivalent ``tenants``
row (same table definition, copied from the migrated one) through the same driver, no runtime
and no ORM: aiosqlite with WAL + ``synchronous=NORMAL`` and one commit per insert, or asyncpg in
autocommit. It uses one connection, serialized by a lock, as the single tenant actor is. Runtime
and baseline run in alternating rounds so machine noise hits both alike.

Reading the ratio: ``ratio_vs_raw_insert`` is runtime time per create / raw time per create
(= raw creates/s ÷ runtime creates/s); 1.0 means the runtime, ORM and transaction cost nothing,
3.0 means a create through the runtime takes three raw inserts' time.

PostgreSQL comes from ``SYNAPSEX_BENCH_DATABASE_URL`` or ``SYNAPSEX_TEST_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``); when unreachable its section is
``{"skipped": reason}``. Prints one JSON line on stdout; logs go to stderr.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
from scratch_postgres import PostgresUnavailable, scratch_postgres

from synapsex.config import configure_logging
from synapsex.contracts.tenant import CreateTenant, slugify
from synapsex.runtime import Runtime, new_id

WARMUP = 50
SEQ_ROUNDS, SEQ_PER_ROUND = 4, 250  # 1,000 sequential creates per side
CONC, CONC_ROUNDS, CONC_PER_TASK = 16, 2, 25  # 16 x 25 x 2 = 800 concurrent creates per side
COLUMNS = "id, name, slug, plan, limit_overrides, member_count, created_at, updated_at"

Create = Callable[[str], Awaitable[Any]]


def row(name: str, now: Any) -> tuple[Any, ...]:
    return (new_id("ten"), name, slugify(name), "free", "{}", 0, now, now)


async def timed(create: Create, names: Iterator[str], n: int, out: list[int]) -> None:
    clock = time.perf_counter_ns
    for _ in range(n):
        name = next(names)
        t0 = clock()
        await create(name)
        out.append(clock() - t0)


async def measure(sides: dict[str, Create], prefix: str) -> dict[str, Any]:
    names = {k: (f"bench {prefix} {k} {i}" for i in itertools.count()) for k in sides}
    for k, create in sides.items():
        await timed(create, names[k], WARMUP, [])
    result: dict[str, Any] = {}
    for label, rounds, tasks, per_task in (
        ("sequential", SEQ_ROUNDS, 1, SEQ_PER_ROUND),
        (f"concurrent_{CONC}", CONC_ROUNDS, CONC, CONC_PER_TASK),
    ):
        lat: dict[str, list[int]] = {k: [] for k in sides}
        wall = dict.fromkeys(sides, 0)
        for r in range(rounds):
            for k in list(sides) if r % 2 == 0 else list(reversed(sides)):
                t0 = time.perf_counter_ns()
                await asyncio.gather(
                    *(timed(sides[k], names[k], per_task, lat[k]) for _ in range(tasks))
                )
                wall[k] += time.perf_counter_ns() - t0
        section: dict[str, Any] = {"creates_per_side": len(lat["runtime"])}
        for k in sides:
            section[f"{k}_creates_per_s"] = round(len(lat[k]) / (wall[k] / 1e9), 1)
            section[f"{k}_p50_ms"] = pct(lat[k], 0.5)
            section[f"{k}_p99_ms"] = pct(lat[k], 0.99)
        section["ratio_vs_raw_insert"] = round(
            section["raw_creates_per_s"] / section["runtime_creates_per_s"], 2
        )
        result[label] = section
    result["ratio_vs_raw_insert"] = result["sequential"]["ratio_vs_raw_insert"]
    return result


def pct(samples: list[int], q: float) -> float:
    """The ``q`` quantile (nearest rank) of nanosecond samples, in milliseconds."""
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6, 3)


def runtime_create(rt: Runtime) -> Create:
    return lambda name: rt.ask(CreateTenant(name=name))


async def bench_sqlite(tmp: Path) -> dict[str, Any]:
    async with Runtime.embedded(data_dir=tmp, services=["tenant-service"], environ={}) as rt:
        async with aiosqlite.connect(tmp / "tenant.db") as src:
            ddl = await src.execute_fetchall(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'tenants' AND sql IS NOT NULL"
            )
        async with aiosqlite.connect(tmp / "raw.db") as raw:
            await raw.execute("PRAGMA journal_mode=WAL")
            await raw.execute("PRAGMA synchronous=NORMAL")
            for (sql,) in ddl:
                await raw.execute(sql)
            await raw.commit()
            lock = asyncio.Lock()
            insert = f"INSERT INTO tenants ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"

            async def raw_create(name: str) -> None:
                async with lock:
                    await raw.execute(insert, row(name, str(datetime.now(UTC))))
                    await raw.commit()

            return await measure({"runtime": runtime_create(rt), "raw": raw_create}, "sqlite")


async def bench_postgres(tmp: Path) -> dict[str, Any]:
    try:
        async with scratch_postgres() as db:
            return {"server": db.server_version, **await _measure_postgres(tmp, db.url)}
    except PostgresUnavailable as exc:
        return {"skipped": str(exc)}


async def _measure_postgres(tmp: Path, url: str) -> dict[str, Any]:
    env = {"DATABASE_URL": url}
    async with Runtime.embedded(data_dir=tmp, services=["tenant-service"], environ=env) as rt:
        raw = await asyncpg.connect(url, timeout=5)
        try:
            await raw.execute(
                "CREATE SCHEMA bench_raw;"
                "CREATE TABLE bench_raw.tenants (LIKE tenant.tenants INCLUDING ALL)"
            )
            lock = asyncio.Lock()
            insert = (
                f"INSERT INTO bench_raw.tenants ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            )

            async def raw_create(name: str) -> None:
                async with lock:
                    await raw.execute(insert, *row(name, datetime.now(UTC)))

            sides = {"runtime": runtime_create(rt), "raw": raw_create}
            return await measure(sides, "postgres")
        finally:
            await raw.close()


async def main() -> dict[str, Any]:
    configure_logging("warning", "json")  # structlog → stderr, and quiet
    with tempfile.TemporaryDirectory(prefix="sx-bench-") as tmp:
        sqlite = await bench_sqlite(Path(tmp) / "sqlite")
        postgres = await bench_postgres(Path(tmp) / "postgres")
    return {
        "bench": "tenant_create",
        "sqlite": sqlite,
        "postgres": postgres,
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    out = asyncio.run(main())
    sys.stdout.write(json.dumps(out) + "\n")
