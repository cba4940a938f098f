"""The model catalog through the gateway, every service running on both engines: the seeded
catalog seen by two tenants, filters, search and pages, a tenant's own models and prices kept
from the other tenant, effective-dated prices as Decimal strings, deprecation with a successor,

# the services these tests need
GATEWAY_SERVICES = [*CORE_SERVICES, "model-registry-service"]
validation errors naming their field, roles, and the audit trail of every mutation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from synapsex.actors.model_registry.seed import CATALOG
from synapsex.contracts.models import GetPriceTimeline

from .conftest import Caller, Gateway, running_gateway

#: what the catalog's requests touch: keys, tenants, policy, audit (and the bus their events go to)
SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "model-registry-service",
]

PRICE = "inputPerMTok outputPerMTok cachedInputPerMTok effectiveFrom source scope"
MODEL = (
    "id provider name displayName modality capabilities contextWindow maxOutputTokens "
    f"deprecationDate successorId scope createdAt currentPrice {{ {PRICE} }} "
    f"priceHistory {{ {PRICE} }} successor {{ id name }}"
)
LIST = f"""query ($provider: String, $capability: String, $search: String,
                  $first: Int, $after: String) {{
  models(provider: $provider, capability: $capability, search: $search,
         first: $first, after: $after) {{
    edges {{ cursor node {{ {MODEL} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
GET = f"query ($id: ID!) {{ model(id: $id) {{ {MODEL} }} }}"
REGISTER = f"""mutation ($input: RegisterModelInput!) {{
  registerModel(input: $input) {{ {MODEL} }}
}}"""
SET_PRICE = f"""mutation ($input: SetModelPriceInput!) {{
  setModelPrice(input: $input) {{ {MODEL} }}
}}"""
DEPRECATE = f"""mutation ($input: DeprecateModelInput!) {{
  deprecateModel(input: $input) {{ {MODEL} }}
}}"""
AUDIT = """{ auditRecords(first: 100) { edges { node {
  action resourceType resourceId outcome errorCode
} } } }"""


@pytest.fixture
async def gateway(tmp_path, db_environ, aiohttp_client) -> AsyncIterator[Gateway]:
    """The gateway with only the services these tests need."""
    async with running_gateway(tmp_path, db_environ, aiohttp_client, SERVICES) as gateway:
        yield gateway


def code(error: dict) -> str:
    return error["extensions"]["code"]


async def listed(caller: Caller, **variables) -> list[dict]:
    nodes: list[dict] = []
    after = None
    while True:
        data = await caller.data(LIST, {"first": 100, "after": after, **variables})
        nodes += [edge["node"] for edge in data["models"]["edges"]]
        if not data["models"]["pageInfo"]["hasNextPage"]:
            return nodes
        after = data["models"]["pageInfo"]["endCursor"]


async def register(caller: Caller, name: str = "house-llm", **fields) -> dict:
    variables = {
        "input": {
            "provider": "acme",
            "name": name,
            "displayName": "House LLM",
            "modality": "text",
            "capabilities": ["chat", "tools"],
            "contextWindow": 32000,
            "maxOutputTokens": 4000,
            **fields,
        }
    }
    return (await caller.data(REGISTER, variables))["registerModel"]


BASIC_MODEL = {
    "provider": "acme",
    "displayName": "A model",
    "modality": "text",
    "capabilities": ["chat"],
    "contextWindow": 1000,
}


def price_input(model_id: str, at: datetime, input: str = "1.25", **fields) -> dict:
    return {
        "input": {
            "modelId": model_id,
            "inputPerMTok": input,
            "outputPerMTok": "5",
            "cachedInputPerMTok": "0.125",
            "effectiveFrom": at.isoformat(),
            "source": "https://example.com/contract-2027",
            **fields,
        }
    }


async def test_seeded_catalog_is_seen_by_two_tenants(gateway: Gateway):
    acme = await listed(gateway.acme)
    globex = await listed(gateway.globex)
    assert [m["id"] for m in acme] == [m["id"] for m in globex]
    assert len(acme) == len(CATALOG) >= 15
    sonnet = next(m for m in acme if m["name"] == "claude-sonnet-4-5")
    assert sonnet["scope"] == "PLATFORM"
    assert sonnet["currentPrice"] == {
        "inputPerMTok": "3",
        "outputPerMTok": "15",
        "cachedInputPerMTok": "0.3",
        "effectiveFrom": sonnet["currentPrice"]["effectiveFrom"],
        "source": "https://platform.claude.com/docs/en/about-claude/pricing",
        "scope": "PLATFORM",
    }
    assert sonnet["deprecationDate"] == "2026-11-30"
    assert sonnet["successor"]["name"] == "claude-sonnet-5-5"
    embed = next(m for m in acme if m["name"] == "text-embedding-3-small")
    assert (embed["maxOutputTokens"], embed["currentPrice"]["inputPerMTok"]) == (None, "0.02")


async def test_filters_search_and_pages(gateway: Gateway):
    caller = gateway.acme
    google = await listed(caller, provider="google")
    assert google
    assert {m["provider"] for m in google} == {"google"}
    reasoning = await listed(caller, capability="reasoning", search="CLAUDE")
    assert reasoning
    assert all("reasoning" in m["capabilities"] for m in reasoning)
    assert {m["provider"] for m in reasoning} == {"anthropic"}
    assert [m["name"] for m in await listed(caller, search="Instant (Groq)")] == [
        "llama-3.1-8b-instant"
    ]
    everything = [m["id"] for m in await listed(caller)]
    walked, after = [], None
    while True:
        data = await caller.data(LIST, {"first": 7, "after": after})
        walked += [edge["node"]["id"] for edge in data["models"]["edges"]]
        info = data["models"]["pageInfo"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert walked == everything
    error = await caller.error(LIST, {"capability": "telepathy"})
    assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", "capability")
    error = await caller.error(LIST, {"first": 101})
    assert code(error) == "INVALID_INPUT"


async def test_a_tenant_model_and_override_are_invisible_to_another_tenant(gateway: Gateway):
    own = await register(gateway.acme)
    assert (own["scope"], own["currentPrice"], own["priceHistory"]) == ("TENANT", None, [])
    assert [m["id"] for m in await listed(gateway.acme, provider="acme")] == [own["id"]]
    assert await listed(gateway.globex, provider="acme") == []
    for lookup in (own["id"], "acme/house-llm"):
        assert code(await gateway.globex.error(GET, {"id": lookup})) == "NOT_FOUND"
    error = await gateway.globex.error(SET_PRICE, price_input(own["id"], datetime.now(UTC)))
    assert code(error) == "NOT_FOUND"

    gpt = (await gateway.acme.data(GET, {"id": "openai/gpt-4.1"}))["model"]
    await gateway.acme.data(SET_PRICE, price_input(gpt["id"], datetime.now(UTC), "1.5"))
    mine = (await gateway.acme.data(GET, {"id": gpt["id"]}))["model"]
    theirs = (await gateway.globex.data(GET, {"id": gpt["id"]}))["model"]
    assert (mine["currentPrice"]["scope"], mine["currentPrice"]["inputPerMTok"]) == (
        "TENANT",
        "1.5",
    )
    assert [p["scope"] for p in mine["priceHistory"]] == ["PLATFORM", "TENANT"]
    assert theirs["currentPrice"] == gpt["currentPrice"]
    assert [p["scope"] for p in theirs["priceHistory"]] == ["PLATFORM"]


async def test_effective_dated_prices_through_the_gateway(gateway: Gateway):
    own = await register(gateway.acme)
    now = datetime.now(UTC)
    later = now + timedelta(days=10)
    first = (await gateway.acme.data(SET_PRICE, price_input(own["id"], now, "1.10")))[
        "setModelPrice"
    ]
    assert first["currentPrice"]["inputPerMTok"] == "1.1"  # exact, without the stored scale
    second = (await gateway.acme.data(SET_PRICE, price_input(own["id"], later, "0.90")))[
        "setModelPrice"
    ]
    assert second["currentPrice"]["inputPerMTok"] == "1.1"  # the later price is not in force yet
    assert [p["inputPerMTok"] for p in second["priceHistory"]] == ["1.1", "0.9"]
    timeline = await gateway.runtime.ask(
        GetPriceTimeline(tenant_id=gateway.acme.tenant_id, model=own["id"])
    )
    assert [t.effective_from for t in timeline] == [
        datetime.fromisoformat(p["effectiveFrom"]) for p in second["priceHistory"]
    ]

    error = await gateway.acme.error(SET_PRICE, price_input(own["id"], later, "0.80"))
    assert (code(error), error["extensions"]["field"]) == ("CONFLICT", "effectiveFrom")
    error = await gateway.acme.error(
        SET_PRICE, price_input(own["id"], now - timedelta(days=2), "0.80")
    )
    assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", "effectiveFrom")


async def test_a_price_without_effective_from_starts_now_and_naive_times_are_utc(
    gateway: Gateway,
):
    own = await register(gateway.acme)
    variables = price_input(own["id"], datetime.now(UTC))
    del variables["input"]["effectiveFrom"]
    made = (await gateway.acme.data(SET_PRICE, variables))["setModelPrice"]
    assert made["currentPrice"]["scope"] == "TENANT"
    naive = (datetime.now(UTC) + timedelta(days=3)).replace(tzinfo=None, microsecond=0)
    variables = price_input(own["id"], naive)
    made = (await gateway.acme.data(SET_PRICE, variables))["setModelPrice"]
    starts = [datetime.fromisoformat(p["effectiveFrom"]) for p in made["priceHistory"]]
    assert starts[-1] == naive.replace(tzinfo=UTC)


async def test_validation_errors_name_their_fields(gateway: Gateway):
    caller = gateway.acme
    cases = [
        ({"capabilities": ["chat", "mind_reading"]}, "capabilities"),
        ({"contextWindow": 0}, "contextWindow"),
        ({"maxOutputTokens": 0}, "maxOutputTokens"),
        ({"modality": "smell"}, "modality"),
    ]
    for change, field in cases:
        error = await caller.error(REGISTER, {"input": {**BASIC_MODEL, "name": "bad", **change}})
        assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", field), change
    own = await register(caller)
    now = datetime.now(UTC)
    for change, field in [
        ({"inputPerMTok": "-1"}, "inputPerMTok"),
        ({"outputPerMTok": "-0.5"}, "outputPerMTok"),
        ({"cachedInputPerMTok": "-0.1"}, "cachedInputPerMTok"),
        ({"source": ""}, "source"),
    ]:
        error = await caller.error(SET_PRICE, price_input(own["id"], now, **change))
        assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", field), change
    error = await caller.error(SET_PRICE, price_input(own["id"], now, input="cheap"))
    assert code(error) == "INVALID_INPUT"


async def test_deprecation_with_a_successor(gateway: Gateway):
    old = await register(gateway.acme, "house-llm-1")
    new = await register(gateway.acme, "house-llm-2")
    data = await gateway.acme.data(
        DEPRECATE, {"input": {"id": old["id"], "date": "2027-03-01", "successorId": new["id"]}}
    )
    deprecated = data["deprecateModel"]
    assert (deprecated["deprecationDate"], deprecated["successorId"]) == ("2027-03-01", new["id"])
    assert deprecated["successor"] == {"id": new["id"], "name": "house-llm-2"}

    platform = (await gateway.acme.data(GET, {"id": "openai/gpt-4o"}))["model"]
    error = await gateway.acme.error(
        DEPRECATE, {"input": {"id": platform["id"], "date": "2027-01-01"}}
    )
    assert code(error) == "FORBIDDEN"
    foreign = await register(gateway.globex, "their-llm")
    error = await gateway.acme.error(
        DEPRECATE,
        {"input": {"id": old["id"], "date": "2027-01-01", "successorId": foreign["id"]}},
    )
    assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", "successorId")


async def test_roles_viewers_read_members_register_admins_change(gateway: Gateway):
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    assert len(await listed(viewer)) == len(CATALOG)
    refused = await viewer.error(REGISTER, {"input": {**BASIC_MODEL, "name": "v"}})
    assert code(refused) == "FORBIDDEN"
    own = await register(member)
    now = datetime.now(UTC)
    for caller in (viewer, member):
        assert code(await caller.error(SET_PRICE, price_input(own["id"], now))) == "FORBIDDEN"
        error = await caller.error(DEPRECATE, {"input": {"id": own["id"], "date": "2027-01-01"}})
        assert code(error) == "FORBIDDEN"
    await admin.data(SET_PRICE, price_input(own["id"], now))
    await admin.data(DEPRECATE, {"input": {"id": own["id"], "date": "2027-01-01"}})


async def test_every_model_mutation_is_audited(gateway: Gateway):
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    own = await register(gateway.acme)
    await gateway.acme.data(SET_PRICE, price_input(own["id"], datetime.now(UTC)))
    await gateway.acme.error(SET_PRICE, price_input(own["id"], datetime.now(UTC), "-1"))
    await viewer.error(DEPRECATE, {"input": {"id": own["id"], "date": "2027-01-01"}})
    records = [e["node"] for e in (await gateway.acme.data(AUDIT))["auditRecords"]["edges"]]
    records.reverse()  # newest first
    mine = [
        (r["action"], r["resourceId"], r["outcome"], r["errorCode"])
        for r in records
        if r["resourceType"] == "model"
    ]
    assert mine == [
        ("model.create", own["id"], "SUCCESS", None),
        ("model.price.set", own["id"], "SUCCESS", None),
        ("model.price.set", own["id"], "FAILURE", "INVALID_INPUT"),
        ("model.deprecate", own["id"], "DENIED", "FORBIDDEN"),
    ]
