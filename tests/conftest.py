"""Shared fixtures: databases for both engines, and the embedded runtime.

PostgreSQL tests read ``SYNAPSEX_TEST_DATABASE_URL`` (an admin URL such as
``postgresql://postgres@127.0.0.1:5432/postgres``); each test gets a fresh database created from
it and dropped afterwards. Under ``CI=true`` a missing or unreachable server fails those tests;
elsewhere they are skipped with the reason.

Starting every service on an empty database means applying every migration, which cost most of
an end-to-end test's start. So ``db_environ`` starts each test from a migrated copy instead: each
pytest worker migrates every registered service once (SQLite files in a folder of its own; a
PostgreSQL template database), and each test gets a copy of those files in its ``tmp_path`` or a
migrated database: one ``CREATE``d from the template, or one an earlier test of the worker used,
whose rows were then deleted (milliseconds, where a ``CREATE DATABASE`` takes half a second).
Tests about migrations themselves use ``pg_url`` (an empty database) or a data folder of their
own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

PG_ENV = "SYNAPSEX_TEST_DATABASE_URL"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}", query=""))


def _admin_url() -> str:
    admin = os.environ.get(PG_ENV, "").strip()
    if not admin:
        _unavailable(f"{PG_ENV} is not set")
    return admin


async def _admin_execute(admin: str, sql: str) -> None:
    try:
        conn = await asyncpg.connect(_with_database(admin, urlsplit(admin).path.lstrip("/")))
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable(f"cannot connect to {PG_ENV}: {exc}")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fresh_database(template: str | None = None) -> AsyncIterator[str]:
    admin = _admin_url()
    name = f"sx_test_{secrets.token_hex(6)}"
    await _admin_execute(
        admin, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    )
    try:
        yield _with_database(admin, name)
    finally:
        await _admin_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """The URL of a fresh, empty PostgreSQL database (dropped after the test)."""
    async for url in _fresh_database():
        yield url


# ---------------------------------------------------------------------------- migrated copies


def _run_apart(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to the end in a thread of its own (and so an event loop of its own,
    whatever the calling test's loop is doing)."""
    failure: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(make())
        except BaseException as exc:  # handed to the caller
            failure.append(exc)

    thread = threading.Thread(target=main, name="migrate-template")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _migrate_everything(data_dir: Path, environ: dict[str, str]) -> None:
    """Start every registered service once (which applies its migrations), then stop."""
    from synapsex.runtime import Runtime

    async def run() -> None:
        async with Runtime.embedded(data_dir=data_dir, environ=environ):
            pass

    _run_apart(run)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """This worker's SQLite files of every service, migrated (made on first use)."""
    folder = tmp_path_factory.mktemp("migrated-sqlite")
    _migrate_everything(folder, {})
    return sorted(folder.glob("*.db"))


@pytest.fixture(scope="session")
def pg_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The name of this worker's PostgreSQL template database: every service migrated."""
    admin = _admin_url()
    name = f"sx_template_{secrets.token_hex(6)}"
    _run_apart(lambda: _admin_execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        _migrate_everything(
            tmp_path_factory.mktemp("migrated-postgres"),
            {"DATABASE_URL": _with_database(admin, name)},
        )
        yield name
    finally:
        for db in [name, *_EMPTIED]:
            drop = f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'
            _run_apart(lambda drop=drop: _admin_execute(admin, drop))
        _EMPTIED.clear()


#: this worker's migrated databases a test has finished with and emptied, ready for the next
_EMPTIED: list[str] = []

#: every table's rows go (foreign keys not enforced meanwhile); the migration history stays
_EMPTY_TABLES = """
DO $$
DECLARE t record;
BEGIN
    SET LOCAL session_replication_role = replica;
    FOR t IN SELECT schemaname, tablename FROM pg_tables
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
               AND tablename <> 'tortoise_migrations'
    LOOP
        EXECUTE format('DELETE FROM %I.%I', t.schemaname, t.tablename);
    END LOOP;
END $$
"""


async def _empty(url: str) -> bool:
    """Delete every row of a used database (a few milliseconds, where creating one from the
    template takes half a second); ``False`` when it cannot be done at once (a connection left
    open holding locks): then the database is dropped instead."""
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        await conn.execute("SET lock_timeout = '2s'")
        await conn.execute(_EMPTY_TABLES)
        return True
    except asyncpg.PostgresError:
        return False
    finally:
        await conn.close()


@pytest.fixture
async def pg_migrated_url(pg_template: str) -> AsyncIterator[str]:
    """The URL of a PostgreSQL database with every service migrated and no rows but what
    services seed at start: made from this worker's template, or one an earlier test used and
    emptied (what services seed at start, they seed again)."""
    admin = _admin_url()
    if _EMPTIED:
        name = _EMPTIED.pop()
    else:
        name = f"sx_test_{secrets.token_hex(6)}"
        await _admin_execute(admin, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    url = _with_database(admin, name)
    try:
        yield url
    finally:
        if await _empty(url):
            _EMPTIED.append(name)
        else:
            await _admin_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db_environ(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment for one engine with nothing migrated: ``{}`` (SQLite files the test
    makes) or ``DATABASE_URL`` (an empty PostgreSQL database)."""
    if request.param == "sqlite":
        return {}
    return {"DATABASE_URL": request.getfixturevalue("pg_url")}


@pytest.fixture(params=["sqlite", "postgres"])
def db_environ(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment for one engine, every service migrated already: ``{}`` (SQLite files,
    copied into the test's ``tmp_path``) or ``DATABASE_URL`` (PostgreSQL)."""
    if request.param == "sqlite":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        for db in request.getfixturevalue("sqlite_template"):
            shutil.copyfile(db, tmp_path / db.name)
        return {}
    return {"DATABASE_URL": request.getfixturevalue("pg_migrated_url")}
