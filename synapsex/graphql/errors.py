"""One place that turns errors into GraphQL errors with ``extensions.code``.

* Contract errors keep their message and carry their code and public details.
* Request errors (syntax, validation, depth/alias/token limits) get ``INVALID_INPUT``.
* Anything else is masked as ``INTERNAL`` with the ``requestId`` that finds the traceback in
  the log line written here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from synapsex.contracts.errors import ContractError

log = structlog.get_logger("synapsex.gateway")

INTERNAL_MESSAGE = "Internal error; quote the requestId when reporting it."


def to_graphql_error(error: GraphQLError, context: Any) -> GraphQLError:
    """The error a client sees for ``error``."""
    original = error.original_error
    request_id = getattr(context, "request_id", None)
    if isinstance(original, ContractError):
        return GraphQLError(
            original.message,
            nodes=error.nodes,
            path=error.path,
            extensions=_camel(original.extensions()),
        )
    if original is None or isinstance(original, GraphQLError):
        extensions = {"code": "INVALID_INPUT", **(error.extensions or {})}
        return GraphQLError(
            error.message, nodes=error.nodes, path=error.path, extensions=extensions
        )
    log.error(
        "resolver failed",
        request_id=request_id,
        path=".".join(str(p) for p in error.path or ()),
        exc_info=original,
    )
    return GraphQLError(
        INTERNAL_MESSAGE,
        nodes=error.nodes,
        path=error.path,
        extensions={"code": "INTERNAL", "requestId": request_id},
    )


def _camel(extensions: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in extensions.items():
        head, *rest = key.split("_")
        out[head + "".join(p.title() for p in rest)] = value
    return out


class ErrorCodes(SchemaExtension):
    """Rewrite every error of a result (single or streamed) with :func:`to_graphql_error`."""

    def _rewrite(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if not errors:
            return
        context = self.execution_context.context
        result.errors = [to_graphql_error(e, context) for e in errors]
        codes = getattr(context, "error_codes", None)
        if codes is not None:
            codes.extend(e.extensions.get("code", "INTERNAL") for e in result.errors)

    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context.context
        if hasattr(context, "operation_name"):
            context.operation_name = self.execution_context.operation_name
        self._rewrite(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        self._rewrite(result)
        yield
