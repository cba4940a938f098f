"""``synapsex schema``: print the GraphQL SDL (checked in as ``schema.graphql``)."""

from __future__ import annotations

import argparse
import sys

from synapsex.config import Settings
from synapsex.graphql import schema_sdl


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "schema",
        help="print the GraphQL schema (SDL)",
        description="Print the gateway's GraphQL schema in SDL; `synapsex schema > "
        "schema.graphql` refreshes the checked-in copy.",
    )
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(schema_sdl())
    return 0
