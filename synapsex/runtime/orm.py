"""Helpers for handlers that use Tortoise: error translation, keyset pagination, raw batches.

Foreign errors are translated at this boundary (never formatted in handlers): a unique
violation becomes :class:`Conflict`, a missing row :class:`NotFound`, both with a message the
caller can act on.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import DoesNotExist, IntegrityError
from tortoise.models import Model
from tortoise.queryset import QuerySet

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
            await connection.executemany(sql, rows)
    else:
        await client.execute_many(sql, rows)
