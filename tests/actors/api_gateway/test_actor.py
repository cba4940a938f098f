"""api-gateway's agent records on both engines: register, read, list, update, archive and
their events; names unique per tenant (case-insensitively, freed by archiving); validation
naming each field; tenant isolation; and the plan's agents limit under concurrent
registrations, in one runtime and in two sharing one database."""

from __future__ import annotations

import asyncio

import pytest

from synapsex.contracts.agents import (
    AgentView,
    ArchiveAgent,
    GetAgent,
    ListAgents,
    RegisterAgent,
    UpdateAgent,
)
from synapsex.contracts.errors import Conflict, InvalidInput, LimitExceeded, NotFound
from synapsex.contracts.events import ListEvents
from synapsex.contracts.tenant import CreateTenant, UpdateTenantPlan
from synapsex.runtime import Runtime

SERVICES = ["tenant-service", "event-bus-service", "api-gateway"]


def embedded(tmp_path, db_environ) -> Runtime:
    return Runtime.embedded(data_dir=tmp_path, services=SERVICES, environ=db_environ)


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as runtime:
        yield runtime


async def tenant(rt: Runtime, name: str = "Acme", **limits: int) -> str:
    return (await rt.ask(CreateTenant(name=name, plan="pro", limits=limits or None))).id


async def register(rt: Runtime, tenant_id: str, name: str = "Support Bot", **kw) -> AgentView:
    fields = {
        "description": "Answers tickets",
        "capabilities": ("web_search", "code:python"),
        "version": "1.0.0",
        **kw,
    }
    return await rt.ask(RegisterAgent(tenant_id=tenant_id, name=name, **fields))


async def listed(rt: Runtime, tenant_id: str, **filters) -> list[AgentView]:
    items: list[AgentView] = []
    after = None
    while True:
        page = await rt.ask(ListAgents(tenant_id=tenant_id, first=2, after=after, **filters))
        items += page.items
        if not page.has_next_page:
            return items
        after = page.end_cursor


async def topics(rt: Runtime, tenant_id: str) -> list[tuple[str, dict]]:
    page = await rt.ask(ListEvents(tenant_id=tenant_id, topic="agent.#", first=100))
    return [(e.topic, e.payload) for e in page.items]


async def test_an_agent_is_registered_read_listed_updated_and_archived_with_its_events(rt):
    acme = await tenant(rt)
    agent = await register(rt, acme, created_by="mem_1")
    assert (agent.name, agent.version, agent.status) == ("Support Bot", "1.0.0", "ACTIVE")
    assert agent.capabilities == ("web_search", "code:python")
    assert (agent.created_by, agent.archived_at) == ("mem_1", None)
    assert await rt.ask(GetAgent(tenant_id=acme, id=agent.id)) == agent

    other = await register(rt, acme, "Coder", capabilities=("Code:Python",), version="0.1.0")
    assert [a.id for a in await listed(rt, acme)] == [agent.id, other.id]
    by_capability = await listed(rt, acme, capability="CODE:python")  # case-insensitive
    assert [a.id for a in by_capability] == [agent.id, other.id]
    assert [a.id for a in await listed(rt, acme, capability="web_search")] == [agent.id]
    assert await listed(rt, acme, capability="web") == []  # a whole tag, not a substring

    updated = await rt.ask(
        UpdateAgent(tenant_id=acme, id=agent.id, version="1.1.0-rc.1", description="")
    )
    assert (updated.version, updated.description, updated.name) == ("1.1.0-rc.1", "", agent.name)
    assert updated.updated_at >= agent.updated_at
    same = await rt.ask(UpdateAgent(tenant_id=acme, id=agent.id, version="1.1.0-rc.1"))
    assert same == updated  # nothing changed: no event either

    archived = await rt.ask(ArchiveAgent(tenant_id=acme, id=agent.id))
    assert archived.status == "ARCHIVED"
    assert archived.archived_at is not None
    assert await rt.ask(ArchiveAgent(tenant_id=acme, id=agent.id)) == archived  # idempotent
    assert [a.id for a in await listed(rt, acme, status="ACTIVE")] == [other.id]
    assert [a.id for a in await listed(rt, acme, status="ARCHIVED")] == [agent.id]
    with pytest.raises(Conflict) as err:
        await rt.ask(UpdateAgent(tenant_id=acme, id=agent.id, name="Again"))
    assert err.value.details["field"] == "id"

    events = await topics(rt, acme)
    assert [t for t, _ in events] == [
        "agent.registered",
        "agent.registered",
        "agent.updated",
        "agent.archived",
    ]
    assert events[0][1]["id"] == agent.id
    assert events[0][1]["capabilities"] == [
        "web_search",
        "code:python",
    ]
    assert events[2][1]["changed"] == ["description", "version"]
    assert events[2][1]["version"] == "1.1.0-rc.1"
    assert events[3][1]["status"] == "ARCHIVED"


async def test_names_are_unique_per_tenant_case_insensitively_and_archiving_frees_them(rt):
    acme, globex = await tenant(rt), await tenant(rt, "Globex")
    first = await register(rt, acme, "Support Bot")
    for taken in ("support bot", "SUPPORT BOT", "\uff33upport Bot"):  # full-width S: NFKC
        with pytest.raises(Conflict) as err:
            await register(rt, acme, taken)
        assert err.value.details["field"] == "name"
    assert (await register(rt, globex, "Support Bot")).tenant_id == globex  # another tenant

    second = await register(rt, acme, "Triage")
    with pytest.raises(Conflict) as err:
        await rt.ask(UpdateAgent(tenant_id=acme, id=second.id, name="support BOT"))
    assert err.value.details["field"] == "name"
    renamed = await rt.ask(UpdateAgent(tenant_id=acme, id=first.id, name="support bot"))
    assert renamed.name == "support bot"  # its own name, another case: fine

    await rt.ask(ArchiveAgent(tenant_id=acme, id=first.id))
    again = await register(rt, acme, "Support Bot")
    assert again.id != first.id
    assert (await rt.ask(GetAgent(tenant_id=acme, id=first.id))).name == "support bot"


async def test_another_tenants_agent_is_not_found(rt):
    acme, globex = await tenant(rt), await tenant(rt, "Globex")
    agent = await register(rt, acme)
    for message in (
        GetAgent(tenant_id=globex, id=agent.id),
        UpdateAgent(tenant_id=globex, id=agent.id, name="Mine"),
        ArchiveAgent(tenant_id=globex, id=agent.id),
    ):
        with pytest.raises(NotFound):
            await rt.ask(message)
    assert await listed(rt, globex) == []
    assert await rt.ask(GetAgent(tenant_id=acme, id=agent.id)) == agent  # untouched
    assert await topics(rt, globex) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": " padded"}, "name"),
        ({"name": "-dash-first"}, "name"),
        ({"name": "semi;colon"}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "\ufdfa" * 30}, "name"),  # a ligature NFKC spells out in 18 letters
        ({"version": "1.0"}, "version"),
        ({"version": "v1.0.0"}, "version"),
        ({"version": "01.2.3"}, "version"),
        ({"version": "1.2.3-"}, "version"),
        ({"capabilities": ("ok", "has space")}, "capabilities"),
        ({"capabilities": ("dup", "DUP")}, "capabilities"),
        ({"capabilities": tuple(f"c{i}" for i in range(33))}, "capabilities"),
        ({"capabilities": ("x" * 65,)}, "capabilities"),
        ({"description": "d" * 2001}, "description"),
    ],
)
def test_bad_input_names_its_field(fields, field):
    base = {"tenant_id": "ten_x", "name": "Bot", "version": "1.0.0"}
    with pytest.raises(InvalidInput) as err:
        RegisterAgent(**{**base, **fields})
    assert err.value.field == field
    with pytest.raises(InvalidInput) as err:
        UpdateAgent(tenant_id="ten_x", id="agt_1", **fields)
    assert err.value.field == field


def test_good_versions_and_names_pass():
    for version in ("0.0.0", "1.2.3", "10.20.30-rc.1+build.5", "1.0.0-alpha-a.b-c", "2.0.0+001"):
        RegisterAgent(tenant_id="t", name="Bot", version=version)
    for name in ("Bot", "support-bot_2.0", "Агент поддержки", "7 Up"):
        RegisterAgent(tenant_id="t", name=name, version="1.0.0")


async def test_the_plan_limit_counts_active_agents_only(rt):
    acme = await tenant(rt, agents=2)
    first = await register(rt, acme, "One")
    await register(rt, acme, "Two")
    with pytest.raises(LimitExceeded) as err:
        await register(rt, acme, "Three")
    assert (err.value.details["limit"], err.value.details["allowed"]) == ("agents", 2)
    await rt.ask(ArchiveAgent(tenant_id=acme, id=first.id))
    await register(rt, acme, "Three")  # the archived agent's slot came back
    with pytest.raises(LimitExceeded):
        await register(rt, acme, "Four")
    # a lowered limit refuses new agents and keeps the existing ones
    await rt.ask(UpdateTenantPlan(tenant_id=acme, plan="pro", limits={"agents": 1}))
    with pytest.raises(LimitExceeded):
        await register(rt, acme, "Five")
    assert len(await listed(rt, acme, status="ACTIVE")) == 2


async def register_many(runtimes: list[Runtime], tenant_id: str, count: int) -> int:
    """``count`` registrations at once (spread over ``runtimes``): how many succeeded."""
    results = await asyncio.gather(
        *(register(runtimes[i % len(runtimes)], tenant_id, f"Agent {i}") for i in range(count)),
        return_exceptions=True,
    )
    unexpected = [
        r for r in results if isinstance(r, Exception) and not isinstance(r, LimitExceeded)
    ]
    assert not unexpected, unexpected
    return sum(isinstance(r, AgentView) for r in results)


async def test_concurrent_registrations_at_the_limit_admit_exactly_the_limit(rt):
    acme = await tenant(rt, agents=5)
    archived = await register(rt, acme, "Old")
    await rt.ask(ArchiveAgent(tenant_id=acme, id=archived.id))  # does not count
    assert await register_many([rt], acme, 20) == 5
    assert len(await listed(rt, acme, status="ACTIVE")) == 5


async def test_concurrent_registrations_from_two_runtimes_admit_exactly_the_limit(
    tmp_path, db_environ
):
    # two runtimes on one database stand for two `synapsex serve` processes
    async with embedded(tmp_path, db_environ) as a, embedded(tmp_path, db_environ) as b:
        for attempt in range(3):
            acme = await tenant(a, f"Race {attempt}", agents=4)
            assert await register_many([a, b], acme, 16) == 4
            assert len(await listed(b, acme, status="ACTIVE")) == 4


async def test_concurrent_registrations_of_one_name_leave_one_agent(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as a, embedded(tmp_path, db_environ) as b:
        acme = await tenant(a, agents=10)
        results = await asyncio.gather(
            *(register([a, b][i % 2], acme, "Same Name") for i in range(6)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, AgentView) for r in results) == 1
        assert all(isinstance(r, (AgentView, Conflict)) for r in results), results
        assert len(await listed(a, acme)) == 1
        # the refused ones gave their slot back (the limit counts exactly one)
        for i in range(9):
            await register(a, acme, f"More {i}")
        with pytest.raises(LimitExceeded):
            await register(a, acme, "One too many")
