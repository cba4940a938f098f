"""Tracing through the real gateway on both engines: a request's trace (the gateway's root span
and the services' spans with their parents), ``traceparent`` in and out, ``extensions.traceId``
(also on errors), tenant-scoped reads, ``recordTelemetry`` and its validation, and tracing off."""

from __future__ import annotations

import re
from typing import Any

import pytest

from synapsex.graphql.tracing import parse_traceparent
from synapsex.runtime.testing import wait_until

from .conftest import CORE_SERVICES, Caller, running_gateway

# the services these tests need
GATEWAY_SERVICES = [*CORE_SERVICES, "observability-service", "webhook-service"]

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
DEADLINE = 10.0
TRACEPARENT_RE = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")

TRACE_QUERY = """
query Trace($id: String!) {
  trace(traceId: $id) {
    traceId
    spans { spanId parentSpanId service name durationMs status errorCode attributes }
  }
}
"""
RECORD = """
mutation Record($input: RecordTelemetryInput!) {
  recordTelemetry(input: $input) { id kind traceId spanId service name durationMs status }
}
"""


async def post(caller: Caller, query: str, headers: dict[str, str] | None = None, **variables):
    """The response and its JSON body."""
    all_headers = {"Authorization": f"Bearer {caller.key}"} if caller.key else {}
    all_headers.update(headers or {})
    response = await caller.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=all_headers
    )
    return response, await response.json()


async def stored_trace(caller: Caller, trace_id: str, services: int) -> dict[str, Any]:
    """The trace once spans of ``services`` different services are stored."""

    async def ready():
        body = await caller.gql(TRACE_QUERY, {"id": trace_id})
        if "errors" in body:
            return None
        spans = body["data"]["trace"]["spans"]
        return body["data"]["trace"] if len({s["service"] for s in spans}) >= services else None

    return await wait_until(ready, deadline=DEADLINE)


# ---------------------------------------------------------------------------- one request's trace


async def test_a_request_is_a_trace_of_the_gateway_span_and_the_services_spans(gateway):
    response, body = await post(gateway.acme, "query Me { me { tenant { name } } }")
    assert body["data"] == {"me": {"tenant": {"name": "Acme"}}}
    trace_id = body["extensions"]["traceId"]
    header = TRACEPARENT_RE.fullmatch(response.headers["traceparent"])
    assert header is not None
    assert header.group(1) == trace_id
    trace = await stored_trace(gateway.acme, trace_id, services=3)
    assert trace["traceId"] == trace_id
    root, *children = trace["spans"]
    assert (root["service"], root["name"], root["status"]) == ("api-gateway", "Me", "OK")
    assert root["spanId"] == header.group(2)
    assert root["parentSpanId"] is None
    assert root["attributes"]["http.response.status_code"] == 200
    by_service = {s["service"]: s for s in children}
    assert by_service["auth-service"]["name"] == "Authenticate"
    assert by_service["tenant-service"]["name"] == "GetTenant"
    for child in children:  # both were asked by the resolvers: the request's span is the parent
        assert child["parentSpanId"] == root["spanId"]
        assert child["status"] == "OK"
        assert child["durationMs"] <= root["durationMs"]
        assert set(child["attributes"]) == {"message.kind", "message.attempt"}


async def test_a_valid_traceparent_continues_the_callers_trace(gateway):
    response, body = await post(
        gateway.acme, "query Me { me { role } }", {"traceparent": f"00-{TRACE}-{PARENT}-01"}
    )
    assert body["extensions"]["traceId"] == TRACE
    returned = parse_traceparent(response.headers["traceparent"])
    assert returned is not None
    assert returned.trace_id == TRACE
    assert returned.parent_id != PARENT  # the gateway's own span
    trace = await stored_trace(gateway.acme, TRACE, services=2)
    root = trace["spans"][0]
    assert (root["spanId"], root["parentSpanId"]) == (returned.parent_id, PARENT)


@pytest.mark.parametrize(
    "header",
    [
        f"00-{TRACE}-{PARENT}",
        f"00-{'0' * 32}-{PARENT}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{PARENT}-01",
        f"ff-{TRACE}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-01-extra",
        f"00_{TRACE}_{PARENT}_01",
        f"0g-{TRACE}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-zz",
    ],
    ids=[
        "no-flags",
        "zero-trace-id",
        "zero-parent-id",
        "upper-case",
        "version-ff",
        "version-00-with-more",
        "wrong-separators",
        "bad-version",
        "bad-flags",
    ],
)
async def test_an_invalid_traceparent_starts_a_new_trace(gateway, header):
    response, body = await post(gateway.acme, "{ me { role } }", {"traceparent": header})
    trace_id = body["extensions"]["traceId"]
    assert trace_id != TRACE
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert parse_traceparent(response.headers["traceparent"]).trace_id == trace_id


def test_a_later_traceparent_version_is_read_by_its_first_fields():
    parsed = parse_traceparent(f"cc-{TRACE}-{PARENT}-01-what-the-future-holds")
    assert parsed is not None
    assert (parsed.trace_id, parsed.parent_id, parsed.flags) == (TRACE, PARENT, 1)


async def test_the_trace_id_is_in_the_extensions_of_errors_too(gateway):
    _, syntax = await post(gateway.acme, "{ me { ")
    _, missing = await post(gateway.acme, TRACE_QUERY, id="f" * 32)
    _, anonymous = await post(Caller(gateway.client, None, "", ""), "{ me { role } }")
    for body in (syntax, missing, anonymous):
        assert body["errors"]
        assert re.fullmatch(r"[0-9a-f]{32}", body["extensions"]["traceId"])
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_failed_request_is_an_error_span(gateway):
    _, body = await post(gateway.acme, 'query Missing { webhookSubscription(id: "whs_x") { id } }')
    trace_id = body["extensions"]["traceId"]
    trace = await stored_trace(gateway.acme, trace_id, services=3)
    root = trace["spans"][0]
    assert (root["name"], root["status"], root["errorCode"]) == ("Missing", "ERROR", "NOT_FOUND")
    (lookup,) = [s for s in trace["spans"] if s["service"] == "webhook-service"]
    assert (lookup["status"], lookup["errorCode"]) == ("ERROR", "NOT_FOUND")


async def test_traces_are_visible_to_their_tenant_only(gateway):
    _, body = await post(gateway.acme, "{ me { role } }")
    trace_id = body["extensions"]["traceId"]
    await stored_trace(gateway.acme, trace_id, services=2)
    error = await gateway.globex.error(TRACE_QUERY, {"id": trace_id})
    assert error["extensions"]["code"] == "NOT_FOUND"
    events = await gateway.globex.data(
        "{ telemetryEvents(first: 100) { edges { node { name } } } }"
    )
    assert "query me" not in [e["node"]["name"] for e in events["telemetryEvents"]["edges"]]


# ---------------------------------------------------------------------------- recordTelemetry


def reported(ms: float, **fields: Any) -> dict[str, Any]:
    return {
        "traceId": TRACE,
        "spanId": PARENT,
        "service": "agent-7",
        "name": "tool.call",
        "durationMs": ms,
        **fields,
    }


async def test_agents_record_spans_and_read_exact_summaries(gateway):
    for ms in range(1, 11):  # 1 .. 10 ms; the last one failed
        failed = {"status": "ERROR", "errorCode": "TOOL_FAILED"} if ms == 10 else {}
        data = await gateway.acme.data(RECORD, {"input": reported(float(ms), **failed)})
    assert data["recordTelemetry"]["service"] == "agent-7"
    summary = await gateway.acme.data(
        '{ telemetrySummary(service: "agent-7", sinceMinutes: 5) '
        "{ service count errorRate p50Ms p95Ms p99Ms busiestOperations { name count } } }"
    )
    # nearest rank of 10 sorted values: p50 -> rank 5, p95 and p99 -> rank 10
    assert summary["telemetrySummary"] == [
        {
            "service": "agent-7",
            "count": 10,
            "errorRate": 0.1,
            "p50Ms": 5.0,
            "p95Ms": 10.0,
            "p99Ms": 10.0,
            "busiestOperations": [{"name": "tool.call", "count": 10}],
        }
    ]
    failed = await gateway.acme.data(
        '{ telemetryEvents(service: "agent-7", status: ERROR) { edges { node { durationMs } } } }'
    )
    assert failed["telemetryEvents"]["edges"] == [{"node": {"durationMs": 10.0}}]
    assert (await gateway.globex.data('{ telemetrySummary(service: "agent-7") { count } }')) == {
        "telemetrySummary": []
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"traceId": "nope"}, "traceId"),
        ({"spanId": "0" * 16}, "spanId"),
        ({"durationMs": -5.0}, "durationMs"),
        ({"errorCode": "E"}, "errorCode"),
        ({"attributes": {"password": "hunter2"}}, "attributes.password"),
        ({"attributes": ["not", "an", "object"]}, "attributes"),
        ({"startedAt": "2999-01-01T00:00:00Z"}, "startedAt"),
    ],
    ids=[
        "bad-trace",
        "zero-span",
        "negative-duration",
        "code-without-error",
        "secret",
        "not-object",
        "future",
    ],
)
async def test_record_telemetry_names_the_bad_field(gateway, fields, field):
    error = await gateway.acme.error(RECORD, {"input": reported(1.0, **fields)})
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert error["extensions"]["field"] == field


async def test_viewers_read_telemetry_but_cannot_record_it(gateway):
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    error = await viewer.error(RECORD, {"input": reported(1.0)})
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert (await viewer.data("{ telemetrySummary { service } }"))["telemetrySummary"] is not None


async def test_recorded_telemetry_is_the_callers_tenant_only(gateway):
    await gateway.acme.data(RECORD, {"input": reported(3.0, traceId="ab" * 16)})
    error = await gateway.globex.error(TRACE_QUERY, {"id": "ab" * 16})
    assert error["extensions"]["code"] == "NOT_FOUND"
    (span,) = (await gateway.acme.data(TRACE_QUERY, {"id": "ab" * 16}))["trace"]["spans"]
    assert (span["service"], span["durationMs"]) == ("agent-7", 3.0)


# ---------------------------------------------------------------------------- metrics, tracing off


async def test_metrics_show_the_span_buffer(gateway):
    await gateway.acme.data("{ me { role } }")
    text = await (await gateway.client.get("/metrics")).text()
    assert "synapsex_spans_dropped_total 0" in text
    assert "synapsex_spans_recorded_total" in text


async def test_tracing_off_records_nothing(tmp_path, db_environ, aiohttp_client):
    environ = {**db_environ, "SYNAPSEX_TRACING": "false"}
    async with running_gateway(tmp_path, environ, aiohttp_client) as gateway:
        acme = gateway.acme
        response, body = await post(
            acme, "{ me { role } }", {"traceparent": f"00-{TRACE}-{PARENT}-01"}
        )
        assert body == {"data": {"me": {"role": "OWNER"}}}
        assert "traceparent" not in response.headers
        assert gateway.runtime.spans.statistics().recorded == 0
        events = await acme.data("{ telemetryEvents { edges { node { id } } } }")
        assert events == {"telemetryEvents": {"edges": []}}
