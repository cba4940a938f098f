"""``GET /artifacts/{id}``: an artifact's content, streamed.

``Authorization: Bearer <api key>`` as for GraphQL; the answer has the artifact's media type,
its length, ``ETag`` (the quoted SHA-256; ``If-None-Match`` with it answers 304) and a
``Content-Disposition: attachment`` with its name. The content is asked of workspace-service
in chunks of at most 1 MiB (``ReadArtifactChunk``) and written as each arrives, so a
download holds about one chunk in memory, whatever the artifact's size.

Errors are JSON in the GraphQL shape (``{"errors": [{"message", "extensions": {"code"}}]}``):
401 without a valid key, 403 for a VM token, 404 for an unknown id or another tenant's
artifact (never a hint that it exists), 503 when the service is away. A failure after the
headers were sent (the artifact deleted mid-download) can only cut the connection: the
client sees fewer bytes than ``Content-Length``.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import structlog
from aiohttp import web

from synapsex.contracts.errors import (
    ContractError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from synapsex.contracts.workspaces import (
    CHUNK_MAX_BYTES,
    ArtifactView,
    GetArtifact,
    ReadArtifactChunk,
)
from synapsex.graphql import keys
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.upload_limit import upload_body_bytes, upload_body_limit
from synapsex.runtime import Runtime, new_id

log = structlog.get_logger("synapsex.gateway")

ROUTE = "/artifacts/{id}"
_STATUS = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "INVALID_INPUT": 404,  # a malformed id names no artifact
    "UNAVAILABLE": 503,
    "TIMEOUT": 503,
}
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9 !#$%&\'()*+,.;=@\[\]^_`{}~-]")


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII ``filename`` (unsafe characters as ``_``) and the exact
    name as RFC 8187 ``filename*``."""
    fallback = _UNSAFE_FILENAME.sub("_", name) or "artifact"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def etag(view: ArtifactView) -> str:
    return f'"{view.sha256}"'


def _matches(if_none_match: str | None, tag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or tag in tags


def error(status: int, code: str, message: str) -> web.Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    headers = {"WWW-Authenticate": 'Bearer realm="synapsex"'} if status == 401 else None
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


class ArtifactDownloads:
    """The route's handler (:meth:`handle`); one per application."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(self, request: web.Request) -> web.StreamResponse:
        context = GatewayContext(
            runtime=self.runtime,
            authorization=request.headers.get("Authorization"),
            request_id=request.get(keys.REQUEST_ID) or new_id("req"),
        )
        request[keys.CONTEXT] = context  # the request log line names the tenant
        try:
            principal = await context.principal()
            view = await context.ask(
                GetArtifact(tenant_id=principal.tenant_id, id=request.match_info["id"])
            )
        except ContractError as exc:
            context.error_codes.append(exc.code)
            if isinstance(exc, InvalidInput | NotFound):
                return error(404, "NOT_FOUND", "artifact not found")
            if isinstance(exc, Unauthenticated | Forbidden):
                return error(_STATUS[exc.code], exc.code, exc.message)
            return error(_STATUS.get(exc.code, 500), exc.code, exc.message)
        headers = {
            "X-Request-Id": context.request_id,
            "ETag": etag(view),
            "Cache-Control": "private, no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        if _matches(request.headers.get("If-None-Match"), etag(view)):
            return web.Response(status=304, headers=headers)
        response = web.StreamResponse(
            headers={
                **headers,
                "Content-Type": view.media_type,
                "Content-Disposition": content_disposition(view.name),
            }
        )
        response.content_length = view.size
        await response.prepare(request)
        if request.method != "HEAD":
            await self._stream(context, principal.tenant_id, view, response)
        await response.write_eof()
        return response

    async def _stream(
        self,
        context: GatewayContext,
        tenant_id: str,
        view: ArtifactView,
        response: web.StreamResponse,
    ) -> None:
        offset = 0
        while offset < view.size:
            try:
                chunk = await context.ask(
                    ReadArtifactChunk(
                        tenant_id=tenant_id, id=view.id, offset=offset, length=CHUNK_MAX_BYTES
                    )
                )
            except ContractError as exc:
                context.error_codes.append(exc.code)
                log.warning(
                    "artifact download cut short",
                    artifact_id=view.id,
                    sent=offset,
                    size=view.size,
                    error_code=exc.code,
                )
                raise ConnectionResetError("artifact read failed mid-download") from None
            if not chunk.data:
                raise ConnectionResetError("artifact shorter than its size")
            await response.write(chunk.data)  # waits while the client is slower than us
            offset += len(chunk.data)


def install(app: web.Application, runtime: Runtime, *, body_limit: int) -> None:
    """Add ``GET /artifacts/{id}`` and the upload body limit (see
    :mod:`synapsex.graphql.upload_limit`) to the gateway application."""
    app.router.add_get(ROUTE, ArtifactDownloads(runtime).handle)
    upload = upload_body_bytes(runtime.settings.artifact_max_bytes)
    app.middlewares.append(upload_body_limit(runtime, general=body_limit, upload=upload))
