"""Shared fixtures: databases for both engines, and the embedded runtime.

PostgreSQL tests read ``SYNAPSEX_TEST_DATABASE_URL`` (an admin URL such as
``postgresql://postgres@127.0.0.1:5432/postgres``); each test gets a fresh database created from
it and dropped afterwards. Under ``CI=true`` a missing or unreachable server fails those tests;
elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
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


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """The URL of a fresh, empty PostgreSQL database (dropped after the test)."""
    admin = os.environ.get(PG_ENV, "").strip()
    if not admin:
        _unavailable(f"{PG_ENV} is not set")
    name = f"sx_test_{secrets.token_hex(6)}"
    try:
        conn = await asyncpg.connect(_with_database(admin, urlsplit(admin).path.lstrip("/")))
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable(f"cannot connect to {PG_ENV}: {exc}")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield _with_database(admin, name)
    finally:
        conn = await asyncpg.connect(_with_database(admin, urlsplit(admin).path.lstrip("/")))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db_environ(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment for one engine: ``{}`` (SQLite files) or ``DATABASE_URL`` (PostgreSQL)."""
    if request.param == "sqlite":
        return {}
    return {"DATABASE_URL": request.getfixturevalue("pg_url")}
