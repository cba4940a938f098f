"""A throw-away PostgreSQL database for a benchmark's PostgreSQL section.

The server comes from ``SYNAPSEX_BENCH_DATABASE_URL``, else ``SYNAPSEX_TEST_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/postgres``. A fresh ``sx_bench_<hex>`` database is created
and dropped at the end, whatever happens::

    try:
        async with scratch_postgres() as db:
            ...  # db.url, db.server_version
    except PostgresUnavailable as exc:
        section = {"skipped": str(exc)}
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


class PostgresUnavailable(Exception):
    """The server cannot be reached, or the database cannot be created."""


@dataclass(frozen=True)
class ScratchDatabase:
    url: str
    server_version: str


@asynccontextmanager
async def scratch_postgres() -> AsyncIterator[ScratchDatabase]:
    base = (
        os.environ.get("SYNAPSEX_BENCH_DATABASE_URL")
        or os.environ.get("SYNAPSEX_TEST_DATABASE_URL")
        or DEFAULT_PG
    )
    name = f"sx_bench_{secrets.token_hex(6)}"
    admin = None
    try:
        admin = await asyncpg.connect(base, timeout=5)
        await admin.execute(f'CREATE DATABASE "{name}"')
        version = (await admin.fetchval("SHOW server_version")).split()[0]
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        if admin is not None:
            await admin.close()
        raise PostgresUnavailable(f"PostgreSQL unavailable: {type(exc).__name__}: {exc}") from None
    try:
        yield ScratchDatabase(
            url=urlsplit(base)._replace(path=f"/{name}").geturl(), server_version=version
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
