"""Per-service summaries of spans, computed in the database.

Percentiles are exact, by the **nearest-rank** method: for ``n`` durations sorted ascending, the
p-th percentile is the one at rank ``ceil(p / 100 * n)`` (1-based), always a value that was
measured, never an interpolation. Ranks come from ``ROW_NUMBER()`` over each service's spans,
``ceil`` from integer arithmetic (``(n * p + 99) / 100``), identically on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from synapsex.contracts.telemetry import BUSIEST_OPERATIONS, OperationCount, ServiceSummary
from synapsex.runtime.orm import numbered_placeholders

PERCENTILES = (50, 95, 99)

_RANKED = (
    "SELECT service, n, errors, {picks} FROM ("
    " SELECT service, duration_us,"
    " ROW_NUMBER() OVER (PARTITION BY service ORDER BY duration_us) AS rn,"
    " COUNT(*) OVER (PARTITION BY service) AS n,"
    " SUM(CASE WHEN status = 'ERROR' THEN 1 ELSE 0 END) OVER (PARTITION BY service) AS errors"
    " FROM telemetry_events"
    " WHERE tenant_id = ? AND kind = 'span' AND started_at_us >= ?{service}"
    ") ranked GROUP BY service, n, errors"
)
_PICK = "MAX(CASE WHEN rn = (n * {p} + 99) / 100 THEN duration_us END) AS p{p}"
_OPERATIONS = (
    "SELECT service, name, COUNT(*) AS n FROM telemetry_events"
    " WHERE tenant_id = ? AND kind = 'span' AND started_at_us >= ?{service}"
    " GROUP BY service, name"
)


def _sql(template: str, *, by_service: bool, sqlite: bool) -> str:
    sql = template.format(
        picks=", ".join(_PICK.format(p=p) for p in PERCENTILES),
        service=" AND service = ?" if by_service else "",
    )
    return sql if sqlite else numbered_placeholders(sql)


def _ms(us: Any) -> float | None:
    return None if us is None else int(us) / 1000


async def summarize(
    client: BaseDBAsyncClient,
    *,
    tenant_id: str,
    since_us: int,
    service: str | None,
    sqlite: bool,
) -> tuple[ServiceSummary, ...]:
    """One summary per service with spans since ``since_us``, busiest first."""
    values: list[Any] = [tenant_id, since_us] + ([service] if service is not None else [])
    by_service = service is not None
    ranked = await client.execute_query_dict(
        _sql(_RANKED, by_service=by_service, sqlite=sqlite), values
    )
    operations = await client.execute_query_dict(
        _sql(_OPERATIONS, by_service=by_service, sqlite=sqlite), values
    )
    busiest: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in operations:
        busiest[row["service"]].append((-int(row["n"]), row["name"]))
    summaries = []
    for row in ranked:
        count = int(row["n"])
        top = sorted(busiest[row["service"]])[:BUSIEST_OPERATIONS]
        summaries.append(
            ServiceSummary(
                service=row["service"],
                count=count,
                error_rate=int(row["errors"]) / count,
                p50_ms=_ms(row["p50"]),
                p95_ms=_ms(row["p95"]),
                p99_ms=_ms(row["p99"]),
                busiest_operations=tuple(OperationCount(name=n, count=-c) for c, n in top),
            )
        )
    summaries.sort(key=lambda s: (-s.count, s.service))
    return tuple(summaries)
