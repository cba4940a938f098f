"""The aiohttp application: ``/graphql``, ``/healthz``, ``/readyz``, ``/metrics`` and
``/artifacts/{id}`` (:mod:`synapsex.graphql.artifact_download`).

Every request gets a request id (``X-Request-Id`` in the response) and one structured log line:
request id, method, path, operation, tenant, trace id, status, outcome and duration. GraphQL
requests over HTTP are traced (``traceparent`` in and out; see :mod:`synapsex.graphql.tracing`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from synapsex.graphql import artifact_download, keys
from synapsex.graphql.metrics import RequestMetrics
from synapsex.graphql.schema import build_schema
from synapsex.graphql.tracing import TRACEPARENT, start_trace
from synapsex.graphql.view import GatewayView
from synapsex.runtime import Runtime, new_id

log = structlog.get_logger("synapsex.gateway")

MAX_BODY_BYTES = 1024 * 1024
RUNTIME_KEY = web.AppKey("runtime", Runtime)
METRICS_KEY = web.AppKey("metrics", RequestMetrics)


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """How the gateway serves: WebSocket ping interval and allowed browser origins."""

    heartbeat_seconds: float = 20.0
    allowed_origins: tuple[str, ...] = field(default=())
    graphiql: bool = True


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = new_id("req")
    request[keys.REQUEST_ID] = request_id
    trace = start_trace(request.app[RUNTIME_KEY].spans, request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["X-Request-Id"] = request_id
            if trace is not None:
                response.headers[TRACEPARENT] = trace.header()
        return response
    except web.HTTPException as exc:
        status = exc.status
        if trace is not None:
            exc.headers[TRACEPARENT] = trace.header()
        raise
    finally:
        elapsed = time.perf_counter() - started
        ctx = request.get(keys.CONTEXT)
        if trace is not None:
            trace.end(request, status, elapsed, ctx)
        operation = (ctx.operation_name if ctx else None) or "-"
        outcome = (ctx.error_codes[0] if ctx and ctx.error_codes else None) or (
            "ok" if status < 400 else f"http_{status}"
        )
        if request.path == "/graphql" and ctx is not None:
            request.app[METRICS_KEY].observe(operation, outcome, elapsed)
        log.info(
            "request",
            request_id=request_id,
            method=request.method,
            path=request.path,
            operation=operation,
            tenant_id=ctx.tenant_id if ctx else None,
            trace_id=ctx.trace_id if ctx else None,
            status=status,
            outcome=outcome,
            duration_ms=round(elapsed * 1000, 3),
        )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    not_ready = runtime.not_ready() if runtime.state.value == "running" else runtime.services
    body = {"ready": runtime.ready, "state": runtime.state.value, "notReady": not_ready}
    if runtime.failure:
        body["failure"] = runtime.failure
    return web.json_response(body, status=200 if runtime.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    text = request.app[RUNTIME_KEY].metrics_text() + request.app[METRICS_KEY].render()
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


def create_app(runtime: Runtime, config: GatewayConfig | None = None) -> web.Application:
    """The gateway application over a started (or about to start) runtime."""
    config = config or GatewayConfig()
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[request_log],
    )
    app[RUNTIME_KEY] = runtime
    app[METRICS_KEY] = RequestMetrics()
    view = GatewayView(
        schema=build_schema(),
        runtime=runtime,
        heartbeat=config.heartbeat_seconds,
        allowed_origins=config.allowed_origins,
        graphql_ide="graphiql" if config.graphiql else None,
    )
    app.router.add_route("*", "/graphql", view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    # GET /artifacts/{id}, and bodies past MAX_BODY_BYTES for uploadArtifact only
    artifact_download.install(app, runtime, body_limit=MAX_BODY_BYTES)
    return app
