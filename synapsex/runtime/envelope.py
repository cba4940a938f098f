"""The envelope: a message plus what the runtime needs to route, answer and trace it."""

from __future__ import annotations

import asyncio
import itertools
import random
from contextvars import ContextVar
from typing import Any

from synapsex.config.logging import log_context
from synapsex.contracts.message import Message
from synapsex.runtime.spans import (
    MAX_TRACE_HOPS,
    TraceScope,
    current_scope,
    new_span_id,
    new_trace_id,
)

_counter = itertools.count(1)
_PROCESS = f"{random.getrandbits(32):08x}"

#: the envelope whose handler is running in this task (shared with the logging processor)
current_envelope: ContextVar[Any] = log_context


class Envelope:
    """One message in flight. Not frozen: the runtime bumps ``attempt`` on retry.

    ``reply`` is the asker's future (``None`` for a tell); ``deadline`` is on the loop's clock;
    ``chain`` names the services waiting upstream in this call chain (for ask-cycle detection).
    Ids are kept as ints and formatted only when a log line or dead letter needs them.

    Tracing (see :mod:`synapsex.runtime.spans`): ``traced`` says whether handling this message is
    recorded as a span; ``scope`` is the request it was sent for (``None`` outside requests);
    ``hops`` counts the messages between it and the start of its trace.

    Once handled, an envelope is :meth:`released`: it drops the message and the reply, keeping
    its ids and ``message_type`` (for log lines).
    """

    __slots__ = (
        "_seq",
        "attempt",
        "chain",
        "correlation_id",
        "deadline",
        "hops",
        "message",
        "message_type",
        "parent_span_id",
        "reply",
        "scope",
        "sender",
        "service",
        "span_id",
        "trace_id",
        "traced",
    )

    def __init__(
        self,
        message: Message,
        *,
        service: str,
        reply: asyncio.Future[Any] | None,
        deadline: float | None,
        parent: Envelope | None,
        sender: str | None,
        trace_id: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        self._seq = next(_counter)
        self.message: Message | None = message
        self.message_type = type(message).__name__
        self.service = service
        self.reply = reply
        self.deadline = deadline
        self.sender = sender
        self.attempt = 1
        self.span_id: str | None = None  # made when first needed
        if parent is None:
            scope = current_scope.get()
            self.scope: TraceScope | None = scope
            self.correlation_id = correlation_id
            self.chain: tuple[str, ...] = ()
            self.hops = 0
            if scope is not None:  # sent for a gateway request: its first hop
                self.trace_id = scope.trace_id
                self.parent_span_id: str | None = scope.span_id
                self.traced = scope.is_open
            else:
                self.trace_id = trace_id
                self.parent_span_id = None
                self.traced = trace_id is not None
        else:
            scope = self.scope = parent.scope
            self.trace_id = parent.trace_id or trace_id
            self.correlation_id = parent.correlation_id or parent.message_id
            self.parent_span_id = parent.span()
            self.chain = (*parent.chain, parent.service)
            self.hops = parent.hops + 1
            self.traced = (
                parent.traced and self.hops <= MAX_TRACE_HOPS and (scope is None or scope.is_open)
            )

    @property
    def message_id(self) -> str:
        return f"msg_{_PROCESS}_{self._seq}"

    @property
    def is_ask(self) -> bool:
        return self.reply is not None

    def span(self) -> str:
        """This message's span id (created lazily)."""
        if self.span_id is None:
            self.span_id = new_span_id()
        return self.span_id

    def trace(self) -> str:
        """The trace id (created lazily when nobody gave one)."""
        if self.trace_id is None:
            self.trace_id = new_trace_id()
        return self.trace_id

    def release(self) -> None:
        """Let go of the message and the reply once the message is handled.

        What a handler schedules keeps the handler's context, and with it this envelope (the
        context's :data:`current_envelope`): asyncpg, for one, starts a timer of several
        minutes whenever a connection goes back to its pool. Without this, every message handled
        on PostgreSQL, payload and result included, stayed in memory that long."""
        self.message = None
        self.reply = None

    def log_fields(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "message_type": self.message_type,
            "message_id": self.message_id,
            "correlation_id": self.correlation_id or self.message_id,
            "trace_id": self.trace(),
            "span_id": self.span(),
            "attempt": self.attempt,
        }
