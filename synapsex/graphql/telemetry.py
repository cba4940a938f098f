"""Telemetry: traces, spans and events of the tenant's requests and agents, and summaries.

Every role may read (tenant-scoped; platform-level spans are visible to no tenant).
``recordTelemetry`` lets agents and VMs send their own spans and events (action
``telemetry.record``: members and up by default)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from synapsex.contracts import telemetry as contract
from synapsex.contracts.auth import Principal
from synapsex.contracts.errors import InvalidInput
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.guard import guarded
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.scalars import JSON
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]


# ---------------------------------------------------------------------------- types


@strawberry.enum(description="A span (timed work in a trace) or an event (a point in time).")
class TelemetryKind(Enum):
    SPAN = "span"
    EVENT = "event"


@strawberry.enum
class TelemetryStatus(Enum):
    OK = "OK"
    ERROR = "ERROR"


@strawberry.type(description="A span or event. Attributes are safe metadata, never secrets.")
class TelemetryEvent:
    id: strawberry.ID
    kind: TelemetryKind
    trace_id: str | None
    span_id: str | None
    parent_span_id: str | None = strawberry.field(
        description="The span that caused this one; null for a trace's root."
    )
    service: str
    name: str = strawberry.field(
        description="What was done: a message type, a GraphQL operation, a tool call."
    )
    started_at: datetime
    duration_ms: float | None = strawberry.field(description="Null for events.")
    status: TelemetryStatus
    error_code: str | None
    attributes: JSON

    @classmethod
    def of(cls, view: contract.TelemetryEventView) -> TelemetryEvent:
        return cls(
            id=strawberry.ID(view.id),
            kind=TelemetryKind(view.kind),
            trace_id=view.trace_id,
            span_id=view.span_id,
            parent_span_id=view.parent_span_id,
            service=view.service,
            name=view.name,
            started_at=view.started_at,
            duration_ms=view.duration_ms,
            status=TelemetryStatus(view.status),
            error_code=view.error_code,
            attributes=JSON(dict(view.attributes)),
        )


@strawberry.type(description="One trace: the tenant's spans and events in it, earliest first.")
class Trace:
    trace_id: str
    spans: list[TelemetryEvent]


@strawberry.type
class OperationCount:
    name: str
    count: int


@strawberry.type(
    description="One service's spans in a window. Percentiles are exact, by nearest rank: "
    "the duration at rank ceil(p/100 * count) in ascending order."
)
class TelemetrySummary:
    service: str
    count: int
    error_rate: float = strawberry.field(description="The share of spans with status ERROR.")
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    busiest_operations: list[OperationCount] = strawberry.field(
        description="The five most frequent span names."
    )

    @classmethod
    def of(cls, view: contract.ServiceSummary) -> TelemetrySummary:
        return cls(
            service=view.service,
            count=view.count,
            error_rate=view.error_rate,
            p50_ms=view.p50_ms,
            p95_ms=view.p95_ms,
            p99_ms=view.p99_ms,
            busiest_operations=[
                OperationCount(name=o.name, count=o.count) for o in view.busiest_operations
            ],
        )


# ---------------------------------------------------------------------------- inputs


@strawberry.input
class RecordTelemetryInput:
    kind: TelemetryKind = TelemetryKind.SPAN
    trace_id: str | None = strawberry.field(
        default=None, description="32 lower-case hex digits; required for a span."
    )
    span_id: str | None = strawberry.field(
        default=None, description="16 lower-case hex digits; required for a span."
    )
    parent_span_id: str | None = None
    service: str = strawberry.field(description="The reporting agent, VM or tool.")
    name: str
    started_at: datetime | None = strawberry.field(
        default=None, description="Default now; a time without an offset is taken as UTC."
    )
    duration_ms: float | None = strawberry.field(
        default=None, description="Required for a span; none for an event."
    )
    status: TelemetryStatus = TelemetryStatus.OK
    error_code: str | None = strawberry.field(default=None, description="Only with ERROR.")
    attributes: JSON | None = strawberry.field(
        default=None,
        description="Flat safe metadata (at most 32 keys); keys naming a secret are refused.",
    )


def _attributes(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("attributes", "must be a JSON object")
    return value


# ---------------------------------------------------------------------------- resolvers


@strawberry.type
class TelemetryQuery:
    @strawberry.field(description="One trace of the tenant; NOT_FOUND when it has none.")
    async def trace(self, info: Ctx, trace_id: str) -> Trace:
        p = await info.context.principal()
        view = await info.context.ask(contract.GetTrace(tenant_id=p.tenant_id, trace_id=trace_id))
        return Trace(trace_id=view.trace_id, spans=[TelemetryEvent.of(s) for s in view.spans])

    @strawberry.field(description="The tenant's spans and events, oldest first.")
    async def telemetry_events(
        self,
        info: Ctx,
        service: str | None = None,
        since: datetime | None = None,
        status: TelemetryStatus | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[TelemetryEvent]:
        return await tenant_connection(
            info,
            contract.ListTelemetryEvents,
            TelemetryEvent.of,
            service_name=service,
            since=since,
            status=status.value if status else None,
            first=first,
            after=after,
        )

    @strawberry.field(description="Per service: span count, error rate, latency percentiles.")
    async def telemetry_summary(
        self, info: Ctx, service: str | None = None, since_minutes: int = 60
    ) -> list[TelemetrySummary]:
        p = await info.context.principal()
        views = await info.context.ask(
            contract.SummarizeTelemetry(
                tenant_id=p.tenant_id, service_name=service, since_minutes=since_minutes
            )
        )
        return [TelemetrySummary.of(v) for v in views]


@strawberry.type
class TelemetryMutation:
    @strawberry.mutation(description="Record a span or event an agent or VM reports.")
    async def record_telemetry(self, info: Ctx, input: RecordTelemetryInput) -> TelemetryEvent:
        async def run(p: Principal) -> contract.TelemetryEventView:
            return await info.context.ask(
                contract.RecordTelemetry(
                    tenant_id=p.tenant_id,
                    kind=input.kind.value,
                    trace_id=input.trace_id,
                    span_id=input.span_id,
                    parent_span_id=input.parent_span_id,
                    service_name=input.service,
                    name=input.name,
                    started_at=input.started_at,
                    duration_ms=input.duration_ms,
                    status=input.status.value,
                    error_code=input.error_code,
                    attributes=_attributes(input.attributes),
                )
            )

        view = await guarded(
            info,
            action="telemetry.record",
            resource_type="telemetry_event",
            run=run,
            is_own_resource=True,
        )
        return TelemetryEvent.of(view)
