"""``synapsex rotate-master-key``: a new master key, every sealed value re-wrapped under it, and
(``--retire``) the old keys dropped once nothing needs them.

With the key file (``master.key`` in the data folder) the command writes the new key at the
head of the file's ring; the old keys stay in it and keep opening what they sealed. With
``SYNAPSEX_MASTER_KEY`` the operator rotates: the new key in ``SYNAPSEX_MASTER_KEY``, the old
ones in ``SYNAPSEX_MASTER_KEY_PREVIOUS`` (on every process), then this command re-wraps.

It starts the services that seal values in this process (as ``synapsex migrate`` opens their
databases), asks each to re-wrap its values batch by batch (one JSON line per batch on standard
output), and stops them. It works whether or not a server runs on the same data: a server
reading the key file notices the new ring at its next seal; rows a server changes meanwhile
are left to it (counted as ``changed_meanwhile``) and a next pass takes them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from synapsex.cli.common import add_data_dir, print_json
from synapsex.config import Settings
from synapsex.config.master_key import (
    MASTER_KEY_VARIABLE,
    PREVIOUS_KEYS_VARIABLE,
    load_master_key,
    retire_previous_keys,
    rotate_key_file,
)
from synapsex.contracts.errors import Conflict
from synapsex.contracts.keys import MAX_RESEAL_BATCH, RESEAL_MESSAGES
from synapsex.runtime import Runtime, load_services

#: the services a sealing service needs beside it (webhook-service reads the event bus)
COMPANIONS = ("event-bus-service",)
#: passes ``--retire`` makes while rows keep changing under it
RETIRE_PASSES = 3


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "rotate-master-key",
        help="rotate the master key: re-wrap every sealed value, then retire the old key",
        description="With the key file: write a new key at the head of its ring (the old keys "
        "keep opening), then re-wrap every sealed value (secrets' data keys, webhook signing "
        f"secrets) under it. With {MASTER_KEY_VARIABLE} set: set the new key there and the old "
        f"ones in {PREVIOUS_KEYS_VARIABLE} first; this command re-wraps. Then run it with "
        "--retire to drop the old keys once nothing uses them. Prints one JSON line per batch "
        "and a summary. Exit codes: 0 done, 1 values left under old keys (or unreadable), "
        "2 bad configuration.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--rewrap-only",
        action="store_true",
        help="make no new key: only re-wrap what is still under an older key",
    )
    mode.add_argument(
        "--retire",
        action="store_true",
        help="re-wrap, check nothing is left under an older key, then drop the older keys "
        "from the key file (with the variable: say to unset " + PREVIOUS_KEYS_VARIABLE + ")",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=200,
        metavar="N",
        help=f"rows per re-wrap batch (1 to {MAX_RESEAL_BATCH}; default 200)",
    )
    add_data_dir(parser)
    parser.set_defaults(run=run)


@dataclass
class PassTotals:
    examined: int = 0
    resealed: int = 0
    changed_meanwhile: int = 0
    unreadable: int = 0


async def run(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.batch <= MAX_RESEAL_BATCH:
        print(f"synapsex: --batch: must be 1 to {MAX_RESEAL_BATCH}", file=sys.stderr)
        return 2
    from_file = settings.environ.get(MASTER_KEY_VARIABLE) is None
    if from_file and not (args.rewrap_only or args.retire):
        ring = rotate_key_file(settings)
        print_json({"step": "rotated", "key_id": ring.key_id, "previous": ring.previous_key_ids})
    else:
        ring = load_master_key(settings)
        print_json({"step": "ring", "key_id": ring.key_id, "previous": ring.previous_key_ids})
    services = [m.service for m in RESEAL_MESSAGES]
    async with Runtime(load_services([*services, *COMPANIONS]), settings=settings) as runtime:
        totals = await _rewrap(runtime, args.batch, ring.key_id)
        passes = 1
        while args.retire and totals.changed_meanwhile and passes < RETIRE_PASSES:
            totals = await _rewrap(runtime, args.batch, ring.key_id)
            passes += 1
    print_json({"step": "rewrapped", "key_id": ring.key_id, **vars(totals)})
    if totals.unreadable:
        print(
            f"synapsex: {totals.unreadable} sealed values open under no key of the ring "
            "(see the log lines naming their rows); no key was retired",
            file=sys.stderr,
        )
        return 1
    if not args.retire:
        return 0
    if totals.changed_meanwhile:
        print(
            f"synapsex: {totals.changed_meanwhile} rows kept changing during {passes} passes; "
            "run the command with --retire again",
            file=sys.stderr,
        )
        return 1
    return _retire(settings, ring.key_id, ring.previous_key_ids, from_file)


async def _rewrap(runtime: Runtime, batch: int, key_id: str) -> PassTotals:
    """One pass over every sealing service; one JSON line per batch."""
    totals = PassTotals()
    for message in RESEAL_MESSAGES:
        after: str | None = None
        while True:
            progress = await runtime.ask(message(after=after, limit=batch), timeout=60.0)
            if progress.key_id != key_id:
                raise Conflict(
                    f"{progress.service} seals under master key {progress.key_id}, not "
                    f"{key_id}: another rotation ran meanwhile; run the command again"
                )
            print_json(
                {
                    "step": "batch",
                    "service": progress.service,
                    "examined": progress.examined,
                    "resealed": progress.resealed,
                    "changed_meanwhile": progress.changed_meanwhile,
                    "unreadable": progress.unreadable,
                }
            )
            totals.examined += progress.examined
            totals.resealed += progress.resealed
            totals.changed_meanwhile += progress.changed_meanwhile
            totals.unreadable += progress.unreadable
            after = progress.next_after
            if after is None:
                break
    return totals


def _retire(settings: Settings, key_id: str, previous: tuple[str, ...], from_file: bool) -> int:
    if from_file:
        dropped = retire_previous_keys(settings, keep=key_id)
        print_json({"step": "retired", "key_id": key_id, "retired": dropped})
        return 0
    print_json({"step": "retired", "key_id": key_id, "retired": []})
    if previous:
        print(
            f"synapsex: nothing is sealed under {', '.join(previous)} any more: remove "
            f"{PREVIOUS_KEYS_VARIABLE} from every process's environment and restart them",
            file=sys.stderr,
        )
    return 0
