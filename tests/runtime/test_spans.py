"""Spans: the runtime records each traced message it handles in a bounded buffer that never
blocks; a request's scope gives its spans one trace, their parents, and the caller's tenant."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from synapsex.config import ConfigError
from synapsex.contracts import Message
from synapsex.contracts.errors import Conflict
from synapsex.runtime import (
    Actor,
    Runtime,
    SpanBuffer,
    SpanRecord,
    TraceScope,
    current_scope,
    handler,
)
from synapsex.runtime.spans import MAX_SPANS_PER_REQUEST, new_trace_id, tracing_enabled

from .support import Echo, Ping, Refuse, Relay, RelayActor, Slow, reset_echo

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(autouse=True)
def _reset():
    reset_echo()


def span(name: str = "Ping", **kw) -> SpanRecord:
    fields = {
        "trace_id": TRACE,
        "span_id": "00f067aa0ba902b7",
        "parent_span_id": None,
        "service": "echo-service",
        "name": name,
        "started_at_us": 1_000_000,
        "duration_us": 1_000,
    }
    return SpanRecord(**{**fields, **kw})


# ---------------------------------------------------------------------------- ids


def test_new_trace_ids_are_w3c_ids_led_by_the_time_and_random_on_the_right():
    before = time.time_ns() // 1_000_000
    ids = [new_trace_id() for _ in range(2_000)]
    after = time.time_ns() // 1_000_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert all(before <= int(i[:12], 16) <= after for i in ids)
    # the rightmost 7 bytes (W3C Level 2's random part) vary between ids made in one millisecond
    assert len({i[-14:] for i in ids}) == len(ids)
    assert ids == sorted(ids, key=lambda i: i[:12])  # new traces sort by start


# ---------------------------------------------------------------------------- the buffer


def test_a_full_buffer_drops_and_counts_instead_of_blocking():
    buffer = SpanBuffer(capacity=4)
    accepted = [buffer.offer(span(f"s{i}")) for i in range(6)]
    assert accepted == [True, True, True, True, False, False]
    stats = buffer.statistics()
    assert (stats.buffered, stats.recorded, stats.dropped) == (4, 4, 2)
    assert [s.name for s in buffer.take(3)] == ["s0", "s1", "s2"]
    assert buffer.offer(span("s6"))
    assert [s.name for s in buffer.take(10)] == ["s3", "s6"]


def test_the_buffer_asks_to_be_drained_when_half_full():
    buffer = SpanBuffer(capacity=4)
    buffer.offer(span())
    assert not buffer.wanted.is_set()
    buffer.offer(span())
    assert buffer.wanted.is_set()
    buffer.take(1)
    assert not buffer.wanted.is_set()


def test_the_buffer_renders_its_counters_for_prometheus():
    buffer = SpanBuffer(capacity=2)
    for _ in range(3):
        buffer.offer(span())
    text = buffer.render_prometheus()
    assert "synapsex_spans_recorded_total 2\n" in text
    assert "synapsex_spans_dropped_total 1\n" in text
    assert "synapsex_spans_buffered 2\n" in text
    assert "# TYPE synapsex_spans_dropped_total counter" in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", True), ("true", True), ("1", True), ("ON", True), ("false", False), ("0", False)],
    ids=["unset", "true", "one", "on", "false", "zero"],
)
def test_tracing_switch_reads_the_environment(value, expected):
    assert tracing_enabled({"SYNAPSEX_TRACING": value}) is expected


def test_tracing_switch_refuses_what_it_cannot_read():
    with pytest.raises(ConfigError, match="SYNAPSEX_TRACING"):
        tracing_enabled({"SYNAPSEX_TRACING": "maybe"})


def test_a_request_holds_at_most_its_share_of_spans():
    buffer = SpanBuffer(capacity=10 * MAX_SPANS_PER_REQUEST)
    scope = TraceScope(buffer)
    for _ in range(MAX_SPANS_PER_REQUEST + 5):
        scope.record(span())
    scope.close(None, "ten_a")
    assert (len(buffer), buffer.dropped) == (MAX_SPANS_PER_REQUEST, 5)


# ---------------------------------------------------------------------------- the runtime


async def traced(rt: Runtime, message: Message, tenant_id: str | None = "ten_a"):
    """Ask ``message`` inside a request scope, close it; the reply and the scope."""
    scope = TraceScope(rt.spans, trace_id=TRACE, parent_span_id="b7ad6b7169203331")
    token = current_scope.set(scope)
    try:
        reply = await rt.ask(message)
    finally:
        current_scope.reset(token)
        scope.close(None, tenant_id)
    return reply, scope


async def test_a_request_scope_records_a_span_per_message_with_its_parent(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo, RelayActor]) as rt:
        reply, scope = await traced(rt, Relay(inner=Ping(text="hi")))
        assert reply == "hi"
        ping, relay = rt.spans.take(10)  # in the order they ended: the inner one first
    assert (relay.service, relay.name, ping.service, ping.name) == (
        "relay-service",
        "Relay",
        "echo-service",
        "Ping",
    )
    assert {relay.trace_id, ping.trace_id} == {TRACE}
    assert relay.parent_span_id == scope.span_id  # the request's own span
    assert ping.parent_span_id == relay.span_id  # the message that caused it
    assert len({scope.span_id, relay.span_id, ping.span_id}) == 3
    assert (relay.tenant_id, ping.tenant_id) == ("ten_a", "ten_a")
    assert (relay.status, relay.error_code) == ("OK", None)
    assert relay.attributes == {"message.kind": "ask", "message.attempt": 1}
    assert relay.duration_us >= ping.duration_us > 0


async def test_a_failed_handler_records_an_error_span_with_its_code(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo]) as rt:
        with pytest.raises(Conflict):
            await traced(rt, Refuse(reason="no"))
        (refused,) = rt.spans.take(10)
    assert (refused.status, refused.error_code) == ("ERROR", "CONFLICT")


async def test_messages_outside_requests_are_not_traced(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo, RelayActor]) as rt:
        await rt.ask(Relay(inner=Ping(text="tick")))
        await rt.tell(Ping(text="timer"))
        await rt.ask(Ping(text="after"))  # handled after the tell: one message at a time
        assert rt.spans.statistics().recorded == 0


async def test_a_message_given_a_trace_is_recorded_as_platform_work(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo]) as rt:
        await rt.ask(Ping(text="x"), trace_id=TRACE)
        (recorded,) = rt.spans.take(10)
    assert (recorded.trace_id, recorded.parent_span_id, recorded.tenant_id) == (TRACE, None, None)


async def test_an_untraced_service_records_nothing(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo, RelayActor]) as rt:
        rt.spans.untrace("echo-service")
        await traced(rt, Relay(inner=Ping(text="hi")))
        assert [s.service for s in rt.spans.take(10)] == ["relay-service"]


async def test_tracing_off_records_nothing(tmp_path):
    environ = {"SYNAPSEX_TRACING": "false"}
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo], environ=environ) as rt:
        assert rt.spans.enabled is False
        await traced(rt, Ping(text="x"))
        await rt.ask(Ping(text="y"), trace_id=TRACE)
        assert rt.spans.statistics().recorded == 0


async def test_a_full_buffer_never_slows_handling_and_is_counted_in_metrics(tmp_path):
    buffer = SpanBuffer(capacity=2)
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo], spans=buffer) as rt:
        replies = [await rt.ask(Ping(text=str(i)), trace_id=TRACE) for i in range(5)]
        assert replies == ["0", "1", "2", "3", "4"]
        stats = rt.spans.statistics()
        assert (stats.buffered, stats.recorded, stats.dropped) == (2, 2, 3)
        assert "synapsex_spans_dropped_total 3\n" in rt.metrics_text()


# ---------------------------------------------------------------------------- work that outlives


class Kick(Message, service="kicker-service"):
    """Tell ``Echo`` a ping and reply at once (the ping is handled later)."""


class Loop(Message, service="kicker-service"):
    """Tell itself again, ``left`` more times (a self-perpetuating timer)."""

    left: int


class Kicker(Actor, service="kicker-service"):
    done: asyncio.Event | None = None

    @handler
    async def kick(self, msg: Kick) -> str:
        await self.actor_runtime.tell(Ping(text="later"))
        return "kicked"

    @handler
    async def loop(self, msg: Loop) -> None:
        if msg.left:
            await self.actor_runtime.tell(Loop(left=msg.left - 1))
        elif type(self).done is not None:
            type(self).done.set()


async def test_a_tell_handled_after_the_request_ended_still_joins_its_trace(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo, Kicker]) as rt:
        Echo.gates["hold"] = gate = asyncio.Event()
        await rt.tell(Slow(text="busy", gate="hold"))  # echo-service is busy until released
        _, scope = await traced(rt, Kick())
        (kick,) = rt.spans.take(10)  # the request ended: its spans were handed over
        gate.set()
        await rt.ask(Ping(text="sync"))  # handled after "later": one message at a time
        (later,) = rt.spans.take(10)
    assert (kick.name, later.trace_id, later.parent_span_id) == ("Kick", TRACE, kick.span_id)
    assert later.tenant_id == "ten_a"
    assert not scope.is_open


async def test_what_a_request_work_sends_after_the_request_ended_is_not_traced(tmp_path):
    Kicker.done = asyncio.Event()
    async with Runtime.embedded(data_dir=tmp_path, actors=[Kicker]) as rt:
        scope = TraceScope(rt.spans, trace_id=TRACE)
        token = current_scope.set(scope)
        await rt.tell(Loop(left=3))
        current_scope.reset(token)
        scope.close(None, "ten_a")
        await asyncio.wait_for(Kicker.done.wait(), 5)
        recorded = rt.spans.take(10)
    # the first Loop was sent inside the request; the ones it sent after it ended are not traced
    assert [s.name for s in recorded] == ["Loop"]
