"""Request bodies past the gateway's 1 MiB, for ``uploadArtifact`` only.

aiohttp checks one ``client_max_size`` per application, and an artifact of
``SYNAPSEX_ARTIFACT_MAX_BYTES`` (default 25 MiB) needs about a third more as base64 in a
GraphQL body. Rather than raise the limit for every request, this middleware keeps 1 MiB
(``MAX_BODY_BYTES``) for everything and lets one kind of request through beyond it:

* a ``POST /graphql`` whose ``Content-Length`` is at most 1 MiB goes on untouched (nothing
  is read here: no cost for ordinary requests);
* a larger one (or one without a length) needs a valid API key (checked before the body is
  read), is read up to :func:`upload_body_bytes`, and must be a mutation whose root fields
  are all ``uploadArtifact``; anything else is answered 413, like any body over 1 MiB.

The body is parsed once more by the GraphQL view; for uploads only, which are big anyway.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from aiohttp import web
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse

from synapsex.contracts.auth import Authenticate
from synapsex.contracts.errors import ContractError
from synapsex.graphql import keys
from synapsex.graphql.context import bearer_key
from synapsex.graphql.view import error_response
from synapsex.runtime import Runtime

#: room in an upload's body for the query, the other variables and the JSON around them
UPLOAD_BODY_SLACK = 64 * 1024
UPLOAD_FIELD = "uploadArtifact"


def upload_body_bytes(artifact_max_bytes: int) -> int:
    """The largest body an upload of ``artifact_max_bytes`` may need: the base64 of that many
    bytes (4 characters per 3 bytes) and :data:`UPLOAD_BODY_SLACK`."""
    return 4 * math.ceil(artifact_max_bytes / 3) + UPLOAD_BODY_SLACK


def is_upload_only(body: bytes) -> bool:
    """Whether ``body`` is one GraphQL request whose operation is a mutation selecting only
    ``uploadArtifact`` (under any aliases)."""
    try:
        request: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(request, dict) or not isinstance(request.get("query"), str):
        return False
    try:
        document = parse(request["query"])
    except GraphQLError:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    name = request.get("operationName")
    if name:
        operations = [op for op in operations if op.name is not None and op.name.value == name]
    if len(operations) != 1 or operations[0].operation != OperationType.MUTATION:
        return False
    selections = operations[0].selection_set.selections
    return bool(selections) and all(
        isinstance(s, FieldNode) and s.name.value == UPLOAD_FIELD for s in selections
    )


def upload_body_limit(runtime: Runtime, *, general: int, upload: int) -> Any:
    """The middleware (see the module docstring); ``general`` is the app's body limit."""

    def too_large(request: web.Request) -> web.Response:
        return error_response(
            request,
            413,
            f"the request body is larger than {general} bytes; only uploadArtifact, sent "
            f"with a valid API key, may send up to {upload} bytes",
        )

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "POST" or request.path != "/graphql" or upload <= general:
            return await handler(request)
        length = request.content_length
        if length is not None and length <= general:
            return await handler(request)
        if length is not None and length > upload:
            return too_large(request)
        key = bearer_key(request.headers.get("Authorization"))
        if key is None:
            return too_large(request)
        try:
            await runtime.ask(Authenticate(key=key))
        except ContractError:
            return too_large(request)
        big = request.clone(client_max_size=upload)
        try:
            body = await big.read()
        except web.HTTPRequestEntityTooLarge:
            return too_large(request)
        if len(body) > general and not await asyncio.to_thread(is_upload_only, body):
            return too_large(request)
        try:
            return await handler(big)
        finally:
            # the request log line and metrics read the context from the original request
            context = big.get(keys.CONTEXT)
            if context is not None:
                request[keys.CONTEXT] = context

    return middleware
