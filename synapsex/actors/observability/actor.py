"""observability-service handlers: store the runtime's spans, record what agents report, answer
trace, list and summary queries, prune past the retention.

**Storing spans.** The runtime's cells append the spans of traced messages to the in-process
:class:`~synapsex.runtime.spans.SpanBuffer` without waiting. This actor drains it in batches of
:data:`BATCH` (one transaction each, written as :mod:`.span_rows` says) every
:data:`STORE_SECONDS`, and at once when the buffer is half full; what is still buffered when it
stops is stored before it goes. Its own messages are never
recorded (it tells the buffer so when it starts): storing spans makes no spans.

**Retention.** Rows older than ``SYNAPSEX_TELEMETRY_RETENTION`` (default 7 days) are deleted in
one statement when the service starts and every :data:`PRUNE_SECONDS`.

Every handler may overlap the others (``concurrent``): each is one statement or a read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime

import structlog

from synapsex.contracts.common import Page
from synapsex.contracts.errors import ContractError, InvalidInput, NotFound
from synapsex.contracts.telemetry import (
    MAX_TRACE_SPANS,
    SERVICE,
    GetTrace,
    ListTelemetryEvents,
    PruneTelemetry,
    RecordTelemetry,
    ServiceSummary,
    SummarizeTelemetry,
    TelemetryEventView,
    TraceView,
)
from synapsex.runtime import Actor, Lane, handler
from synapsex.runtime.orm import paginate

from .internal import StoreSpans
from .models import TelemetryEvent
from .settings import TelemetrySettings
from .span_rows import store_spans
from .summary import summarize

log = structlog.get_logger("synapsex.observability")

#: spans taken from the buffer per transaction
BATCH = 2048
#: how often buffered spans are stored (sooner when the buffer is half full)
STORE_SECONDS = 0.5
#: how often rows past the retention are pruned
PRUNE_SECONDS = 60.0
#: how far ahead of this clock a reported start may be
MAX_CLOCK_SKEW_US = 5 * 60 * 1_000_000

#: compact JSON (one encoder: ``json.dumps`` with options builds a new one per call)
_to_json = json.JSONEncoder(separators=(",", ":")).encode


def _now_us() -> int:
    return time.time_ns() // 1000


def _us(at: datetime) -> int:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1_000_000)


def event_view(row: TelemetryEvent) -> TelemetryEventView:
    return TelemetryEventView(
        id=str(row.id),
        kind=row.kind,  # type: ignore[arg-type]
        trace_id=row.trace_id,
        span_id=row.span_id,
        parent_span_id=row.parent_span_id,
        service=row.service,
        name=row.name,
        started_at=datetime.fromtimestamp(row.started_at_us / 1_000_000, UTC),
        duration_ms=None if row.duration_us is None else row.duration_us / 1000,
        status=row.status,  # type: ignore[arg-type]
        error_code=row.error_code,
        attributes=json.loads(row.attributes),
    )


class ObservabilityActor(
    Actor, service=SERVICE, models="synapsex.actors.observability.models", concurrency=4
):
    """Owns ``telemetry_events``: the spans and events of every tenant (and the platform's)."""

    async def on_start(self) -> None:
        runtime = self.actor_runtime
        self._settings = TelemetrySettings.from_environ(runtime.settings.environ)
        self._spans = runtime.spans
        self._spans.untrace(SERVICE)
        sqlite = self.actor_db is not None and self.actor_db.config.is_sqlite
        self._sqlite = sqlite
        self._storer = Lane(runtime, StoreSpans)
        self._ticker = asyncio.create_task(self._tick(), name="observability-tick")
        task = asyncio.current_task()
        if task is not None:  # a crash ends the instance without on_stop: end its timer too
            task.add_done_callback(lambda _task: self._ticker.cancel())

    async def on_stop(self) -> None:
        self._ticker.cancel()
        await self._store_buffered()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        next_prune = loop.time()  # at start, then every PRUNE_SECONDS
        wanted = self._spans.wanted
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wanted.wait(), STORE_SECONDS)
            wanted.clear()  # set again by the next span past half full
            self._storer.request()
            if loop.time() >= next_prune:
                next_prune = loop.time() + PRUNE_SECONDS
                with contextlib.suppress(ContractError):  # full or stopping: next time
                    self.actor_runtime.tell_nowait(PruneTelemetry())

    # ------------------------------------------------------------------ the runtime's spans

    @handler(concurrent=True)
    async def store_spans(self, msg: StoreSpans) -> None:
        await self._storer.run(self._store_buffered)

    async def _store_buffered(self) -> None:
        """Store what the buffer holds, a batch per insert. A batch the database refuses is
        dropped and counted (telemetry never takes the service down)."""
        while batch := self._spans.take(BATCH):
            try:
                await store_spans(self.actor_db.client(), batch)  # type: ignore[union-attr]
            except Exception:
                self._spans.count_dropped(len(batch))
                log.exception("spans not stored", count=len(batch))
                return
            if len(batch) < BATCH:
                return

    # ------------------------------------------------------------------ reported telemetry

    @handler(concurrent=True)
    async def record(self, msg: RecordTelemetry) -> TelemetryEventView:
        now = _now_us()
        started = now if msg.started_at is None else _us(msg.started_at)
        if started > now + MAX_CLOCK_SKEW_US:
            raise InvalidInput("startedAt", "must not be more than 5 minutes in the future")
        if started < now - int(self._settings.retention_seconds * 1_000_000):
            raise InvalidInput("startedAt", "is older than the telemetry retention")
        row = await TelemetryEvent.create(
            tenant_id=msg.tenant_id,
            kind=msg.kind,
            trace_id=msg.trace_id,
            span_id=msg.span_id,
            parent_span_id=msg.parent_span_id,
            service=msg.service_name,
            name=msg.name,
            started_at_us=started,
            duration_us=None if msg.duration_ms is None else round(msg.duration_ms * 1000),
            status=msg.status,
            error_code=msg.error_code,
            attributes=_to_json(msg.attributes),
        )
        return event_view(row)

    # ------------------------------------------------------------------ queries

    @handler(read_only=True)
    async def trace(self, msg: GetTrace) -> TraceView:
        rows = (
            await TelemetryEvent.filter(tenant_id=msg.tenant_id, trace_id=msg.trace_id)
            .order_by("started_at_us", "id")
            .limit(MAX_TRACE_SPANS)
        )
        if not rows:
            raise NotFound("trace not found", trace_id=msg.trace_id)
        return TraceView(trace_id=msg.trace_id, spans=tuple(event_view(r) for r in rows))

    @handler(read_only=True)
    async def list_events(self, msg: ListTelemetryEvents) -> Page[TelemetryEventView]:
        query = TelemetryEvent.filter(tenant_id=msg.tenant_id)
        if msg.service_name is not None:
            query = query.filter(service=msg.service_name)
        if msg.since is not None:
            query = query.filter(started_at_us__gte=_us(msg.since))
        if msg.status is not None:
            query = query.filter(status=msg.status)
        if msg.after is not None and not msg.after.isdigit():
            raise InvalidInput("after", "is not a cursor this list gave")
        return await paginate(query, first=msg.first, after=msg.after, view=event_view)

    @handler(read_only=True)
    async def summary(self, msg: SummarizeTelemetry) -> tuple[ServiceSummary, ...]:
        return await summarize(
            self.actor_db.client(),  # type: ignore[union-attr]
            tenant_id=msg.tenant_id,
            since_us=_now_us() - msg.since_minutes * 60 * 1_000_000,
            service=msg.service_name,
            sqlite=self._sqlite,
        )

    # ------------------------------------------------------------------ retention

    @handler(concurrent=True)
    async def prune(self, msg: PruneTelemetry) -> int:
        cutoff = _now_us() - int(self._settings.retention_seconds * 1_000_000)
        pruned = await TelemetryEvent.filter(started_at_us__lt=cutoff).delete()
        if pruned:
            log.info("pruned telemetry", count=pruned)
        return pruned
