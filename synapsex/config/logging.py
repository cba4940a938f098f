"""structlog, configured once: JSON lines or console, stdlib logging routed through it.

Every line carries the fields of the message being handled (service, message type, correlation
and trace ids). The runtime sets :data:`log_context` once per message; the processor here reads
it only when a line is actually written, so handling a message that logs nothing costs nothing.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any, Protocol

import structlog


class LogContext(Protocol):
    def log_fields(self) -> dict[str, Any]: ...


#: the context of the work in progress (the runtime puts the message's envelope here)
log_context: ContextVar[LogContext | None] = ContextVar("synapsex_log_context", default=None)

_configured: tuple[str, str] | None = None


def add_log_context(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: add the current message's fields unless the line set them."""
    ctx = log_context.get()
    if ctx is not None:
        for key, value in ctx.log_fields().items():
            event_dict.setdefault(key, value)
    return event_dict


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Configure structlog and the stdlib root logger (again with the same values: a no-op)."""
    global _configured
    if _configured == (level, fmt):
        return
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_log_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The drivers are chatty at debug level and may print SQL parameters: keep them at warning.
    for noisy in ("tortoise", "aiosqlite", "asyncpg"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    _configured = (level, fmt)
