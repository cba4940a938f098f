"""billing-service handlers: usage records, their cost, and the daily tool-call limit.

Usage is written with an insert that ignores a conflict on ``(tenant_id, idempotency_key)``,
then read back by that key: two reports with one key, even from two processes at once, leave
one record and both answer it. Usage events are read by :class:`~.consumer.UsageConsumer`.

The daily limit is one conditional ``UPDATE … SET used = used + n WHERE … AND used <= limit -
n`` on the tenant's counter row for the day (created beforehand by an insert that ignores a
conflict, so two first callers of a day cannot both create it): the database, not this actor's
turn, decides who gets the last calls, so it holds across processes sharing PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta

import structlog
from cachetools import TTLCache
from tortoise.expressions import F
from tortoise.functions import Sum
from tortoise.queryset import QuerySet

from synapsex.contracts.billing import (
    SERVICE,
    TOKEN_KINDS,
    GetToolCallAllowance,
    GetUsageSummary,
    ListUsageRecords,
    RecordUsage,
    ReleaseToolCalls,
    ReserveToolCalls,
    ToolCallAllowance,
    UsageRecordView,
    UsageSummary,
)
from synapsex.contracts.common import Page, as_utc
from synapsex.contracts.errors import InvalidInput, LimitExceeded, NotFound
from synapsex.contracts.models import GetModel, GetPriceTimeline, PriceView
from synapsex.contracts.tenant import GetTenant
from synapsex.runtime import Actor, handler, new_id
from synapsex.runtime.orm import paginate

from . import pricing
from .consumer import UsageConsumer
from .internal import Pump
from .models import DailyCounter, UsageRecord

log = structlog.get_logger("synapsex.billing")

TOOL_CALLS = "tool_calls"
#: how long a model name's registry id is remembered
MODEL_CACHE_SECONDS = 60.0
MODEL_CACHE_SIZE = 10_000


def record_view(row: UsageRecord) -> UsageRecordView:
    return UsageRecordView(
        id=row.id,
        tenant_id=row.tenant_id,
        kind=row.kind,  # type: ignore[arg-type]
        quantity=row.quantity,
        model=row.model,
        at=pricing.from_us(row.at_us),
        source=row.source,
        idempotency_key=row.idempotency_key,
        created_at=row.created_at,
    )


def utc_today() -> date:
    return datetime.now(UTC).date()


def allowance(tenant_id: str, day: date, used: int, limit: int) -> ToolCallAllowance:
    return ToolCallAllowance(
        tenant_id=tenant_id,
        day=day,
        used=used,
        limit=limit,
        remaining=max(0, limit - used),
        resets_at=datetime.combine(day + timedelta(days=1), time(), UTC),
    )


class BillingActor(Actor, service=SERVICE, models="synapsex.actors.billing.models", concurrency=8):
    """Owns ``usage_records``, the daily limit counters and the usage intake's state."""

    async def on_start(self) -> None:
        #: (tenant, model as reported) -> the registry's model id
        self._model_ids: TTLCache[tuple[str, str], str] = TTLCache(
            MODEL_CACHE_SIZE, MODEL_CACHE_SECONDS
        )
        self._consumer = UsageConsumer(self, Pump, self.store)
        self._consumer.start()

    async def on_stop(self) -> None:
        self._consumer.stop()

    # ------------------------------------------------------------------ usage records

    async def model_id(self, tenant_id: str, model: str) -> str:
        """The registry's id of ``model`` (an id or ``provider/name``) as the tenant sees it;
        ``InvalidInput`` on ``model`` when there is no such model."""
        cached = self._model_ids.get((tenant_id, model))
        if cached is not None:
            return cached
        try:
            found = (await self.actor_runtime.ask(GetModel(tenant_id=tenant_id, model=model))).id
        except NotFound:
            raise InvalidInput("model", f"no model {model!r} in the model registry") from None
        self._model_ids[(tenant_id, model)] = found
        return found

    async def store(self, reports: list[RecordUsage]) -> None:
        """Write reports whose model ids are resolved; a key already used is skipped."""
        now = datetime.now(UTC)
        rows = []
        for r in reports:
            at = as_utc(r.at) if r.at is not None else now
            rows.append(
                UsageRecord(
                    id=new_id("usg"),
                    tenant_id=r.tenant_id,
                    kind=r.kind,
                    quantity=r.quantity,
                    model=r.model,
                    at_us=pricing.to_us(at),
                    day=at.date().isoformat(),
                    source=r.source,
                    idempotency_key=r.idempotency_key or new_id("uik"),
                    created_at=now,
                )
            )
        if rows:
            await UsageRecord.bulk_create(rows, ignore_conflicts=True)

    async def resolve(self, msg: RecordUsage) -> RecordUsage:
        """The report with its model named by the registry's id."""
        if msg.kind not in TOKEN_KINDS or msg.model is None:
            return msg
        model = await self.model_id(msg.tenant_id, msg.model)
        if model == msg.model:
            return msg
        return dataclasses.replace(msg, model=model)

    @handler(concurrent=True)  # an insert that ignores conflicts, then a read by key
    async def record(self, msg: RecordUsage) -> UsageRecordView:
        key = msg.idempotency_key or new_id("uik")
        first = await UsageRecord.filter(tenant_id=msg.tenant_id, idempotency_key=key).first()
        if first is None:
            report = await self.resolve(msg)
            await self.store([dataclasses.replace(report, idempotency_key=key)])
            first = await UsageRecord.get(tenant_id=msg.tenant_id, idempotency_key=key)
        self._consumer.serve(msg.tenant_id)
        return record_view(first)

    @handler(read_only=True)
    async def list_records(self, msg: ListUsageRecords) -> Page[UsageRecordView]:
        query = UsageRecord.filter(tenant_id=msg.tenant_id)
        if msg.kind is not None:
            query = query.filter(kind=msg.kind)
        return await paginate(query, first=msg.first, after=msg.after, view=record_view)

    # ------------------------------------------------------------------ costs

    @handler(read_only=True)
    async def summary(self, msg: GetUsageSummary) -> UsageSummary:
        start_us, end_us = pricing.to_us(as_utc(msg.start)), pricing.to_us(as_utc(msg.end))
        in_period = UsageRecord.filter(
            tenant_id=msg.tenant_id, at_us__gte=start_us, at_us__lt=end_us
        )
        lines = pricing.SummaryLines(msg.group_by)
        unpriced = await self._sums(in_period.filter(model=None))
        for kind, _model, day, quantity in unpriced:
            lines.add(kind, None, day, quantity, None)
        models = await in_period.exclude(model=None).distinct().values_list("model", flat=True)
        for model in sorted(set(models)):
            timeline = await self._timeline(msg.tenant_id, model)
            for segment in pricing.segments(timeline, start_us, end_us):
                priced = in_period.filter(
                    model=model, at_us__gte=segment.start_us, at_us__lt=segment.end_us
                )
                for kind, _model, day, quantity in await self._sums(priced):
                    lines.add(kind, model, day, quantity, pricing.unit_price(kind, segment.price))
        done = lines.lines()
        return UsageSummary(
            tenant_id=msg.tenant_id,
            start=as_utc(msg.start),
            end=as_utc(msg.end),
            group_by=msg.group_by,
            lines=done,
            total_cost=pricing.total(done),
        )

    async def _timeline(self, tenant_id: str, model: str) -> tuple[PriceView, ...]:
        try:
            return await self.actor_runtime.ask(GetPriceTimeline(tenant_id=tenant_id, model=model))
        except NotFound:  # removed from the registry since: its usage has no price
            return ()

    @staticmethod
    async def _sums(query: QuerySet[UsageRecord]) -> list[tuple[str, str | None, str, int]]:
        rows = (
            await query.annotate(total=Sum("quantity"))
            .group_by("kind", "day")
            .values("kind", "day", "total")
        )
        return [(r["kind"], None, r["day"], int(r["total"])) for r in rows]

    # ------------------------------------------------------------------ the daily limit

    async def _tool_call_limit(self, tenant_id: str) -> int:
        tenant = await self.actor_runtime.ask(GetTenant(id=tenant_id))
        return tenant.limits.tool_calls_per_day

    @staticmethod
    def _counter(tenant_id: str, day: date) -> QuerySet[DailyCounter]:
        return DailyCounter.filter(tenant_id=tenant_id, metric=TOOL_CALLS, day=day.isoformat())

    async def _used(self, tenant_id: str, day: date) -> int:
        row = await self._counter(tenant_id, day).first()
        return 0 if row is None else row.used

    @handler(concurrent=True)  # one conditional statement decides
    async def reserve(self, msg: ReserveToolCalls) -> ToolCallAllowance:
        limit = await self._tool_call_limit(msg.tenant_id)
        day = utc_today()
        # the day's row, created race-free: a second creator's insert is ignored
        await DailyCounter.bulk_create(
            [
                DailyCounter(
                    id=new_id("bdc"),
                    tenant_id=msg.tenant_id,
                    metric=TOOL_CALLS,
                    day=day.isoformat(),
                    used=0,
                )
            ],
            ignore_conflicts=True,
        )
        taken = (
            await self._counter(msg.tenant_id, day)
            .filter(used__lte=limit - msg.count)
            .update(used=F("used") + msg.count)
        )
        used = await self._used(msg.tenant_id, day)
        if not taken:
            view = allowance(msg.tenant_id, day, used, limit)
            raise LimitExceeded(
                f"the plan allows {limit} tool calls a day; {used} are used today, "
                f"{view.remaining} remain (the count resets at {view.resets_at.isoformat()})",
                limit="tool_calls_per_day",
                allowed=limit,
                used=used,
                requested=msg.count,
                resets_at=view.resets_at.isoformat(),
            )
        return allowance(msg.tenant_id, day, used, limit)

    @handler(concurrent=True)
    async def release(self, msg: ReleaseToolCalls) -> ToolCallAllowance:
        counter = self._counter(msg.tenant_id, msg.day)
        if not await counter.filter(used__gte=msg.count).update(used=F("used") - msg.count):
            await counter.filter(used__lt=msg.count).update(used=0)
        limit = await self._tool_call_limit(msg.tenant_id)
        return allowance(msg.tenant_id, msg.day, await self._used(msg.tenant_id, msg.day), limit)

    @handler(read_only=True)
    async def tool_call_allowance(self, msg: GetToolCallAllowance) -> ToolCallAllowance:
        limit = await self._tool_call_limit(msg.tenant_id)
        day = utc_today()
        return allowance(msg.tenant_id, day, await self._used(msg.tenant_id, day), limit)

    # ------------------------------------------------------------------ usage events

    @handler(concurrent=True)
    async def pump(self, msg: Pump) -> None:
        await self._consumer.run()
