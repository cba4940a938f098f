"""Request tracing at the gateway: W3C ``traceparent`` in and out, and the request's root span.

Every HTTP request to ``/graphql`` starts a trace, or continues the one its ``traceparent``
header names when the header is valid (W3C Trace Context: ``version-traceid-parentid-flags``;
an invalid header is ignored and a new trace starts). The request's own span is the root of what
it causes: each message the resolvers send carries the trace, and the runtime records a span per
message handled (see :mod:`synapsex.runtime.spans`). The response carries a ``traceparent``
naming the request's span, and its GraphQL ``extensions.traceId`` (see ``GatewayExtension``).

WebSocket connections are not traced (a connection lives for hours; its operations are not
requests). With ``SYNAPSEX_TRACING=false`` nothing here runs.
"""

from __future__ import annotations

import functools
import json
import re
import time
from typing import NamedTuple

from aiohttp import web

from synapsex.graphql import keys
from synapsex.graphql.context import GatewayContext
from synapsex.runtime import SpanBuffer, SpanRecord, TraceScope, current_scope

GATEWAY_SERVICE = "api-gateway"
TRACEPARENT = "traceparent"

_HEX2 = re.compile(r"[0-9a-f]{2}")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_PARENT_ID = re.compile(r"[0-9a-f]{16}")


class TraceParent(NamedTuple):
    trace_id: str
    parent_id: str
    flags: int


def parse_traceparent(header: str | None) -> TraceParent | None:
    """The fields of a valid W3C ``traceparent`` header, else ``None``.

    Version ``00`` is exactly ``00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>``; a higher
    version (not ``ff``) is read by its first four fields and may carry more after a ``-``, as
    the specification asks. Hex digits are lower case; an all-zero trace or parent id is
    invalid."""
    if not header:
        return None
    value = header.strip(" \t")
    version = value[:2]
    if not _HEX2.fullmatch(version) or version == "ff":
        return None
    if version == "00" and len(value) != 55:
        return None
    if len(value) < 55 or (len(value) > 55 and value[55] != "-"):
        return None
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    trace_id, parent_id, flags = value[3:35], value[36:52], value[53:55]
    if not _TRACE_ID.fullmatch(trace_id) or trace_id == "0" * 32:
        return None
    if not _PARENT_ID.fullmatch(parent_id) or parent_id == "0" * 16:
        return None
    if not _HEX2.fullmatch(flags):
        return None
    return TraceParent(trace_id, parent_id, int(flags, 16))


class RequestTrace:
    """A traced request in progress: its scope, entered in the request's task."""

    __slots__ = ("scope", "token")

    def __init__(self, scope: TraceScope) -> None:
        self.scope = scope
        self.token = current_scope.set(scope)

    def header(self) -> str:
        """The ``traceparent`` the response carries: the request's own span, sampled."""
        scope = self.scope
        return f"00-{scope.trace_id}-{scope.span_id}-01"

    def end(
        self,
        request: web.Request,
        status: int,
        elapsed: float,
        ctx: GatewayContext | None,
    ) -> None:
        """Leave the scope and hand the request's spans over with its own (root) span, owned
        by the caller's tenant. ``ctx`` is the request's GraphQL context, if it got that far."""
        current_scope.reset(self.token)
        scope = self.scope
        codes = ctx.error_codes if ctx is not None else None
        error_code = codes[0] if codes else (f"HTTP_{status}" if status >= 400 else None)
        name = (ctx.operation_name if ctx is not None else None) or f"{request.method} /graphql"
        duration_us = int(elapsed * 1_000_000)
        request_id = request[keys.REQUEST_ID]
        root = SpanRecord(
            scope.trace_id,
            scope.span_id,
            scope.parent_span_id,
            GATEWAY_SERVICE,
            name,
            time.time_ns() // 1000 - duration_us,
            duration_us,
            error_code,
            f'{_root_attributes(request.method, status)},"request.id":"{request_id}"}}',
        )
        scope.close(root, ctx.tenant_id if ctx is not None else None)


@functools.lru_cache(maxsize=64)
def _root_attributes(method: str, status: int) -> str:
    """The JSON of a request span's attributes but the request id, without the closing brace
    (the request id, made by the gateway, needs no escaping)."""
    attributes = {
        "http.request.method": method,
        "url.path": "/graphql",
        "http.response.status_code": status,
    }
    return json.dumps(attributes, separators=(",", ":"))[:-1]


def start_trace(spans: SpanBuffer, request: web.Request) -> RequestTrace | None:
    """Trace ``request`` when tracing is on and it is GraphQL over HTTP (``/graphql``, not a
    WebSocket): continue its valid ``traceparent``, else start a new trace. The gateway's one
    middleware calls it (and :meth:`RequestTrace.end`), rather than a middleware of its own:
    each aiohttp middleware costs every request a wrapper."""
    if not spans.enabled or request.path != "/graphql":
        return None
    headers = request.headers
    if request.method != "POST" and headers.get("Upgrade", "").lower() == "websocket":
        return None
    incoming = parse_traceparent(headers.get(TRACEPARENT))
    if incoming is None:
        return RequestTrace(TraceScope(spans))
    return RequestTrace(
        TraceScope(spans, trace_id=incoming.trace_id, parent_span_id=incoming.parent_id)
    )
