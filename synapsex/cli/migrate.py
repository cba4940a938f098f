"""``synapsex migrate``: apply (or, with ``--plan``, list) each service's pending migrations."""

from __future__ import annotations

import argparse

from synapsex.cli.common import add_data_dir, add_service, print_json
from synapsex.config import Settings, service_slug
from synapsex.runtime import Runtime, load_services
from synapsex.runtime.persistence import write_migrations


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Apply each service's pending migrations to its own database "
        "(its SQLite file, or its schema on PostgreSQL). Prints one JSON line per service.",
    )
    add_service(parser, required=False)
    parser.add_argument(
        "--plan", action="store_true", help="only show what would be applied; change nothing"
    )
    add_data_dir(parser)
    parser.set_defaults(run=run)

    maker = commands.add_parser(
        "makemigrations",
        help="(developers) write a migration for changed models",
        description="Compare a service's models with its migrations package and write a new "
        "migration file for the difference. Review it and commit it with the model change.",
    )
    add_service(maker, required=False)
    maker.set_defaults(run=run_makemigrations)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    actors = load_services([args.service] if args.service else None)
    runtime = Runtime(actors, settings=settings)
    for db in runtime.databases():
        await db.open()
        try:
            pending = await db.pending_migrations()
            applied = [] if args.plan else await db.migrate()
        finally:
            await db.aclose()
        print_json(
            {
                "service": db.service,
                "database": db.config.display_url,
                "pending" if args.plan else "applied": pending if args.plan else applied,
            }
        )
    return 0


async def run_makemigrations(args: argparse.Namespace, settings: Settings) -> int:
    for actor in load_services([args.service] if args.service else None):
        spec = actor.actor_spec
        if not spec.models or not spec.migrations:
            continue
        written = await write_migrations(
            spec.service, service_slug(spec.service), spec.models, spec.migrations
        )
        print_json({"service": spec.service, "written": written})
    return 0
