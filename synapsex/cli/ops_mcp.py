"""``synapsex ops-mcp``: the synapsex-ops-mcp MCP server, in front of a gateway.

Also the ``--ops-mcp`` options of ``synapsex serve`` (:func:`add_serve_options`), which run the
same server in the gateway's process and loop.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import TYPE_CHECKING

import structlog

from synapsex.config import ConfigError, Settings

if TYPE_CHECKING:
    from synapsex.opsmcp import OpsMcpServer

log = structlog.get_logger("synapsex.opsmcp")

#: the fallback API key (for MCP requests that carry none); prefer it to ``--api-key``, which
#: other users of the machine can read in the process list
API_KEY_ENV = "SYNAPSEX_OPS_MCP_API_KEY"
#: synapsex.opsmcp.runner's defaults, repeated so that parsing arguments (``--help``) does
#: not import the MCP SDK
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090


def _gateway_url(text: str) -> str:
    from synapsex.opsmcp.gateway_client import check_gateway_url

    try:
        return check_gateway_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0-65535)")
    return port


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "ops-mcp",
        help="run synapsex-ops-mcp, an MCP server operating SynapseX through a gateway",
        description="Serve synapsex-ops-mcp over MCP streamable HTTP at http://HOST:PORT/mcp. "
        "Its tools (VMs, rollouts, events, workspace artifacts) call the gateway's GraphQL API "
        "as the caller: each MCP request's 'Authorization: Bearer <API key>' is forwarded. "
        f"SIGINT or SIGTERM stops it gracefully. The fallback key comes from {API_KEY_ENV}.",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on ({DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port to listen on ({DEFAULT_PORT}; 0: any)",
    )
    parser.add_argument(
        "--gateway",
        required=True,
        type=_gateway_url,
        metavar="URL",
        help="the gateway's GraphQL endpoint, e.g. http://127.0.0.1:8080/graphql",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="API key used only for MCP requests without an Authorization header (standalone "
        f"use); prefer the {API_KEY_ENV} variable, which the process list does not show",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long one gateway request may take (default 30)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a graceful stop waits for in-flight MCP requests (default 10)",
    )
    parser.set_defaults(run=run)


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """``--ops-mcp``, ``--ops-mcp-host``, ``--ops-mcp-port`` for ``synapsex serve``."""
    parser.add_argument(
        "--ops-mcp",
        action="store_true",
        help="also serve synapsex-ops-mcp (MCP, streamable HTTP) in the same process, in front "
        "of this gateway",
    )
    parser.add_argument(
        "--ops-mcp-host",
        default=DEFAULT_HOST,
        metavar="HOST",
        help=f"address synapsex-ops-mcp listens on ({DEFAULT_HOST})",
    )
    parser.add_argument(
        "--ops-mcp-port",
        type=_port,
        default=DEFAULT_PORT,
        metavar="PORT",
        help=f"port synapsex-ops-mcp listens on ({DEFAULT_PORT}; 0: any)",
    )


def fallback_key(args: argparse.Namespace, settings: Settings) -> str | None:
    """``--api-key`` if given, else ``SYNAPSEX_OPS_MCP_API_KEY`` (blank: none)."""
    key = (getattr(args, "api_key", None) or settings.environ.get(API_KEY_ENV, "")).strip()
    return key or None


def local_gateway_url(host: str, port: int) -> str:
    """The gateway's URL as a process beside it reaches it (a wildcard address is reached on
    loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/graphql"


async def _start(server: OpsMcpServer, option: str) -> None:
    try:
        await server.start()
    except OSError as exc:
        address = f"{server.config.host}:{server.config.port}"
        raise ConfigError(option, f"cannot listen on {address}: {exc.strerror or exc}") from None


async def start_beside_gateway(
    args: argparse.Namespace, settings: Settings, address: tuple[str, int]
) -> OpsMcpServer | None:
    """For ``synapsex serve --ops-mcp``: synapsex-ops-mcp in this process and loop, in front
    of the gateway listening on ``address``; ``None`` without ``--ops-mcp``."""
    if not args.ops_mcp:
        return None
    from synapsex.opsmcp import OpsMcpConfig, OpsMcpServer

    server = OpsMcpServer(
        OpsMcpConfig(
            gateway_url=local_gateway_url(*address),
            host=args.ops_mcp_host,
            port=args.ops_mcp_port,
            api_key=fallback_key(args, settings),
            drain_timeout=args.drain_timeout,
        )
    )
    await _start(server, "--ops-mcp-port")
    return server


async def run(args: argparse.Namespace, settings: Settings) -> int:
    from synapsex.opsmcp import OpsMcpConfig, OpsMcpServer

    server = OpsMcpServer(
        OpsMcpConfig(
            gateway_url=args.gateway,
            host=args.host,
            port=args.port,
            api_key=fallback_key(args, settings),
            timeout=args.timeout,
            drain_timeout=args.drain_timeout,
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await _start(server, "--port")
    try:
        stopped = asyncio.ensure_future(server.wait_stopped())
        signalled = asyncio.ensure_future(stop.wait())
        await asyncio.wait({stopped, signalled}, return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        stopped.cancel()
        failure = server.failed
    finally:
        await server.stop()
    if failure is not None:
        log.error("ops-mcp failed", reason=repr(failure))
        return 1
    return 0
