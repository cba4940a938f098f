"""Serving synapsex-ops-mcp with uvicorn inside the running asyncio loop.

``synapsex ops-mcp`` runs it alone; ``synapsex serve --ops-mcp`` runs it in the gateway's
process and loop, beside the gateway. Either way :class:`OpsMcpServer` binds its socket
first (so port 0 works and the URL is known at once), serves until :meth:`OpsMcpServer.stop`,
and leaves signal handling to the command: uvicorn's own handlers would replace the
command's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog
import uvicorn

from synapsex.opsmcp.gateway_client import DEFAULT_TIMEOUT_SECONDS, GatewayClient
from synapsex.opsmcp.server import MCP_PATH, build_server

log = structlog.get_logger("synapsex.opsmcp")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
#: how long a stop waits for in-flight MCP requests before cancelling them
DEFAULT_DRAIN_SECONDS = 10.0
#: loggers that say something at info level on every request or start ("Processing request
#: of type CallToolRequest"): kept at warning unless the log level is debug; the server writes
#: its own line per tool call
_CHATTY_LOGGERS = ("mcp.server", "uvicorn.error")


def _quiet_sdk_loggers() -> None:
    level = max(logging.WARNING, logging.getLogger().getEffectiveLevel())
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)


@dataclass(frozen=True, kw_only=True)
class OpsMcpConfig:
    """Where synapsex-ops-mcp listens and which gateway it talks to."""

    gateway_url: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: used only for MCP requests without ``Authorization``; never logged
    api_key: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    drain_timeout: float = DEFAULT_DRAIN_SECONDS


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers (the command owns SIGINT/SIGTERM), telling when
    it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class OpsMcpServer:
    """One synapsex-ops-mcp server: ``await start()``, ``url``, ``await stop()`` (or
    ``async with``)."""

    def __init__(self, config: OpsMcpConfig) -> None:
        self.config = config
        self.gateway = GatewayClient(config.gateway_url, timeout=config.timeout)
        self._uvicorn: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.url = ""

    async def start(self) -> str:
        """Listen and serve in the background; returns the MCP endpoint's URL. Raises
        :class:`OSError` when the address cannot be bound."""
        _quiet_sdk_loggers()
        mcp = build_server(self.gateway, fallback_key=self.config.api_key, host=self.config.host)
        app = mcp.streamable_http_app()
        self._socket = _bind(self.config.host, self.config.port)
        host, port = self._socket.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}{MCP_PATH}"
        self._uvicorn = _EmbeddedServer(
            uvicorn.Config(
                app,
                lifespan="on",
                ws="none",  # MCP needs no WebSockets (and the websockets import warns)
                log_config=None,  # logging stays the command's (structlog)
                access_log=False,
                server_header=False,
                timeout_graceful_shutdown=self.config.drain_timeout,
            )
        )
        self._task = asyncio.create_task(
            self._uvicorn.serve(sockets=[self._socket]), name="ops-mcp"
        )
        listening = asyncio.ensure_future(self._uvicorn.listening.wait())
        await asyncio.wait({listening, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():
            listening.cancel()
            await self._close()
            raise RuntimeError("synapsex-ops-mcp stopped while starting")
        log.info(
            "ops-mcp serving",
            url=self.url,
            gateway=self.gateway.url,
            fallback_key=self.config.api_key is not None,
        )
        return self.url

    async def wait_stopped(self) -> None:
        """Returns when the server stopped (by :meth:`stop`, or because it failed)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    @property
    def failed(self) -> BaseException | None:
        """What ended the server, when it failed (``None`` while it runs, and after a
        stop)."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    async def stop(self) -> None:
        """Stop listening, let in-flight requests finish (up to ``drain_timeout``), close the
        gateway connections. Safe to call twice."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        await self._close()
        log.info("ops-mcp stopped")

    async def _close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception, SystemExit):
                await self._task
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        await self.gateway.aclose()

    async def __aenter__(self) -> OpsMcpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
