"""Billing through the gateway with the real model registry, on both engines: recordUsage
(idempotent, audited, role-checked), usage events from a service, costs from effective-dated
registry prices as exact Decimal strings, cached tokens, grouping, the daily limit, validation
errors naming their field, and tenant isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from synapsex.contracts.billing import USAGE_TOPIC, ReserveToolCalls
from synapsex.contracts.events import PublishEvent
from synapsex.contracts.models import GetPriceTimeline
from synapsex.runtime.testing import wait_until

from .conftest import CORE_SERVICES, Caller, Gateway, running_gateway

# the services these tests need
GATEWAY_SERVICES = [*CORE_SERVICES, "billing-service", "model-registry-service"]

SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "model-registry-service",
    "billing-service",
]
DEADLINE = 10.0

RECORD = """mutation ($input: RecordUsageInput!) {
  recordUsage(input: $input) { id kind quantity model at source idempotencyKey createdAt }
}"""
SUMMARY = """query ($from: DateTime, $to: DateTime, $groupBy: [UsageGroupBy!]) {
  usageSummary(from: $from, to: $to, groupBy: $groupBy) {
    from to groupBy currency totalCost
    lines { kind model day quantity cost unpricedQuantity pricing }
  }
}"""
RECORDS = """query ($kind: UsageKind) {
  usageRecords(first: 100, kind: $kind) { edges { node { id kind quantity idempotencyKey } } }
}"""
LIMITS = "{ usageLimits { day toolCallsUsed toolCallsPerDay toolCallsRemaining resetsAt } }"
REGISTER = """mutation ($input: RegisterModelInput!) { registerModel(input: $input) { id } }"""
SET_PRICE = """mutation ($input: SetModelPriceInput!) { setModelPrice(input: $input) { id } }"""
AUDIT = "{ auditRecords(first: 100) { edges { node { action resourceType resourceId outcome } } } }"


@pytest.fixture
async def gateway(tmp_path, db_environ, aiohttp_client) -> AsyncIterator[Gateway]:
    """The gateway with only the services these tests need."""
    async with running_gateway(tmp_path, db_environ, aiohttp_client, SERVICES) as gateway:
        yield gateway


def code(error: dict) -> str:
    return error["extensions"]["code"]


async def record(caller: Caller, **fields) -> dict:
    return (await caller.data(RECORD, {"input": fields}))["recordUsage"]


async def summary(caller: Caller, start: datetime, end: datetime, *group_by: str) -> dict:
    variables = {"from": start.isoformat(), "to": end.isoformat(), "groupBy": list(group_by)}
    return (await caller.data(SUMMARY, variables))["usageSummary"]


async def own_model(caller: Caller, name: str) -> str:
    variables = {
        "input": {
            "provider": "acme",
            "name": name,
            "displayName": name,
            "modality": "text",
            "capabilities": ["chat"],
            "contextWindow": 32000,
        }
    }
    return (await caller.data(REGISTER, variables))["registerModel"]["id"]


async def set_price(
    caller: Caller, model_id: str, at: datetime, input: str, output: str, cached: str | None
) -> None:
    variables = {
        "input": {
            "modelId": model_id,
            "inputPerMTok": input,
            "outputPerMTok": output,
            "cachedInputPerMTok": cached,
            "effectiveFrom": at.isoformat(),
            "source": "https://example.com/prices",
        }
    }
    await caller.data(SET_PRICE, variables)


# ---------------------------------------------------------------------------- recording


async def test_record_usage_is_idempotent_and_every_call_is_audited(gateway: Gateway):
    first = await record(gateway.acme, kind="TOOL_CALL", quantity=2, idempotencyKey="call-7")
    again = await record(gateway.acme, kind="TOOL_CALL", quantity=9, idempotencyKey="call-7")
    assert again == first
    assert (first["quantity"], first["source"]) == (2, f"apikey:{await key_id(gateway.acme)}")
    nodes = (await gateway.acme.data(RECORDS))["usageRecords"]["edges"]
    assert [n["node"]["id"] for n in nodes] == [first["id"]]
    audit = [e["node"] for e in (await gateway.acme.data(AUDIT))["auditRecords"]["edges"]]
    usage = [a for a in audit if a["action"] == "usage.record"]
    assert [(a["outcome"], a["resourceId"]) for a in usage] == [("SUCCESS", first["id"])] * 2


async def key_id(caller: Caller) -> str:
    return (await caller.data("{ me { keyId } }"))["me"]["keyId"]


async def test_roles_record_usage_admins_and_owners_only_while_everyone_reads(gateway: Gateway):
    viewer = await gateway.key_for(gateway.acme, "viewer", "v@acme.io")
    member = await gateway.key_for(gateway.acme, "member", "m@acme.io")
    admin = await gateway.key_for(gateway.acme, "admin", "a@acme.io")
    for caller in (viewer, member):
        error = await caller.error(RECORD, {"input": {"kind": "EVENT", "quantity": 1}})
        assert code(error) == "FORBIDDEN"
    assert (await record(admin, kind="EVENT", quantity=1))["kind"] == "EVENT"
    now = datetime.now(UTC)
    lines = (await summary(viewer, now - timedelta(days=1), now + timedelta(days=1)))["lines"]
    assert [(line["kind"], line["quantity"]) for line in lines] == [("EVENT", 1)]
    assert (await viewer.data(LIMITS))["usageLimits"]["toolCallsPerDay"] == 100_000
    audit = [e["node"] for e in (await gateway.acme.data(AUDIT))["auditRecords"]["edges"]]
    outcomes = sorted(a["outcome"] for a in audit if a["action"] == "usage.record")
    assert outcomes == ["DENIED", "DENIED", "SUCCESS"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "TOOL_CALL", "quantity": 0}, "quantity"),
        ({"kind": "INPUT_TOKENS", "quantity": 10}, "model"),
        ({"kind": "INPUT_TOKENS", "quantity": 10, "model": "nobody/nothing"}, "model"),
        ({"kind": "TOOL_CALL", "quantity": 1, "model": "openai/gpt-4o"}, "model"),
        ({"kind": "EVENT", "quantity": 1, "idempotencyKey": ""}, "idempotencyKey"),
        ({"kind": "EVENT", "quantity": 1, "at": "2999-01-01T00:00:00Z"}, "at"),
    ],
    ids=["zero", "no-model", "unknown-model", "model-on-tool-call", "empty-key", "future"],
)
async def test_bad_usage_is_invalid_input_naming_the_field(gateway: Gateway, fields, field):
    error = await gateway.acme.error(RECORD, {"input": fields})
    assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", field)


async def test_a_summary_period_must_run_forward(gateway: Gateway):
    now = datetime.now(UTC)
    variables = {"from": now.isoformat(), "to": (now - timedelta(days=1)).isoformat()}
    error = await gateway.acme.error(SUMMARY, variables)
    assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", "to")


# ---------------------------------------------------------------------------- costs


async def test_costs_follow_the_registry_price_in_force_when_each_usage_happened(
    gateway: Gateway,
):
    acme = gateway.acme
    model = await own_model(acme, "house")
    now = datetime.now(UTC).replace(microsecond=0)
    change = now + timedelta(seconds=60)
    await set_price(acme, model, now, "1.1", "4.4", "0.11")
    await set_price(acme, model, change, "2.2", "8.8", None)
    before, after = now + timedelta(seconds=1), change + timedelta(seconds=1)
    for at in (before, after):
        for kind in ("INPUT_TOKENS", "CACHED_INPUT_TOKENS"):
            await record(acme, kind=kind, quantity=1_000_000, model=model, at=at.isoformat())
    await record(acme, kind="TOOL_CALL", quantity=3, at=before.isoformat())
    result = await summary(acme, now, now + timedelta(days=1), "KIND", "MODEL")
    lines = {(line["kind"], line["model"]): line for line in result["lines"]}
    # before the change: 1.1 input, 0.11 cached; after it: 2.2, and cached at the input price
    assert lines[("INPUT_TOKENS", model)]["cost"] == "3.3"
    assert lines[("CACHED_INPUT_TOKENS", model)]["cost"] == "2.31"
    tool_calls = lines[("TOOL_CALL", None)]
    assert (tool_calls["cost"], tool_calls["pricing"], tool_calls["unpricedQuantity"]) == (
        "0",
        "NOT_PRICED",
        3,
    )
    assert result["totalCost"] == "5.61"  # floats would say 5.609999999999999
    assert (result["currency"], result["groupBy"]) == ("USD", ["KIND", "MODEL"])


async def test_usage_events_from_a_service_are_priced_at_the_seeded_price(gateway: Gateway):
    rt, acme = gateway.runtime, gateway.acme
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for kind, quantity in (("INPUT_TOKENS", 1234), ("OUTPUT_TOKENS", 567)):
        await rt.ask(
            PublishEvent(
                tenant_id=acme.tenant_id,
                source="mcp-router-service",
                topic=USAGE_TOPIC,
                payload={"kind": kind, "quantity": quantity, "model": "openai/gpt-4o"},
            )
        )

    async def two_records() -> bool:
        return len((await acme.data(RECORDS))["usageRecords"]["edges"]) == 2

    await wait_until(two_records, deadline=DEADLINE)
    (price,) = [
        p
        for p in await rt.ask(GetPriceTimeline(tenant_id=acme.tenant_id, model="openai/gpt-4o"))
        if p.effective_from <= datetime.now(UTC)
    ][-1:]
    expected = (1234 * price.input_per_mtok + 567 * price.output_per_mtok) / Decimal(1_000_000)
    result = await summary(acme, day, day + timedelta(days=1), "DAY")
    assert [line["day"] for line in result["lines"]] == [day.date().isoformat()] * 2
    assert Decimal(result["totalCost"]) == expected
    assert all(line["model"] is None for line in result["lines"])  # not grouped by model


# ---------------------------------------------------------------------------- limits, tenants


async def test_usage_limits_show_the_day_the_plan_limit_and_reservations(gateway: Gateway):
    await gateway.runtime.ask(ReserveToolCalls(tenant_id=gateway.acme.tenant_id, count=3))
    limits = (await gateway.acme.data(LIMITS))["usageLimits"]
    assert (limits["toolCallsUsed"], limits["toolCallsPerDay"], limits["toolCallsRemaining"]) == (
        3,
        100_000,
        99_997,
    )
    assert limits["day"] == datetime.now(UTC).date().isoformat()
    assert (await gateway.globex.data(LIMITS))["usageLimits"]["toolCallsUsed"] == 0


async def test_tenants_see_only_their_own_usage(gateway: Gateway):
    acme = await record(gateway.acme, kind="EVENT", quantity=5, idempotencyKey="shared")
    globex = await record(gateway.globex, kind="EVENT", quantity=1, idempotencyKey="shared")
    assert acme["id"] != globex["id"]
    edges = (await gateway.globex.data(RECORDS))["usageRecords"]["edges"]
    assert [e["node"]["id"] for e in edges] == [globex["id"]]
    now = datetime.now(UTC)
    result = await summary(gateway.globex, now - timedelta(hours=1), now + timedelta(hours=1))
    assert [line["quantity"] for line in result["lines"]] == [1]
