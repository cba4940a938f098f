"""Spans: what the runtime records of each traced message, in a bounded in-process buffer.

Design choices:

* Recording never waits and never does I/O. When a traced message has been handled, its cell
  builds a :class:`SpanRecord` and appends it to the :class:`SpanBuffer` (a deque). A full buffer
  drops the span and counts it (``dropped``, in the Prometheus output); nothing ever blocks.
* Someone else drains the buffer: the observability-service takes batches on a timer, and at once
  when the buffer is half full (:attr:`SpanBuffer.wanted` is set then).
* A gateway request opens a :class:`TraceScope` (a context variable): the envelopes the request
  sends carry it, so the messages it causes share its trace id and their first hop's parent is the
  request's own span. The scope holds its spans until the request ends, because the caller's
  tenant, which the spans belong to, is known only once the request has authenticated.
* A message is traced when it is sent inside an open scope, or given a trace id explicitly
  (``ask(..., trace_id=...)``), or sent by the handler of a traced message (within
  :data:`MAX_TRACE_HOPS` hops and, for a request's work, while the request is open: a tell that a
  request's work sends after the request ended, such as a self-perpetuating timer, starts no new
  spans). Timers and internal ticks outside any request are not traced.
* A service can opt out of being recorded (:meth:`SpanBuffer.untrace`); the observability-service
  does, so storing spans never records spans (no feedback loop).

``SYNAPSEX_TRACING`` (default ``true``) turns the whole thing off: nothing is recorded.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections import deque
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from random import getrandbits
from typing import Any

from synapsex.config.errors import ConfigError

TRACING_ENV = "SYNAPSEX_TRACING"
#: spans kept in memory at most, waiting to be stored
DEFAULT_CAPACITY = 10_000
#: spans one request holds at most until it ends (the rest are dropped and counted)
MAX_SPANS_PER_REQUEST = 1_000
#: how many hops a trace without a request scope is followed from message to message
MAX_TRACE_HOPS = 64

#: a span's name is cut to this many characters
MAX_NAME = 200

OK = "OK"
ERROR = "ERROR"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
#: compact JSON (one encoder: ``json.dumps`` with options builds a new one per call)
_to_json = json.JSONEncoder(separators=(",", ":")).encode


def new_trace_id() -> str:
    """A W3C trace id: 32 lower-case hex digits, never all zero, led by the time.

    The first 12 digits are the Unix time in milliseconds and the other 20 (80 bits) are
    random, so ids are unique and their rightmost 7 bytes random as W3C Trace Context Level 2
    asks, while new traces sort by start. That is what keeps storing spans cheap: each new
    trace id lands at the end of the ``trace_id`` index instead of on a random page of it
    (on SQLite, a span with a random id cost 17 µs to store, a time-led one 8 µs)."""
    value = (time.time_ns() // 1_000_000) << 80 | getrandbits(80)
    return value.to_bytes(16, "big").hex()


def new_span_id() -> str:
    """A W3C span id: 16 lower-case hex digits, never all zero."""
    return (getrandbits(64) or 1).to_bytes(8, "big").hex()


def tracing_enabled(environ: Mapping[str, str]) -> bool:
    """``SYNAPSEX_TRACING`` as a boolean (default on); :class:`ConfigError` when unreadable."""
    text = environ.get(TRACING_ENV, "").strip().lower()
    if not text or text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(TRACING_ENV, f"{text!r} is not true or false")


@functools.lru_cache(maxsize=64)
def message_attributes(kind: str, attempt: int) -> str:
    """The attributes of a handled message's span as JSON, made once per kind and attempt and
    shared by every such span."""
    return _to_json({"message.kind": kind, "message.attempt": attempt})


class SpanRecord:
    """One finished span, in the terms it is stored in: times are epoch microseconds (start)
    and microseconds (duration), the attributes are a JSON object.

    A span is recorded for every traced message, so it is made cheaply: positional or keyword
    arguments, no copies, the attributes' JSON made once per kind of span (see
    :func:`message_attributes`). ``attributes`` hold safe metadata only (the message kind, the
    attempt, HTTP facts), never a message's fields. ``tenant_id`` is ``None`` for
    platform-level work; a request's spans get theirs when the request ends."""

    __slots__ = (
        "attributes_json",
        "duration_us",
        "error_code",
        "name",
        "parent_span_id",
        "service",
        "span_id",
        "started_at_us",
        "status",
        "tenant_id",
        "trace_id",
    )

    def __init__(
        self,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None,
        service: str,
        name: str,
        started_at_us: int,
        duration_us: int,
        error_code: str | None = None,
        attributes_json: str = "{}",
        tenant_id: str | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.service = service
        self.name = name[:MAX_NAME]
        self.started_at_us = started_at_us
        self.duration_us = duration_us
        self.status = ERROR if error_code else OK
        self.error_code = error_code
        self.attributes_json = attributes_json
        self.tenant_id = tenant_id

    @property
    def attributes(self) -> dict[str, Any]:
        return json.loads(self.attributes_json)

    def __repr__(self) -> str:
        return (
            f"SpanRecord({self.service} {self.name} trace={self.trace_id} span={self.span_id} "
            f"parent={self.parent_span_id} {self.status})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SpanStatistics:
    """A snapshot of the span buffer."""

    enabled: bool
    capacity: int
    buffered: int
    #: spans accepted into the buffer since start
    recorded: int
    #: spans dropped because the buffer (or a request's share) was full
    dropped: int


class SpanBuffer:
    """The bounded buffer between the cells that record spans and whoever stores them.

    Nothing here waits: :meth:`offer` drops (and counts) when full, :meth:`take` returns what
    is there. Only the event loop's thread uses it."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, enabled: bool = True) -> None:
        if capacity < 2:
            raise ValueError("a span buffer holds at least 2 spans")
        self.capacity = capacity
        self.enabled = enabled
        self.recorded = 0
        self.dropped = 0
        self._half = capacity // 2
        self._spans: deque[SpanRecord] = deque()
        self._untraced: set[str] = set()
        #: set when the buffer is at least half full: time to store a batch
        self.wanted = asyncio.Event()

    def __len__(self) -> int:
        return len(self._spans)

    def traces(self, service: str) -> bool:
        """Whether the handling of ``service``'s traced messages is recorded."""
        return self.enabled and service not in self._untraced

    def untrace(self, service: str) -> None:
        """Never record spans of ``service``'s messages (the service storing spans calls it)."""
        self._untraced.add(service)

    def offer(self, span: SpanRecord) -> bool:
        """Append ``span`` unless the buffer is full (then it is dropped and counted)."""
        spans = self._spans
        if len(spans) >= self.capacity:
            self.dropped += 1
            return False
        spans.append(span)
        self.recorded += 1
        if len(spans) >= self._half and not self.wanted.is_set():
            self.wanted.set()
        return True

    def offer_all(self, spans: list[SpanRecord]) -> None:
        """Append ``spans``, as many as there is room for (the rest are dropped and counted)."""
        buffered = self._spans
        room = self.capacity - len(buffered)
        if room < len(spans):
            self.dropped += len(spans) - max(room, 0)
            spans = spans[: max(room, 0)]
        buffered.extend(spans)
        self.recorded += len(spans)
        if len(buffered) >= self._half and not self.wanted.is_set():
            self.wanted.set()

    def count_dropped(self, n: int = 1) -> None:
        self.dropped += n

    def take(self, limit: int) -> list[SpanRecord]:
        """Up to ``limit`` spans, oldest first, removed from the buffer."""
        spans = self._spans
        batch = [spans.popleft() for _ in range(min(limit, len(spans)))]
        if len(spans) < self._half:
            self.wanted.clear()
        return batch

    def statistics(self) -> SpanStatistics:
        return SpanStatistics(
            enabled=self.enabled,
            capacity=self.capacity,
            buffered=len(self._spans),
            recorded=self.recorded,
            dropped=self.dropped,
        )

    def render_prometheus(self) -> str:
        """The buffer's counters in the Prometheus text format."""
        s = self.statistics()
        return (
            "# HELP synapsex_spans_recorded_total Spans accepted into the span buffer.\n"
            "# TYPE synapsex_spans_recorded_total counter\n"
            f"synapsex_spans_recorded_total {s.recorded}\n"
            "# HELP synapsex_spans_dropped_total Spans dropped because the buffer was full.\n"
            "# TYPE synapsex_spans_dropped_total counter\n"
            f"synapsex_spans_dropped_total {s.dropped}\n"
            "# HELP synapsex_spans_buffered Spans waiting in the buffer to be stored.\n"
            "# TYPE synapsex_spans_buffered gauge\n"
            f"synapsex_spans_buffered {s.buffered}\n"
            "# HELP synapsex_spans_buffer_capacity Spans the buffer holds at most.\n"
            "# TYPE synapsex_spans_buffer_capacity gauge\n"
            f"synapsex_spans_buffer_capacity {s.capacity}\n"
        )


class TraceScope:
    """One traced request: its trace id, its own (root) span id, the parent it continues (from a
    ``traceparent`` header), and the spans of the messages handled for it.

    Open a scope with :meth:`enter` (the envelopes sent meanwhile carry it) and end it with
    :meth:`close`, which gives every span the request's tenant and hands them to the buffer.
    Spans finished after the close go to the buffer at once."""

    __slots__ = ("_held", "buffer", "is_open", "parent_span_id", "span_id", "tenant_id", "trace_id")

    def __init__(
        self,
        buffer: SpanBuffer,
        *,
        trace_id: str | None = None,
        parent_span_id: str | None = None,
    ) -> None:
        self.buffer = buffer
        self.trace_id = trace_id or new_trace_id()
        self.span_id = new_span_id()
        self.parent_span_id = parent_span_id
        self.tenant_id: str | None = None
        self._held: list[SpanRecord] | None = []
        #: until :meth:`close`: the spans of the request's messages are held
        self.is_open = True

    def record(self, span: SpanRecord) -> None:
        """Keep ``span`` until the request ends (or hand it over now if it has ended)."""
        held = self._held
        if held is None:
            span.tenant_id = self.tenant_id
            self.buffer.offer(span)
        elif len(held) < MAX_SPANS_PER_REQUEST:
            held.append(span)
        else:
            self.buffer.count_dropped()

    def close(self, root: SpanRecord | None, tenant_id: str | None) -> None:
        """End the request: its spans (and ``root``, the request's own) belong to ``tenant_id``
        (``None``: platform-level) and go to the buffer."""
        held, self._held = self._held or [], None
        self.is_open = False
        self.tenant_id = tenant_id
        if root is not None:
            held.insert(0, root)
        for span in held:
            span.tenant_id = tenant_id
        self.buffer.offer_all(held)


#: the request being traced in this task (the gateway sets it for each HTTP request)
current_scope: ContextVar[TraceScope | None] = ContextVar("synapsex_trace_scope", default=None)
