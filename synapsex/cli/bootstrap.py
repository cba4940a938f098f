"""``synapsex bootstrap``: the first tenant and its owner's API key, printed once as JSON."""

from __future__ import annotations

import argparse

from synapsex.cli.common import add_data_dir, print_json
from synapsex.config import Settings
from synapsex.contracts.audit import RecordAudit
from synapsex.contracts.auth import CreateApiKey
from synapsex.contracts.tenant import PLANS, BootstrapTenant, slugify
from synapsex.runtime import Runtime, load_services

# the event bus too, so the new tenant's domain events (tenant.created, …) are published
SERVICES = ["tenant-service", "auth-service", "audit-service", "event-bus-service"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bootstrap",
        help="create a tenant and an owner API key",
        description="Create a tenant, its owner and an owner API key, and print one JSON line "
        '{"tenant_id": ..., "api_key": "sx_..."}. The key is shown only here. Works whether or '
        "not a server runs on the same data folder. An existing tenant name exits with 1.",
    )
    parser.add_argument("--tenant", required=True, metavar="NAME", help="the tenant's name")
    parser.add_argument("--email", help="the owner's email (default owner@<slug>.local)")
    parser.add_argument("--plan", default="free", choices=PLANS, help="the plan (default free)")
    add_data_dir(parser)
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    email = args.email or f"owner@{slugify(args.tenant) or 'tenant'}.local"
    message = BootstrapTenant(name=args.tenant, owner_email=email, plan=args.plan)
    async with Runtime(load_services(SERVICES), settings=settings) as rt:
        created = await rt.ask(message)
        key = await rt.ask(
            CreateApiKey(
                tenant_id=created.tenant.id,
                member_id=created.owner.id,
                role="owner",
                name="bootstrap",
            )
        )
        await rt.ask(
            RecordAudit(
                tenant_id=created.tenant.id,
                actor_member_id=created.owner.id,
                action="tenant.bootstrap",
                resource_type="tenant",
                resource_id=created.tenant.id,
                outcome="SUCCESS",
            )
        )
    print_json({"tenant_id": created.tenant.id, "api_key": key.key})
    return 0
