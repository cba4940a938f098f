"""The ``synapsex`` command. Run ``synapsex --help`` (or ``synapsex COMMAND --help``).

Exit codes: 0 success, 1 the operation failed (the message says why), 2 bad usage or
configuration (the message names the option or variable).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from synapsex import __version__
from synapsex.cli import bootstrap, deadletters, master_key, migrate, ops_mcp, schema, serve
from synapsex.config import ConfigError, Settings, configure_logging
from synapsex.contracts.errors import ContractError
from synapsex.runtime import PendingMigrations
from synapsex.runtime.errors import UnknownService

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synapsex",
        description="SynapseX: the backend of a platform for AI agents.",
        epilog="Configuration comes from the environment; see README.md (Configuration).",
    )
    parser.add_argument("--version", action="version", version=f"synapsex {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (serve, bootstrap, schema, migrate, deadletters, master_key, ops_mcp):
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env().with_data_dir(getattr(args, "data_dir", None))
        configure_logging(settings.log_level, settings.log_format)
        run: Command = args.run
        return asyncio.run(run(args, settings))
    except (ConfigError, UnknownService) as exc:
        print(f"synapsex: {exc}", file=sys.stderr)
        return 2
    except PendingMigrations as exc:
        print(f"synapsex: {exc}", file=sys.stderr)
        return 1
    except ContractError as exc:
        print(f"synapsex: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
