"""observability-service: operational telemetry and trace-level debugging.

It keeps **spans** (one unit of timed work in a trace: a gateway request, an actor handling a
message, a tool call an agent reports) and **events** (a point in time, optionally linked to a
trace) in ``telemetry_events``, each owned by a tenant; work done for no tenant is platform-level
and visible to no tenant. The runtime's spans reach the service through the in-process span
buffer (see ``synapsex.runtime.spans``); agents and VMs send their own with
:class:`RecordTelemetry`.

Telemetry is not the audit trail (who did what, hash-chained, ``audit-service``) nor the event bus
(operational events that drive workflows, ``event-bus-service``). It never holds secrets:
attributes are safe metadata, and keys that name a secret are refused.

Ids follow W3C Trace Context: a trace id is 32 lower-case hex digits, a span id 16, neither all
zero. Durations are milliseconds; percentiles are exact, by the nearest-rank method.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime
from typing import Any, Literal

from synapsex.contracts.common import PageRequest, check_choice, check_text
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply

SERVICE = "observability-service"

TelemetryKind = Literal["span", "event"]
KINDS: tuple[str, ...] = ("span", "event")
TelemetryStatus = Literal["OK", "ERROR"]
STATUSES: tuple[str, ...] = ("OK", "ERROR")

MAX_SERVICE_LENGTH = 100
MAX_NAME_LENGTH = 200
MAX_ERROR_CODE_LENGTH = 64
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_KEY_LENGTH = 100
MAX_ATTRIBUTE_TEXT_LENGTH = 1_000
MAX_ATTRIBUTES_BYTES = 8_192
#: a span lasts at most a day
MAX_DURATION_MS = 86_400_000.0
#: spans of one trace returned at most
MAX_TRACE_SPANS = 1_000
#: the longest window a summary covers (7 days)
MAX_SUMMARY_MINUTES = 7 * 24 * 60
#: operations listed per service in a summary
BUSIEST_OPERATIONS = 5

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.:-]+")
#: attribute keys that name a secret (a whole segment: ``gen_ai.usage.input_tokens`` is fine)
_SECRET_KEY = re.compile(
    r"(^|[._-])(password|passwd|secret|token|authorization|api[_-]?key|cookie|credentials?|"
    r"private[_-]?key)($|[._-])",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------------- checks


def check_trace_id(value: str, field: str = "traceId") -> None:
    if not _TRACE_ID.fullmatch(value) or value == "0" * 32:
        raise InvalidInput(field, "must be 32 lower-case hex digits, not all zero")


def check_span_id(value: str, field: str = "spanId") -> None:
    if not _SPAN_ID.fullmatch(value) or value == "0" * 16:
        raise InvalidInput(field, "must be 16 lower-case hex digits, not all zero")


def check_attributes(attributes: dict[str, Any], field: str = "attributes") -> None:
    """Flat safe metadata: at most 32 keys, scalar values, 8 KiB as JSON, no secret-like keys."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidInput(field, f"must have at most {MAX_ATTRIBUTES} keys")
    for key, value in attributes.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_ATTRIBUTE_KEY_LENGTH:
            raise InvalidInput(field, f"keys must be 1 to {MAX_ATTRIBUTE_KEY_LENGTH} characters")
        if _SECRET_KEY.search(key):
            raise InvalidInput(
                f"{field}.{key}", "looks like a secret; telemetry must never carry secrets"
            )
        if isinstance(value, str):
            if len(value) > MAX_ATTRIBUTE_TEXT_LENGTH:
                raise InvalidInput(
                    f"{field}.{key}", f"must be at most {MAX_ATTRIBUTE_TEXT_LENGTH} characters"
                )
        elif value is not None and not isinstance(value, bool | int | float):
            raise InvalidInput(f"{field}.{key}", "must be a string, number, boolean or null")
        elif isinstance(value, float) and value != value:  # NaN
            raise InvalidInput(f"{field}.{key}", "must be a finite number")
    try:
        size = len(json.dumps(attributes, allow_nan=False).encode())
    except ValueError:
        raise InvalidInput(field, "numbers must be finite") from None
    if size > MAX_ATTRIBUTES_BYTES:
        raise InvalidInput(field, f"must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON")


# ---------------------------------------------------------------------------- replies


class TelemetryEventView(Reply):
    """A span or an event. ``duration_ms`` is ``None`` for events."""

    id: str
    kind: TelemetryKind
    trace_id: str | None
    span_id: str | None
    parent_span_id: str | None
    service: str
    name: str
    started_at: datetime
    duration_ms: float | None
    status: TelemetryStatus
    error_code: str | None
    attributes: dict[str, Any]


class TraceView(Reply):
    """One trace as the tenant sees it: its spans and events, earliest first."""

    trace_id: str
    spans: tuple[TelemetryEventView, ...]


class OperationCount(Reply):
    name: str
    count: int


class ServiceSummary(Reply):
    """One service's spans in a window: how many, the share that failed, and exact
    nearest-rank latency percentiles (``None`` when there were none)."""

    service: str
    count: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    busiest_operations: tuple[OperationCount, ...]


# ---------------------------------------------------------------------------- messages


class RecordTelemetry(Message, service=SERVICE):
    """Store a span or event an agent or VM reports for ``tenant_id``; replies
    :class:`TelemetryEventView`. A span needs ``trace_id``, ``span_id`` and ``duration_ms``; an
    event has no duration and may name the trace and span it belongs to. ``started_at`` defaults
    to now; it may not be more than 5 minutes ahead, nor older than the retention."""

    tenant_id: str
    kind: TelemetryKind = "span"
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    #: the reporting service (``service`` is taken: it names the owner of a message type)
    service_name: str
    name: str
    started_at: datetime | None = None
    duration_ms: float | None = None
    status: TelemetryStatus = "OK"
    #: why it failed; only with status ``ERROR``
    error_code: str | None = None
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        check_choice(self.kind, KINDS, "kind")
        check_choice(self.status, STATUSES, "status")
        check_text(self.service_name, "service", max_length=MAX_SERVICE_LENGTH)
        check_text(self.name, "name", max_length=MAX_NAME_LENGTH)
        if self.trace_id is not None:
            check_trace_id(self.trace_id)
        if self.span_id is not None:
            check_span_id(self.span_id)
        if self.parent_span_id is not None:
            check_span_id(self.parent_span_id, "parentSpanId")
            if self.span_id is None:
                raise InvalidInput("spanId", "is required with parentSpanId")
        if self.kind == "span":
            self._validate_span()
        elif self.duration_ms is not None:
            raise InvalidInput("durationMs", "an event has no duration")
        elif self.span_id is not None and self.trace_id is None:
            raise InvalidInput("traceId", "is required with spanId")
        if self.error_code is not None:
            if self.status != "ERROR":
                raise InvalidInput("errorCode", "is only given with status ERROR")
            check_text(self.error_code, "errorCode", max_length=MAX_ERROR_CODE_LENGTH)
            if not _ERROR_CODE.fullmatch(self.error_code):
                raise InvalidInput("errorCode", "must be letters, digits, _ . : or -")
        check_attributes(self.attributes)

    def _validate_span(self) -> None:
        if self.trace_id is None:
            raise InvalidInput("traceId", "is required for a span")
        if self.span_id is None:
            raise InvalidInput("spanId", "is required for a span")
        if self.parent_span_id == self.span_id:
            raise InvalidInput("parentSpanId", "must differ from spanId")
        if self.duration_ms is None:
            raise InvalidInput("durationMs", "is required for a span")
        if not 0 <= self.duration_ms <= MAX_DURATION_MS:
            raise InvalidInput("durationMs", f"must be between 0 and {MAX_DURATION_MS:.0f}")


class GetTrace(Message, service=SERVICE):
    """The tenant's spans and events of one trace (at most 1,000, earliest first); ``NotFound``
    when the tenant has none."""

    tenant_id: str
    trace_id: str

    def validate(self) -> None:
        check_trace_id(self.trace_id)


class ListTelemetryEvents(PageRequest, service=SERVICE):
    """Replies ``Page[TelemetryEventView]``, oldest first, filtered by what is given."""

    tenant_id: str
    service_name: str | None = None
    since: datetime | None = None
    status: TelemetryStatus | None = None

    def validate(self) -> None:
        super().validate()
        if self.service_name is not None:
            check_text(self.service_name, "service", max_length=MAX_SERVICE_LENGTH)


class SummarizeTelemetry(Message, service=SERVICE):
    """One :class:`ServiceSummary` per service with spans in the last ``since_minutes`` (or
    only ``service_name``'s), busiest first."""

    tenant_id: str
    service_name: str | None = None
    since_minutes: int = 60

    def validate(self) -> None:
        if self.service_name is not None:
            check_text(self.service_name, "service", max_length=MAX_SERVICE_LENGTH)
        if not 1 <= self.since_minutes <= MAX_SUMMARY_MINUTES:
            raise InvalidInput("sinceMinutes", f"must be between 1 and {MAX_SUMMARY_MINUTES}")


class PruneTelemetry(Message, service=SERVICE):
    """Delete what is older than the retention (every tenant, in one statement); replies how
    many rows went. The service also prunes on its own every minute."""


__all__ = [
    "BUSIEST_OPERATIONS",
    "KINDS",
    "MAX_SUMMARY_MINUTES",
    "MAX_TRACE_SPANS",
    "SERVICE",
    "STATUSES",
    "GetTrace",
    "ListTelemetryEvents",
    "OperationCount",
    "PruneTelemetry",
    "RecordTelemetry",
    "ServiceSummary",
    "SummarizeTelemetry",
    "TelemetryEventView",
    "TelemetryKind",
    "TelemetryStatus",
    "TraceView",
    "check_attributes",
    "check_span_id",
    "check_trace_id",
]
