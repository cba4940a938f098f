"""Helpers for handlers that use Tortoise: error translation, keyset pagination, raw batches.

Foreign errors are translated at this boundary (never formatted in handlers): a unique
violation becomes :class:`Conflict`, a missing row :class:`NotFound`, both with a message the
caller can act on.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import asyncpg
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import DoesNotExist, IntegrityError
from tortoise.models import Model
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from synapsex.contracts.common import Page
from synapsex.contracts.errors import Conflict, NotFound

M = TypeVar("M", bound=Model)
T = TypeVar("T")


@contextmanager
def db_errors(*, conflict: str, not_found: str = "not found", **details: Any) -> Iterator[None]:
    """Translate Tortoise's integrity and does-not-exist errors into contract errors."""
    try:
        yield
    except IntegrityError:
        raise Conflict(conflict, **details) from None
    except DoesNotExist:
        raise NotFound(not_found, **details) from None


async def get_or_not_found(query: QuerySet[M], what: str, **details: Any) -> M:
    """The one row ``query`` selects, or :class:`NotFound` ("``what`` not found")."""
    row = await query.first()
    if row is None:
        raise NotFound(f"{what} not found", **details)
    return row


async def paginate(
    query: QuerySet[M], *, first: int, after: str | None, view: Callable[[M], T]
) -> Page[T]:
    """One page of ``query`` ordered by its (sortable) id, starting after the cursor ``after``."""
    if after:
        query = query.filter(id__gt=after)
    rows = await query.order_by("id").limit(first + 1)
    items = tuple(view(r) for r in rows[:first])
    return Page(
        items=items,
        has_next_page=len(rows) > first,
        end_cursor=str(rows[:first][-1].id) if items else None,  # type: ignore[attr-defined]
    )


_QMARK = re.compile(r"\?")


def numbered_placeholders(sql: str) -> str:
    """``?`` placeholders (SQLite's) as PostgreSQL's ``$1, $2, …``, for raw statements written
    once for both engines (the statement must have no ``?`` inside a string literal)."""
    counter = itertools.count(1)
    return _QMARK.sub(lambda _: f"${next(counter)}", sql)


async def execute_many(client: BaseDBAsyncClient, sql: str, rows: list[list[Any]]) -> None:
    """Run ``sql`` once per row, atomically (all rows or none), in as few round trips as the
    engine allows.

    On PostgreSQL straight through asyncpg, whose ``executemany`` is one pipelined, atomic
    exchange (Tortoise's wraps it in BEGIN … COMMIT: two more round trips); elsewhere
    Tortoise's ``execute_many`` (a transaction of its own). Inside a transaction, use the
    transaction's ``execute_many``.
    """
    if client.capabilities.dialect == "postgres":
        async with client.acquire_connection() as connection:
            try:
                await connection.executemany(sql, rows)
            except asyncpg.exceptions.IntegrityConstraintViolationError as exc:
                raise IntegrityError(exc) from exc  # as Tortoise raises it on both engines
    else:
        await client.execute_many(sql, rows)


#: rows per SQLite statement in :func:`insert_rows` (its limit is 32,766 variables)
SQLITE_ROWS_PER_INSERT = 500


async def insert_rows(
    client: BaseDBAsyncClient,
    table: str,
    columns: Sequence[str],
    rows: list[list[Any]],
    *,
    on_conflict: str = "",
) -> None:
    """``INSERT`` many rows, atomically, the way each engine does it cheapest.

    On SQLite: multi-row ``INSERT … VALUES (…), (…)`` statements of up to
    :data:`SQLITE_ROWS_PER_INSERT` rows. A row-by-row ``executemany`` steps once per row, and
    Python's sqlite3 gives the GIL up and takes it back at every step: the database thread and
    the event loop then trade the GIL once per row (measured: a span insert cost twice as much
    that way under load). On PostgreSQL: asyncpg's ``executemany`` (one pipelined exchange).
    ``on_conflict`` is appended as is (e.g. ``"ON CONFLICT (a, b) DO NOTHING"``)."""
    if not rows:
        return
    names = ", ".join(columns)
    if client.capabilities.dialect != "sqlite":
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        await execute_many(
            client, f"INSERT INTO {table} ({names}) VALUES ({marks}) {on_conflict}", rows
        )
        return
    head, row = f"INSERT INTO {table} ({names})", f"({', '.join('?' * len(columns))})"
    if len(rows) <= SQLITE_ROWS_PER_INSERT:  # one statement is atomic by itself
        await insert_row_chunks(client, head, row, rows, on_conflict)
        return
    async with in_transaction(client.connection_name) as conn:  # all or none
        await insert_row_chunks(conn, head, row, rows, on_conflict)


async def insert_row_chunks(
    client: BaseDBAsyncClient, head: str, row: str, rows: list[list[Any]], tail: str = ""
) -> None:
    """SQLite: ``{head} VALUES {row}, {row}, … {tail}`` for every
    :data:`SQLITE_ROWS_PER_INSERT` rows, on ``client`` (which gives the atomicity: a
    transaction's, when there may be several statements). See :func:`insert_rows`."""
    for start in range(0, len(rows), SQLITE_ROWS_PER_INSERT):
        chunk = rows[start : start + SQLITE_ROWS_PER_INSERT]
        sql = _multi_row(head, row, len(chunk), tail)
        await client.execute_query(sql, [value for r in chunk for value in r])


@functools.lru_cache(maxsize=64)
def _multi_row(head: str, row: str, count: int, tail: str) -> str:
    return f"{head} VALUES {', '.join([row] * count)} {tail}"
