"""``synapsex dead-letters``: list, show, redrive or discard a service's dead letters.

Redriving starts the service in this process, hands it the message, and waits for its mailbox
to drain; it works whether or not a server runs on the same database.
"""

from __future__ import annotations

import argparse
import dataclasses

from synapsex.cli.common import add_data_dir, add_service, print_json
from synapsex.config import Settings
from synapsex.runtime import Runtime, load_service


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "dead-letters",
        help="inspect and redrive messages that could not be handled",
        description="Messages that crashed their actor (after retries) or were not handled "
        "before a shutdown are kept per service with their error.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list dead letters, oldest first (JSON lines)")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    for name, text in (
        ("show", "print one dead letter"),
        ("redrive", "send the message again and remove the dead letter"),
        ("discard", "delete the dead letter for good"),
    ):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("id", help="the dead letter's id (dl_…)")
        add_service(sub, required=True)
        add_data_dir(sub)
        sub.set_defaults(run=run)
    add_service(listing, required=True)
    add_data_dir(listing)
    listing.set_defaults(run=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    async with Runtime([load_service(args.service)], settings=settings) as rt:
        if args.action == "list":
            for letter in await rt.dead_letters(args.service, limit=args.limit):
                print_json(dataclasses.asdict(letter))
        elif args.action == "show":
            print_json(dataclasses.asdict(await rt.dead_letter(args.service, args.id)))
        elif args.action == "redrive":
            await rt.redrive(args.service, args.id)
            print_json({"redriven": args.id})
        else:
            await rt.discard_dead_letter(args.service, args.id)
            print_json({"discarded": args.id})
    return 0
