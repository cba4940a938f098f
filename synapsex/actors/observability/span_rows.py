"""Writing the runtime's spans to ``telemetry_events``: the storing half of tracing's hot path.

Every traced request leaves about three spans, so storing them is written per engine and
measured (``bench/telemetry_overhead.py``):

* A span's values come straight from its slots, in column order, by one ``attrgetter`` call
  (no Python code per field); ``kind`` is a literal of the statement.
* SQLite: multi-row ``INSERT`` statements of :data:`SQLITE_ROWS` rows, and the rest in chunks
  whose sizes are powers of two, so there are at most ten distinct statements and they stay in
  sqlite3's statement cache (preparing a statement of 512 rows costs about ten times running
  it). The nullable text columns are bound as ``''`` and made NULL by ``NULLIF``: for every
  ``None`` parameter Python's sqlite3 first looks for an adapter, and failing to find one
  raises and clears an ``AttributeError`` inside (about 1.7 µs per ``None``, more than the rest
  of the row's insert). No span has an empty trace, parent, tenant or error code.
* PostgreSQL: asyncpg's ``executemany`` (one pipelined exchange).

All chunks of a batch are written in one transaction: all or none.
"""

from __future__ import annotations

import functools
import operator
from itertools import chain

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from synapsex.runtime import SpanRecord
from synapsex.runtime.orm import execute_many

TABLE = "telemetry_events"
#: the columns a span fills, in the order :data:`span_values` gives them (``kind`` comes first)
COLUMNS = (
    "kind",
    "tenant_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "name",
    "started_at_us",
    "duration_us",
    "status",
    "error_code",
    "attributes",
)
#: of :data:`COLUMNS`, the ones that may be NULL (bound as '' on SQLite, see above)
_NULLABLE = frozenset({"tenant_id", "parent_span_id", "error_code"})
#: rows per SQLite statement at most (12 values each; SQLite allows 32,766)
SQLITE_ROWS = 512

#: a span's values in the order of ``COLUMNS[1:]``
span_values = operator.attrgetter(
    "tenant_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "name",
    "started_at_us",
    "duration_us",
    "status",
    "error_code",
    "attributes_json",
)


async def store_spans(client: BaseDBAsyncClient, spans: list[SpanRecord]) -> None:
    """Insert ``spans`` as rows of kind ``span``, atomically."""
    if not spans:
        return
    if client.capabilities.dialect != "sqlite":
        await execute_many(client, _postgres_sql(), list(map(span_values, spans)))
        return
    chunks = list(sqlite_chunks(len(spans)))
    if len(chunks) == 1:  # one statement is atomic by itself
        await client.execute_query(_sqlite_sql(len(spans)), _sqlite_values(spans))
        return
    async with in_transaction(client.connection_name) as conn:
        start = 0
        for size in chunks:
            chunk = spans[start : start + size]
            await conn.execute_query(_sqlite_sql(size), _sqlite_values(chunk))
            start += size


def sqlite_chunks(count: int) -> list[int]:
    """``count`` as :data:`SQLITE_ROWS` as often as it goes, then powers of two."""
    full, rest = divmod(count, SQLITE_ROWS)
    powers = [1 << bit for bit in reversed(range(rest.bit_length())) if rest >> bit & 1]
    return [SQLITE_ROWS] * full + powers


def _sqlite_values(spans: list[SpanRecord]) -> list[object]:
    values = chain.from_iterable(map(span_values, spans))
    return ["" if value is None else value for value in values]


@functools.cache
def _sqlite_sql(rows: int) -> str:
    marks = ", ".join("NULLIF(?, '')" if column in _NULLABLE else "?" for column in COLUMNS[1:])
    values = ", ".join([f"('span', {marks})"] * rows)
    return f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES {values}"


@functools.cache
def _postgres_sql() -> str:
    marks = ", ".join(f"${i}" for i in range(1, len(COLUMNS)))
    return f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ('span', {marks})"
