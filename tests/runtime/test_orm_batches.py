"""``insert_rows``: many rows in few statements, all or none, on both engines."""

from __future__ import annotations

import pytest
from tortoise.exceptions import IntegrityError

from synapsex.runtime import Runtime
from synapsex.runtime.orm import SQLITE_ROWS_PER_INSERT, insert_rows
from synapsex.runtime.testing import raw_sql

pytestmark = pytest.mark.usefixtures("db_environ")

SERVICE = "observability-service"  # a table with an integer key: telemetry_events
COLUMNS = ("id", "kind", "service", "name", "started_at_us", "status", "attributes")
#: more than two SQLite statements' worth
COUNT = 2 * SQLITE_ROWS_PER_INSERT + 1


async def insert(rt: Runtime, ids: list[int], **options: str) -> None:
    """``insert_rows`` on a connection of its own to the service's database, in a task where
    that database is the active one (as in the service's own handlers)."""
    (db,) = [d for d in rt.databases() if d.service == SERVICE]
    await db.open()
    try:
        await db.run(
            lambda: insert_rows(db.client(), "telemetry_events", COLUMNS, rows(ids), **options)
        )
    finally:
        await db.aclose()


def rows(ids: list[int]) -> list[list[object]]:
    return [[i, "event", "test", f"row {i}", i, "OK", "{}"] for i in ids]


async def test_rows_beyond_one_statement_are_all_inserted(tmp_path, db_environ):
    async with Runtime.embedded(data_dir=tmp_path, services=[SERVICE], environ=db_environ) as rt:
        await insert(rt, list(range(1, COUNT + 1)))
        async with raw_sql(rt, SERVICE) as run:
            (found,) = await run("SELECT count(*) AS n FROM telemetry_events")
    assert found["n"] == COUNT


async def test_a_conflict_in_the_last_statement_inserts_nothing(tmp_path, db_environ):
    async with Runtime.embedded(data_dir=tmp_path, services=[SERVICE], environ=db_environ) as rt:
        ids = [*range(1, COUNT), 1]  # the last row repeats the first one's key
        with pytest.raises(IntegrityError):
            await insert(rt, ids)
        async with raw_sql(rt, SERVICE) as run:
            (found,) = await run("SELECT count(*) AS n FROM telemetry_events")
    assert found["n"] == 0


async def test_on_conflict_skips_the_rows_already_there(tmp_path, db_environ):
    async with Runtime.embedded(data_dir=tmp_path, services=[SERVICE], environ=db_environ) as rt:
        await insert(rt, [1, 2])
        await insert(rt, [2, 3], on_conflict="ON CONFLICT DO NOTHING")
        async with raw_sql(rt, SERVICE) as run:
            found = await run("SELECT id FROM telemetry_events ORDER BY id")
    assert [r["id"] for r in found] == [1, 2, 3]
