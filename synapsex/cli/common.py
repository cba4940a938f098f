"""Pieces the commands share."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``, for every command that touches local state."""
    parser.add_argument(
        "--data-dir",
        metavar="PATH",
        help="folder for SQLite files and local state (default: $SYNAPSEX_DATA_DIR or ./data)",
    )


def add_service(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--service",
        metavar="NAME",
        required=required,
        help="a service name such as tenant-service (see `synapsex migrate --plan`)",
    )


def print_json(value: Any) -> None:
    """One JSON line on standard output."""
    sys.stdout.write(json.dumps(value, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()
