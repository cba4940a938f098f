"""One place that turns errors into GraphQL errors with ``extensions.code``.

* Contract errors keep their message and carry their code and public details.
* Request errors (syntax, validation, depth/alias/token limits) get ``INVALID_INPUT``.
* Anything else is masked as ``INTERNAL`` with the ``requestId`` that finds the traceback in
  the log line written here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import structlog
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import InvalidOperationTypeError

from synapsex.contracts.errors import ContractError

log = structlog.get_logger("synapsex.gateway")

INTERNAL_MESSAGE = "Internal error; quote the requestId when reporting it."


def to_graphql_error(error: GraphQLError, context: Any) -> GraphQLError:
    """The error a client sees for ``error`` (one that already has a code is kept)."""
    if error.extensions and "code" in error.extensions:
        return error
    original = error.original_error
    request_id = getattr(context, "request_id", None)
    if isinstance(original, ContractError):
        return GraphQLError(
            original.message,
            nodes=error.nodes,
            path=error.path,
            extensions=_camel(original.extensions()),
        )
    if isinstance(original, InvalidOperationTypeError):
        # e.g. a query sent over legacy graphql-ws, which carries subscriptions only
        return GraphQLError(
            f"{original.operation_type.value} operations are not allowed on this transport",
            nodes=error.nodes,
            extensions={"code": "INVALID_INPUT"},
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


def rewrite_errors(result: Any, context: Any) -> None:
    """Give every error of ``result`` its code (idempotent); note the codes on the context."""
    errors = getattr(result, "errors", None)
    if not errors:
        return
    result.errors = [to_graphql_error(e, context) for e in errors]
    codes = getattr(context, "error_codes", None)
    if codes is not None:
        codes[:] = [e.extensions.get("code", "INTERNAL") for e in result.errors]


class GatewayExtension(SchemaExtension):
    """The gateway's per-operation work in one hook (each extension hook costs every request):
    apply the token limit and the extra validation rules (depth, aliases), then rewrite the
    errors of each result, single or streamed, with :func:`to_graphql_error`.

    A failure before execution (a syntax error, a token limit) escapes ``on_operation``, so the
    gateway's schema also rewrites what ``execute`` returns (see ``schema.GatewaySchema``).

    A traced request's result carries ``extensions.traceId``, errors or not: Strawberry asks
    every extension for its results on every result it returns (``get_results``), including
    the ones of failures before execution."""

    def __init__(self, *, max_tokens: int, validation_rules: Sequence[type[ASTValidationRule]]):
        self.max_tokens = max_tokens
        self.validation_rules = tuple(validation_rules)

    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        execution.parse_options["max_tokens"] = self.max_tokens
        execution.validation_rules = execution.validation_rules + self.validation_rules
        yield
        context = self.execution_context.context
        if hasattr(context, "operation_name"):
            context.operation_name = operation_label(self.execution_context)
        rewrite_errors(self.execution_context.result, context)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        rewrite_errors(result, self.execution_context.context)
        yield

    def get_results(self) -> dict[str, Any]:
        scope = getattr(self.execution_context.context, "trace_scope", None)
        return {"traceId": scope.trace_id} if scope is not None else {}


def operation_label(execution_context: Any) -> str | None:
    """The operation's name, or for an anonymous one its type and root fields
    (``query me,apiKeys``), for logs and metrics."""
    if execution_context.operation_name:
        return execution_context.operation_name
    document = execution_context.graphql_document
    if document is None:
        return None
    for definition in document.definitions:
        selection_set = getattr(definition, "selection_set", None)
        operation = getattr(definition, "operation", None)
        if selection_set is None or operation is None:
            continue
        fields = [getattr(s, "name", None) for s in selection_set.selections]
        names = ",".join(sorted({f.value for f in fields if f is not None}))
        return f"{operation.value} {names}"[:100]
    return None
