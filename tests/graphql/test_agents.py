"""Agents through the gateway, on both engines: register, list, read, update and archive with
their events and audit records; names unique per tenant; validation errors naming their
field; the plan's agents limit (archived agents do not count) under parallel registrations;
roles; and tenant isolation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from synapsex.contracts.events import ListEvents

from .conftest import Caller, Gateway, running_gateway

SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "api-gateway",
]

AGENT = "id name description capabilities version status createdAt updatedAt archivedAt createdBy"
REGISTER = (
    f"mutation ($input: RegisterAgentInput!) {{ registerAgent(input: $input) {{ {AGENT} }} }}"
)
UPDATE = f"mutation ($input: UpdateAgentInput!) {{ updateAgent(input: $input) {{ {AGENT} }} }}"
ARCHIVE = f"mutation ($input: ArchiveAgentInput!) {{ archiveAgent(input: $input) {{ {AGENT} }} }}"
GET = f"query ($id: ID!) {{ agent(id: $id) {{ {AGENT} }} }}"
LIST = f"""query ($status: AgentStatus, $capability: String, $first: Int, $after: String) {{
  agents(status: $status, capability: $capability, first: $first, after: $after) {{
    edges {{ cursor node {{ {AGENT} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
LIST_DEFAULT = "{ agents { edges { node { id status } } } }"
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


def agent_input(name: str = "Support Bot", **fields) -> dict:
    return {
        "input": {
            "name": name,
            "description": "Answers tickets",
            "capabilities": ["web_search", "code:python"],
            "version": "1.0.0",
            **fields,
        }
    }


async def register(caller: Caller, name: str = "Support Bot", **fields) -> dict:
    return (await caller.data(REGISTER, agent_input(name, **fields)))["registerAgent"]


async def listed(caller: Caller, **variables) -> list[dict]:
    nodes: list[dict] = []
    after = None
    while True:
        data = await caller.data(LIST, {"first": 2, "after": after, **variables})
        nodes += [edge["node"] for edge in data["agents"]["edges"]]
        if not data["agents"]["pageInfo"]["hasNextPage"]:
            return nodes
        after = data["agents"]["pageInfo"]["endCursor"]


async def test_an_agent_is_registered_listed_updated_and_archived(gateway: Gateway):
    acme = gateway.acme
    bot = await register(acme)
    assert (bot["name"], bot["version"], bot["status"]) == ("Support Bot", "1.0.0", "ACTIVE")
    assert bot["capabilities"] == ["web_search", "code:python"]
    assert (bot["createdBy"], bot["archivedAt"]) == (acme.member_id, None)
    assert (await acme.data(GET, {"id": bot["id"]}))["agent"] == bot
    minimal = (await acme.data(REGISTER, {"input": {"name": "Minimal", "version": "0.1.0"}}))[
        "registerAgent"
    ]
    assert (minimal["description"], minimal["capabilities"]) == ("", [])
    assert [a["id"] for a in await listed(acme)] == [bot["id"], minimal["id"]]
    assert [a["id"] for a in await listed(acme, capability="Web_Search")] == [bot["id"]]

    updated = (
        await acme.data(
            UPDATE, {"input": {"id": bot["id"], "version": "1.1.0", "capabilities": ["chat"]}}
        )
    )["updateAgent"]
    assert (updated["version"], updated["capabilities"], updated["name"]) == (
        "1.1.0",
        ["chat"],
        "Support Bot",
    )
    archived = (await acme.data(ARCHIVE, {"input": {"id": bot["id"]}}))["archiveAgent"]
    assert archived["status"] == "ARCHIVED"
    assert archived["archivedAt"] is not None
    default = (await acme.data(LIST_DEFAULT))["agents"]["edges"]
    assert [e["node"]["id"] for e in default] == [minimal["id"]]  # ACTIVE ones by default
    assert [a["id"] for a in await listed(acme, status=None)] == [bot["id"], minimal["id"]]
    assert [a["id"] for a in await listed(acme, status="ARCHIVED")] == [bot["id"]]
    error = await acme.error(UPDATE, {"input": {"id": bot["id"], "name": "Again"}})
    assert (code(error), error["extensions"]["field"]) == ("CONFLICT", "id")

    page = await gateway.runtime.ask(
        ListEvents(tenant_id=acme.tenant_id, topic="agent.#", first=100)
    )
    assert [(e.topic, e.payload["id"]) for e in page.items] == [
        ("agent.registered", bot["id"]),
        ("agent.registered", minimal["id"]),
        ("agent.updated", bot["id"]),
        ("agent.archived", bot["id"]),
    ]
    records = [e["node"] for e in (await acme.data(AUDIT))["auditRecords"]["edges"]]
    records.reverse()  # newest first
    mine = [
        (r["action"], r["resourceId"], r["outcome"], r["errorCode"])
        for r in records
        if r["resourceType"] == "agent"
    ]
    assert mine == [
        ("agent.create", bot["id"], "SUCCESS", None),
        ("agent.create", minimal["id"], "SUCCESS", None),
        ("agent.update", bot["id"], "SUCCESS", None),
        ("agent.archive", bot["id"], "SUCCESS", None),
        ("agent.update", bot["id"], "FAILURE", "CONFLICT"),
    ]


async def test_validation_errors_and_taken_names_name_their_fields(gateway: Gateway):
    acme = gateway.acme
    cases = [
        ({"version": "1.0"}, "version"),
        ({"version": "v1.2.3"}, "version"),
        ({"name": ""}, "name"),
        ({"name": "bad/name"}, "name"),
        ({"capabilities": ["ok", "not ok"]}, "capabilities"),
        ({"capabilities": [f"c{i}" for i in range(40)]}, "capabilities"),
        ({"description": "x" * 2001}, "description"),
    ]
    for change, field in cases:
        error = await acme.error(REGISTER, agent_input(**{"name": "Bot", **change}))
        assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", field), change
    bot = await register(acme, "Bot")
    error = await acme.error(UPDATE, {"input": {"id": bot["id"], "version": "2"}})
    assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", "version")
    error = await acme.error(REGISTER, agent_input("BOT"))
    assert (code(error), error["extensions"]["field"]) == ("CONFLICT", "name")
    error = await acme.error(LIST, {"first": 101})
    assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", "first")
    assert await listed(acme, status="ACTIVE") == [bot]  # nothing else was made


async def test_the_plan_limit_holds_under_parallel_registrations(gateway: Gateway):
    globex = gateway.globex  # the free plan: 3 agents
    archived = await register(globex, "Old")
    await globex.data(ARCHIVE, {"input": {"id": archived["id"]}})  # does not count
    bodies = await asyncio.gather(
        *(globex.gql(REGISTER, agent_input(f"Agent {i}")) for i in range(10))
    )
    made = [b for b in bodies if "errors" not in b]
    refused = [b["errors"][0] for b in bodies if "errors" in b]
    assert len(made) == 3
    assert {(code(e), e["extensions"]["limit"]) for e in refused} == {("LIMIT_EXCEEDED", "agents")}
    assert len(await listed(globex, status="ACTIVE")) == 3
    await globex.data(ARCHIVE, {"input": {"id": made[0]["data"]["registerAgent"]["id"]}})
    await register(globex, "Replacement")  # the archived agent's slot came back


async def test_roles_members_change_their_own_agents_admins_any(gateway: Gateway):
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    assert code(await viewer.error(REGISTER, agent_input("Viewer Bot"))) == "FORBIDDEN"
    own = await register(member, "Member Bot")
    owners = await register(gateway.acme, "Owner Bot")
    await member.data(UPDATE, {"input": {"id": own["id"], "version": "1.0.1"}})
    error = await member.error(UPDATE, {"input": {"id": owners["id"], "version": "1.0.1"}})
    assert code(error) == "FORBIDDEN"
    assert code(await member.error(ARCHIVE, {"input": {"id": owners["id"]}})) == "FORBIDDEN"
    assert code(await viewer.error(ARCHIVE, {"input": {"id": own["id"]}})) == "FORBIDDEN"
    await admin.data(ARCHIVE, {"input": {"id": owners["id"]}})
    await member.data(ARCHIVE, {"input": {"id": own["id"]}})
    assert len(await listed(viewer, status="ARCHIVED")) == 2  # every role reads


async def test_another_tenants_agent_is_not_found(gateway: Gateway):
    bot = await register(gateway.acme)
    globex = gateway.globex
    assert code(await globex.error(GET, {"id": bot["id"]})) == "NOT_FOUND"
    error = await globex.error(UPDATE, {"input": {"id": bot["id"], "name": "Mine"}})
    assert code(error) == "NOT_FOUND"
    assert code(await globex.error(ARCHIVE, {"input": {"id": bot["id"]}})) == "NOT_FOUND"
    assert await listed(globex, status=None) == []
    await register(globex)  # the same name in another tenant is fine
    assert (await gateway.acme.data(GET, {"id": bot["id"]}))["agent"] == bot
