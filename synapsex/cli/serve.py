"""``synapsex serve``: every service and the GraphQL gateway, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal

import structlog
from aiohttp import web

from synapsex.cli import ops_mcp
from synapsex.cli.common import add_data_dir
from synapsex.config import Settings
from synapsex.graphql import GatewayConfig, create_app
from synapsex.runtime import Runtime, load_services

log = structlog.get_logger("synapsex.serve")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the platform: every service and the GraphQL gateway",
        description="Start every service and the gateway (/graphql, /healthz, /readyz, "
        "/metrics). On the SQLite default, pending migrations are applied; against PostgreSQL "
        "the command refuses to start while migrations are pending unless --migrate is given. "
        "SIGINT or SIGTERM stops it gracefully: in-flight requests finish, mailboxes drain.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (8080; 0: any)")
    parser.add_argument(
        "--migrate", action="store_true", help="apply pending migrations first (PostgreSQL)"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a graceful stop waits for requests and mailboxes (default 10)",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin allowed to open WebSockets (repeatable), e.g. https://chat.example",
    )
    ops_mcp.add_serve_options(parser)
    add_data_dir(parser)
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    runtime = Runtime(
        load_services(),
        settings=settings,
        migrate=True if args.migrate else None,
        drain_timeout=args.drain_timeout,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    app = create_app(runtime, GatewayConfig(allowed_origins=tuple(args.allowed_origin)))
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=args.drain_timeout
    )
    await runner.setup()
    beside = None  # synapsex-ops-mcp, with --ops-mcp (stopped before the gateway)
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        beside = await ops_mcp.start_beside_gateway(args, settings, runner.addresses[0][:2])
        # everything loaded at start (modules, schema, actors) lives until the end: keep it out
        # of the cyclic collector's full passes, which then scan only what requests allocate
        gc.freeze()
        host, port = runner.addresses[0][:2]
        log.info(
            "serving",
            url=f"http://{host}:{port}/graphql",
            port=port,
            services=runtime.services,
            data_dir=str(settings.data_dir),
        )
        stopped = asyncio.ensure_future(runtime.wait_stopped())
        signalled = asyncio.ensure_future(stop.wait())
        waits = {stopped, signalled}
        if beside is not None:  # if it fails, everything stops (exit 1)
            waits.add(asyncio.ensure_future(beside.wait_stopped()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        log.info("stopping")
    finally:
        if beside is not None:
            await beside.stop()
        await runner.cleanup()  # stops listening, lets in-flight requests finish
        await runtime.stop()
    if runtime.failure:
        log.error("runtime failed", reason=runtime.failure)
        return 1
    if beside is not None and beside.failed is not None:
        log.error("ops-mcp failed", reason=repr(beside.failed))
        return 1
    return 0
