"""The GraphQL view: Strawberry's aiohttp view plus what GraphQL over HTTP asks beyond it.

* ``application/graphql-response+json`` when the client accepts it (else ``application/json``).
* Request errors (bad JSON, no query, syntax, validation, limits) are answered without a
  ``data`` entry and, under ``application/graphql-response+json``, with HTTP 400; every error
  body is a GraphQL error body, never a bare text or a 500.
* WebSocket: ``connection_init`` payload ``{"authorization": "Bearer <key>"}`` (or the handshake's
  ``Authorization`` header) authenticates the socket; a bad key closes it with 4403. aiohttp
  sends WebSocket pings (``heartbeat``), which Strawberry's graphql-transport-ws does not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web
from cross_web import HTTPException
from strawberry.aiohttp.views import GraphQLView
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult

from synapsex.contracts.errors import ContractError
from synapsex.graphql import keys
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.tracing import parse_traceparent
from synapsex.runtime import Runtime, current_scope, new_id

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def response_media_type(accept: str | None) -> str:
    """``application/graphql-response+json`` if the client accepts it first, else JSON."""
    if not accept:
        return JSON
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media == GRAPHQL_RESPONSE:
            return GRAPHQL_RESPONSE
        if media in (JSON, "application/*", "*/*"):
            return JSON
    return JSON


def _untraced_trace_id(request: web.Request) -> str | None:
    """The trace id of the request's ``traceparent`` when tracing is off; when it is on, the
    request's trace scope (which parsed the header already) gives it to the context."""
    if current_scope.get() is not None:
        return None
    parsed = parse_traceparent(request.headers.get("traceparent"))
    return parsed.trace_id if parsed else None


class GatewayView(GraphQLView[GatewayContext, None]):
    def __init__(
        self,
        *,
        runtime: Runtime,
        heartbeat: float,
        allowed_origins: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(allowed_origins=allowed_origins, keep_alive_interval=heartbeat, **kwargs)
        self.runtime = runtime
        self.heartbeat = heartbeat

    # ------------------------------------------------------------------ context and auth

    async def get_context(self, request: web.Request, response: Any) -> GatewayContext:
        context = GatewayContext(
            runtime=self.runtime,
            authorization=request.headers.get("Authorization"),
            request_id=request.get(keys.REQUEST_ID) or new_id("req"),
            trace_id=_untraced_trace_id(request),
        )
        request[keys.CONTEXT] = context
        return context

    async def on_ws_connect(self, context: GatewayContext) -> None:
        params = context.connection_params or {}
        if not isinstance(params, Mapping):
            raise ConnectionRejectionError({"code": "INVALID_INPUT", "message": "bad payload"})
        authorization = params.get("authorization") or params.get("Authorization")
        if isinstance(authorization, str):
            context.authorization = authorization
        try:
            await context.principal()
        except ContractError as exc:
            raise ConnectionRejectionError({"code": exc.code, "message": exc.message}) from None

    async def create_websocket_response(
        self, request: web.Request, subprotocol: str | None
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            protocols=[subprotocol] if subprotocol else [], heartbeat=self.heartbeat
        )
        await ws.prepare(request)
        return ws

    # ------------------------------------------------------------------ GraphQL over HTTP

    async def get_sub_response(self, request: web.Request) -> web.Response:
        response = web.Response()
        response[keys.MEDIA_TYPE] = response_media_type(request.headers.get("Accept"))
        request[keys.SUB_RESPONSE] = response
        return response

    async def process_result(
        self, request: web.Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        data = process_result(result)
        if result.data is None and result.errors and all(e.path is None for e in result.errors):
            # A request error: nothing executed, so the response has no data entry.
            data.pop("data", None)
            sub_response = request.get(keys.SUB_RESPONSE)
            if sub_response is not None and sub_response[keys.MEDIA_TYPE] == GRAPHQL_RESPONSE:
                sub_response.set_status(400)
        return data

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: web.Response,
    ) -> web.Response:
        sub_response.text = self.encode_json(response_data)  # type: ignore[assignment]
        sub_response.content_type = sub_response[keys.MEDIA_TYPE]
        sub_response.charset = "utf-8"
        return sub_response

    async def execute_single(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        try:
            return await super().execute_single(*args, **kwargs)
        except HTTPException as exc:
            if isinstance(exc.__cause__, InvalidOperationTypeError):
                # A mutation over GET: the operation exists, the method is wrong.
                raise HTTPException(405, exc.reason) from exc.__cause__
            raise

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self.run(request=request)
        except HTTPException as exc:
            return error_response(request, exc.status_code, exc.reason)
        except web.HTTPRequestEntityTooLarge:
            return error_response(request, 413, "the request body is larger than 1 MiB")


def error_response(request: web.Request, status: int, message: str) -> web.Response:
    """A GraphQL error body for a request that never reached execution."""
    code = "INVALID_INPUT" if status < 500 else "INTERNAL"
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type=response_media_type(request.headers.get("Accept")),
        charset="utf-8",
        headers={"Allow": "GET, POST"} if status == 405 else None,
    )
