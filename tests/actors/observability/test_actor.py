"""observability-service on both engines: the runtime's spans stored in batches (and kept across
a restart), reported telemetry validated and tenant-scoped, exact nearest-rank summaries, and
retention pruning in one statement."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from synapsex.actors.observability.settings import RETENTION_ENV, TelemetrySettings
from synapsex.actors.observability.span_rows import SQLITE_ROWS, sqlite_chunks
from synapsex.config import ConfigError
from synapsex.contracts.errors import InvalidInput, NotFound
from synapsex.contracts.telemetry import (
    GetTrace,
    ListTelemetryEvents,
    PruneTelemetry,
    RecordTelemetry,
    SummarizeTelemetry,
)
from synapsex.runtime import Runtime, SpanRecord
from synapsex.runtime.testing import raw_sql, wait_until

pytestmark = pytest.mark.usefixtures("db_environ")

SERVICE = "observability-service"
A = "ten_a"
B = "ten_b"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"
DEADLINE = 10.0


def embedded(tmp_path, db_environ, **environ: str) -> Runtime:
    return Runtime.embedded(
        data_dir=tmp_path, services=[SERVICE], environ={**db_environ, **environ}
    )


def buffered_span(i: int, *, trace_id: str = TRACE, tenant_id: str | None = A) -> SpanRecord:
    return SpanRecord(
        trace_id=trace_id,
        span_id=f"{i + 1:016x}",
        parent_span_id=None if i == 0 else f"{1:016x}",
        service="tenant-service",
        name="GetTenant",
        started_at_us=time.time_ns() // 1000 - 1_000_000 + i,
        duration_us=2_000,
        attributes_json='{"message.kind":"ask"}',
        tenant_id=tenant_id,
    )


def span(ms: float, *, tenant: str = A, service: str = "agent", name: str = "tool.call", **kw):
    fields = {
        "tenant_id": tenant,
        "trace_id": TRACE,
        "span_id": "00f067aa0ba902b7",
        "service_name": service,
        "name": name,
        "duration_ms": ms,
    }
    return RecordTelemetry(**{**fields, **kw})


# ---------------------------------------------------------------------------- the runtime's spans


async def test_buffered_spans_are_stored_in_batches_and_belong_to_their_tenant(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as rt:
        for i in range(1_200):  # three batches, stored by the timer (under half the buffer)
            rt.spans.offer(buffered_span(i, trace_id=TRACE if i < 600 else OTHER_TRACE))
        trace = await wait_until(lambda: _trace_or_none(rt, A, OTHER_TRACE), deadline=DEADLINE)
        first = await rt.ask(GetTrace(tenant_id=A, trace_id=TRACE))
        with pytest.raises(NotFound):  # another tenant sees nothing of it
            await rt.ask(GetTrace(tenant_id=B, trace_id=TRACE))
    assert len(first.spans) == 600
    assert len(trace.spans) == 600
    root = first.spans[0]
    assert (root.kind, root.service, root.name, root.status) == (
        "span",
        "tenant-service",
        "GetTenant",
        "OK",
    )
    assert (root.parent_span_id, root.duration_ms) == (None, 2.0)
    assert root.attributes == {"message.kind": "ask"}
    assert {s.parent_span_id for s in first.spans[1:]} == {root.span_id}


async def _trace_or_none(rt: Runtime, tenant: str, trace_id: str):
    try:
        view = await rt.ask(GetTrace(tenant_id=tenant, trace_id=trace_id))
    except NotFound:
        return None
    return view if len(view.spans) == 600 else None


async def test_spans_still_buffered_at_stop_are_stored_and_survive_a_restart(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        rt.spans.offer(buffered_span(0))
    async with embedded(tmp_path, db_environ) as rt:
        trace = await rt.ask(GetTrace(tenant_id=A, trace_id=TRACE))
    assert [s.name for s in trace.spans] == ["GetTenant"]


@pytest.mark.parametrize(
    ("count", "chunks"),
    [(1, [1]), (3, [2, 1]), (512, [512]), (1_200, [512, 512, 128, 32, 16]), (1_023, None)],
)
def test_sqlite_span_inserts_come_in_few_sizes_so_their_statements_stay_cached(count, chunks):
    sizes = sqlite_chunks(count)
    assert sum(sizes) == count
    assert chunks is None or sizes == chunks
    assert all(size == SQLITE_ROWS or size & (size - 1) == 0 for size in sizes)


async def test_platform_spans_are_stored_but_visible_to_no_tenant(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        rt.spans.offer(buffered_span(0, tenant_id=None))
    async with embedded(tmp_path, db_environ) as rt:
        async with raw_sql(rt, SERVICE) as sql:
            rows = await sql(
                "SELECT kind, tenant_id, name, parent_span_id, error_code FROM telemetry_events"
            )
        with pytest.raises(NotFound):
            await rt.ask(GetTrace(tenant_id=A, trace_id=TRACE))
        page = await rt.ask(ListTelemetryEvents(tenant_id=A))
    # NULL, not the empty string the SQLite insert binds for them (see span_rows)
    assert rows == [
        {
            "kind": "span",
            "tenant_id": None,
            "name": "GetTenant",
            "parent_span_id": None,
            "error_code": None,
        }
    ]
    assert page.items == ()


async def test_the_service_own_messages_are_never_recorded(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        await rt.ask(span(1.0), trace_id=TRACE)
        await rt.ask(ListTelemetryEvents(tenant_id=A), trace_id=TRACE)
        assert rt.spans.statistics().recorded == 0


# ---------------------------------------------------------------------------- reported telemetry


async def test_a_reported_span_is_stored_for_its_tenant_only(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        at = datetime.now(UTC) - timedelta(seconds=5)
        view = await rt.ask(
            span(
                12.5,
                started_at=at,
                parent_span_id="b7ad6b7169203331",
                status="ERROR",
                error_code="TOOL_TIMEOUT",
                attributes={"gen_ai.tool.name": "search", "gen_ai.usage.input_tokens": 120},
            )
        )
        trace = await rt.ask(GetTrace(tenant_id=A, trace_id=TRACE))
        with pytest.raises(NotFound):
            await rt.ask(GetTrace(tenant_id=B, trace_id=TRACE))
        assert (await rt.ask(ListTelemetryEvents(tenant_id=B))).items == ()
    assert trace.spans == (view,)
    assert view.id.isdigit()  # a cursor for telemetryEvents
    assert (view.duration_ms, view.status, view.error_code) == (12.5, "ERROR", "TOOL_TIMEOUT")
    assert abs((view.started_at - at).total_seconds()) < 1e-5
    assert view.attributes == {"gen_ai.tool.name": "search", "gen_ai.usage.input_tokens": 120}


async def test_an_event_needs_no_trace_and_has_no_duration(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        view = await rt.ask(
            RecordTelemetry(tenant_id=A, kind="event", service_name="vm-7", name="vm.booted")
        )
    assert (view.kind, view.trace_id, view.duration_ms) == ("event", None, None)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"trace_id": None}, "traceId"),
        ({"trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736"}, "traceId"),
        ({"trace_id": "0" * 32}, "traceId"),
        ({"span_id": "0" * 16}, "spanId"),
        ({"span_id": None}, "spanId"),
        ({"parent_span_id": "xyz"}, "parentSpanId"),
        ({"parent_span_id": "00f067aa0ba902b7"}, "parentSpanId"),
        ({"duration_ms": None}, "durationMs"),
        ({"duration_ms": -1.0}, "durationMs"),
        ({"service_name": ""}, "service"),
        ({"name": "x" * 201}, "name"),
        ({"error_code": "TIMEOUT"}, "errorCode"),
        ({"status": "ERROR", "error_code": "no spaces"}, "errorCode"),
        ({"attributes": {"api_key": "sx_123"}}, "attributes.api_key"),
        ({"attributes": {"http.authorization": "Bearer x"}}, "attributes.http.authorization"),
        ({"attributes": {"nested": {"a": 1}}}, "attributes.nested"),
        ({"attributes": {f"k{i}": i for i in range(33)}}, "attributes"),
        ({"kind": "event", "duration_ms": 1.0}, "durationMs"),
    ],
    ids=[
        "span-without-trace",
        "upper-case-trace",
        "zero-trace",
        "zero-span",
        "span-without-span-id",
        "bad-parent",
        "parent-is-itself",
        "span-without-duration",
        "negative-duration",
        "empty-service",
        "long-name",
        "error-code-with-ok",
        "bad-error-code",
        "secret-key",
        "authorization-key",
        "nested-value",
        "too-many-keys",
        "event-with-duration",
    ],
)
def test_reported_telemetry_is_validated_naming_the_field(fields, field):
    with pytest.raises(InvalidInput) as caught:
        span(1.0, **fields)
    assert caught.value.field == field


async def test_a_start_too_far_ahead_or_past_the_retention_is_refused(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ, **{RETENTION_ENV: "1h"}) as rt:
        now = datetime.now(UTC)
        for at in (now + timedelta(minutes=10), now - timedelta(hours=2)):
            with pytest.raises(InvalidInput) as caught:
                await rt.ask(span(1.0, started_at=at))
            assert caught.value.field == "startedAt"


# ---------------------------------------------------------------------------- queries


async def test_summary_percentiles_are_exact_by_nearest_rank(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        for ms in range(1, 21):  # 1 .. 20 ms, the last two failed
            failed = {"status": "ERROR", "error_code": "E"} if ms > 18 else {}
            name = "tool.call" if ms % 4 else "tool.list"
            await rt.ask(span(float(ms), name=name, **failed))
        await rt.ask(span(7.0, service="vm", name="boot"))
        await rt.ask(span(1_000.0, tenant=B))  # another tenant's: never counted
        summaries = await rt.ask(SummarizeTelemetry(tenant_id=A))
        only_vm = await rt.ask(SummarizeTelemetry(tenant_id=A, service_name="vm"))
    agent, vm = summaries
    assert (agent.service, agent.count, agent.error_rate) == ("agent", 20, 0.1)
    # nearest rank of 20 sorted values: p50 -> rank 10, p95 -> rank 19, p99 -> rank 20
    assert (agent.p50_ms, agent.p95_ms, agent.p99_ms) == (10.0, 19.0, 20.0)
    assert [(o.name, o.count) for o in agent.busiest_operations] == [
        ("tool.call", 15),
        ("tool.list", 5),
    ]
    assert (vm.count, vm.p50_ms, vm.p99_ms) == (1, 7.0, 7.0)
    assert only_vm == (vm,)


async def test_events_are_listed_oldest_first_by_service_status_and_time(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        old = datetime.now(UTC) - timedelta(hours=1)
        await rt.ask(span(1.0, started_at=old))
        ok = await rt.ask(span(2.0))
        failed = await rt.ask(span(3.0, status="ERROR", error_code="E"))
        await rt.ask(span(4.0, service="vm"))
        since = datetime.now(UTC) - timedelta(minutes=1)
        page = await rt.ask(
            ListTelemetryEvents(tenant_id=A, service_name="agent", since=since, first=1)
        )
        rest = await rt.ask(
            ListTelemetryEvents(
                tenant_id=A, service_name="agent", since=since, after=page.end_cursor
            )
        )
        errors = await rt.ask(ListTelemetryEvents(tenant_id=A, status="ERROR"))
    assert (page.items, page.has_next_page) == ((ok,), True)
    assert (rest.items, rest.has_next_page) == ((failed,), False)
    assert errors.items == (failed,)


# ---------------------------------------------------------------------------- retention


async def test_rows_past_the_retention_are_pruned(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ, **{RETENTION_ENV: "1h"}) as rt:
        kept = await rt.ask(span(1.0))
        two_hours_ago = (time.time_ns() // 1000) - 2 * 3600 * 1_000_000
        async with raw_sql(rt, SERVICE) as sql:
            for i in range(3):
                await sql(
                    "INSERT INTO telemetry_events (tenant_id, kind, service, name, "
                    "started_at_us, status, attributes) VALUES (?, 'event', 'vm', 'old', ?, "
                    "'OK', '{}')",
                    A if i else None,
                    two_hours_ago,
                )
        assert await rt.ask(PruneTelemetry()) == 3
        assert await rt.ask(PruneTelemetry()) == 0
        page = await rt.ask(ListTelemetryEvents(tenant_id=A))
    assert page.items == (kept,)


async def test_the_retention_setting_names_the_variable_when_unreadable():
    assert TelemetrySettings.from_environ({}).retention_seconds == 7 * 86_400
    assert TelemetrySettings.from_environ({RETENTION_ENV: "12h"}).retention_seconds == 43_200
    with pytest.raises(ConfigError, match=RETENTION_ENV):
        TelemetrySettings.from_environ({RETENTION_ENV: "soon"})
