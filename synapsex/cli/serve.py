"""``synapsex serve``: run every service until SIGINT or SIGTERM, then stop gracefully."""

from __future__ import annotations

import argparse
import asyncio
import signal

import structlog

from synapsex.cli.common import add_data_dir
from synapsex.config import Settings
from synapsex.runtime import Runtime, load_services

log = structlog.get_logger("synapsex.serve")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the platform",
        description="Start every service. On the SQLite default, pending migrations are "
        "applied; against PostgreSQL the command refuses to start while migrations are "
        "pending unless --migrate is given. SIGINT or SIGTERM stops it gracefully.",
    )
    parser.add_argument(
        "--migrate", action="store_true", help="apply pending migrations first (PostgreSQL)"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a graceful stop lets mailboxes drain (default 10)",
    )
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
    log.info("serving", services=runtime.services, data_dir=str(settings.data_dir))
    stopped = asyncio.ensure_future(runtime.wait_stopped())
    signalled = asyncio.ensure_future(stop.wait())
    await asyncio.wait({stopped, signalled}, return_when=asyncio.FIRST_COMPLETED)
    signalled.cancel()
    log.info("stopping")
    await runtime.stop()
    stopped.cancel()
    if runtime.failure:
        log.error("runtime failed", reason=runtime.failure)
        return 1
    return 0
