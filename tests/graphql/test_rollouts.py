"""Rollouts through the gateway, with the real vm-registry: VMs ask ``desiredVersion`` with
their VM token (and can do nothing else), label targeting, percentage growth, pause, rings,
completion from heartbeats, rollback, the automatic halt on FAILED heartbeats with its event,
validation naming the field, tenant isolation, and the ``rolloutProgress`` subscription."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest
from gql import gql

from synapsex.contracts.releases import bucket_of, in_percentage
from synapsex.contracts.vms import RegisterVm, VmHeartbeat
from synapsex.runtime.testing import wait_until

from .conftest import Caller, Gateway, running_gateway
from .events_support import ws_client

SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "vm-registry-service",
    "update-service",
]
SHA = "0f" * 32
DEADLINE = 10.0

CREATE_RELEASE = f"""mutation ($version: String!) {{
  createRelease(input: {{component: AGENT, version: $version, url: "https://dl.example.com/a",
                         sha256: "{SHA}"}}) {{ id version }}
}}"""
ROLLOUT_FIELDS = """id status percentage labels currentRing targeted updated failed
  previousVersion haltedReason rings { name labels } release { version }"""
START = f"""mutation ($input: StartRolloutInput!) {{
  startRollout(input: $input) {{ {ROLLOUT_FIELDS} }}
}}"""
SET_PERCENTAGE = f"""mutation ($id: ID!, $percentage: Int!) {{
  setRolloutPercentage(input: {{id: $id, percentage: $percentage}}) {{ {ROLLOUT_FIELDS} }}
}}"""
PAUSE = f"mutation ($id: ID!) {{ pauseRollout(input: {{id: $id}}) {{ {ROLLOUT_FIELDS} }} }}"
RESUME = f"mutation ($id: ID!) {{ resumeRollout(input: {{id: $id}}) {{ {ROLLOUT_FIELDS} }} }}"
ROLLBACK = f"mutation ($id: ID!) {{ rollbackRollout(input: {{id: $id}}) {{ {ROLLOUT_FIELDS} }} }}"
ROLLOUT = f"query ($id: ID!) {{ rollout(id: $id) {{ {ROLLOUT_FIELDS} }} }}"
ROLLOUTS = """query ($status: RolloutStatus) {
  rollouts(status: $status) { edges { node { id status } } }
}"""
DESIRED = "query { desiredVersion(component: AGENT) { version releaseId rolloutId reason } }"
VM_DESIRED = """query ($vmId: ID!) {
  vmDesiredVersion(vmId: $vmId, component: AGENT) { version releaseId rolloutId reason }
}"""
TOPICS = """query ($topic: String!) {
  events(topic: $topic, first: 100) { edges { node { topic payload } } }
}"""
PROGRESS = """subscription ($id: ID!) {
  rolloutProgress(rolloutId: $id) { rolloutId status percentage ring targeted updated failed at }
}"""


@pytest.fixture
async def gw(tmp_path, db_environ, aiohttp_client):
    async with running_gateway(tmp_path, db_environ, aiohttp_client, SERVICES) as gateway:
        yield gateway


class Vm:
    """A registered VM: its id, and a caller holding its VM token."""

    def __init__(self, gw: Gateway, owner: Caller, vm_id: str, token: str) -> None:
        self.gw = gw
        self.id = vm_id
        self.tenant_id = owner.tenant_id
        self.caller = Caller(gw.client, token, owner.tenant_id, "")

    async def desired(self) -> dict:
        return (await self.caller.data(DESIRED))["desiredVersion"]

    async def beat(self, agent_version: str, status: str = "READY") -> None:
        await self.gw.runtime.ask(
            VmHeartbeat(
                tenant_id=self.tenant_id,
                vm_id=self.id,
                runtime_version="1.0.0",
                agent_version=agent_version,
                status=status,
            )
        )


async def register(gw: Gateway, owner: Caller, name: str, **labels: str) -> Vm:
    made = await gw.runtime.ask(
        RegisterVm(
            tenant_id=owner.tenant_id,
            name=name,
            labels=labels,
            runtime_version="1.0.0",
            agent_version="1.0.0",
        )
    )
    return Vm(gw, owner, made.vm.id, made.token)


async def release(owner: Caller, version: str) -> str:
    return (await owner.data(CREATE_RELEASE, {"version": version}))["createRelease"]["id"]


async def start(owner: Caller, release_id: str, percentage: int = 100, **kw: Any) -> dict:
    variables = {"input": {"releaseId": release_id, "percentage": percentage, **kw}}
    return (await owner.data(START, variables))["startRollout"]


async def rollout_where(owner: Caller, rollout_id: str, **expected: Any) -> dict | None:
    view = (await owner.data(ROLLOUT, {"id": rollout_id}))["rollout"]
    return view if all(view[k] == v for k, v in expected.items()) else None


async def topics(owner: Caller, prefix: str) -> list[str]:
    data = await owner.data(TOPICS, {"topic": prefix})
    return [edge["node"]["topic"] for edge in data["events"]["edges"]]


# ---------------------------------------------------------------------------- the VM's side


async def test_vms_ask_with_their_token_and_a_rollout_completes_from_heartbeats(gw):
    acme = gw.acme
    prod = [await register(gw, acme, f"prod-{i}", env="prod") for i in range(2)]
    staging = await register(gw, acme, "staging-1", env="staging")
    await release(acme, "1.0.0")
    rel = await release(acme, "1.1.0")
    r = await start(acme, rel, labels={"env": "prod"})
    assert (r["status"], r["targeted"], r["previousVersion"]) == ("RUNNING", 2, "1.0.0")
    assert r["release"]["version"] == "1.1.0"

    preview = (await acme.data(VM_DESIRED, {"vmId": prod[0].id}))["vmDesiredVersion"]
    assert preview["version"] == "1.1.0"
    assert preview["reason"].startswith("This VM would be given 1.1.0")
    for vm in prod:
        told = await vm.desired()
        assert (told["version"], told["releaseId"], told["rolloutId"]) == ("1.1.0", rel, r["id"])
    other = await staging.desired()
    assert other["version"] is None
    assert "do not match the selector env=prod" in other["reason"]

    for vm in prod:
        await vm.beat("1.1.0")
    done = await wait_until(
        lambda: rollout_where(acme, r["id"], status="COMPLETED"), deadline=DEADLINE
    )
    assert (done["targeted"], done["updated"], done["failed"]) == (2, 2, 0)
    seen = await topics(acme, "rollout.*")
    assert seen[0] == "rollout.started"
    assert "rollout.progressed" in seen
    assert seen[-1] == "rollout.completed"


async def test_a_vm_token_can_only_ask_for_its_desired_version(gw):
    vm = await register(gw, gw.acme, "node-1")
    for query, variables in [
        ("query { releases { edges { node { id } } } }", None),
        (VM_DESIRED, {"vmId": vm.id}),
        (CREATE_RELEASE, {"version": "9.9.9"}),
    ]:
        error = await vm.caller.error(query, variables)
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert "VM token" in error["message"]
    # and an API key is not a VM
    assert (await gw.acme.error(DESIRED))["extensions"]["code"] == "FORBIDDEN"
    assert (await vm.desired())["version"] is None


# ---------------------------------------------------------------------------- the user's side


async def test_percentage_growth_and_pause(gw):
    acme = gw.acme
    vms = [await register(gw, acme, f"node-{i}") for i in range(6)]
    r = await start(acme, await release(acme, "2.0.0"), 0)
    assert r["targeted"] == 0
    assert {(await vm.desired())["version"] for vm in vms} == {None}
    r = (await acme.data(SET_PERCENTAGE, {"id": r["id"], "percentage": 50}))["setRolloutPercentage"]
    half = {vm.id for vm in vms if in_percentage(bucket_of(r["id"], vm.id), 50)}
    assert r["targeted"] == len(half)
    given = {vm.id for vm in vms if (await vm.desired())["version"] == "2.0.0"}
    assert given == half

    paused = (await acme.data(PAUSE, {"id": r["id"]}))["pauseRollout"]
    assert paused["status"] == "PAUSED"
    again = await acme.error(PAUSE, {"id": r["id"]})
    assert (again["extensions"]["code"], again["extensions"]["field"]) == ("CONFLICT", "id")
    await acme.data(SET_PERCENTAGE, {"id": r["id"], "percentage": 100})
    for vm in vms:
        told = await vm.desired()
        if vm.id in half:  # given before the pause: kept
            assert told["version"] == "2.0.0"
        else:
            assert told["version"] is None
            assert "paused" in told["reason"]
    await acme.data(RESUME, {"id": r["id"]})
    assert {(await vm.desired())["version"] for vm in vms} == {"2.0.0"}


async def test_rings_advance_one_after_another(gw):
    acme = gw.acme
    canary = await register(gw, acme, "canary-1", ring="canary")
    rest = [await register(gw, acme, f"node-{i}") for i in range(2)]
    rings = [{"name": "canary", "labels": {"ring": "canary"}}, {"name": "rest", "labels": {}}]
    r = await start(acme, await release(acme, "2.0.0"), rings=rings)
    assert (r["currentRing"], r["targeted"], r["rings"][0]["labels"]) == (
        "canary",
        1,
        {"ring": "canary"},
    )
    waiting = await rest[0].desired()
    assert waiting["version"] is None
    assert "its ring 'rest' is not reached yet (ring 'canary' is in progress)" in waiting["reason"]
    assert (await canary.desired())["version"] == "2.0.0"
    await canary.beat("2.0.0")
    await wait_until(lambda: rollout_where(acme, r["id"], currentRing="rest"), deadline=DEADLINE)
    assert {(await vm.desired())["version"] for vm in rest} == {"2.0.0"}


async def test_rollback_and_the_automatic_halt(gw):
    acme = gw.acme
    vms = [await register(gw, acme, f"node-{i}") for i in range(4)]
    old = await release(acme, "1.0.0")
    rel = await release(acme, "1.1.0")
    r = await start(acme, rel)
    given, never_asked = vms[:3], vms[3]  # the last keeps the rollout from completing
    for vm in given:
        assert (await vm.desired())["version"] == "1.1.0"
    await given[1].beat("1.1.0")
    await given[2].beat("1.1.0")
    await given[0].beat("1.1.0", status="FAILED")  # 1 of 3 given: 33 % > 20 %
    halted = await wait_until(
        lambda: rollout_where(acme, r["id"], status="HALTED"), deadline=DEADLINE
    )
    assert (halted["failed"], halted["updated"], halted["targeted"]) == (1, 3, 3)
    assert halted["haltedReason"].startswith("1 of the 3 VMs given 1.1.0 (33 %)")
    assert "rollout.halted" in await topics(acme, "rollout.halted")
    listed = (await acme.data(ROLLOUTS, {"status": "HALTED"}))["rollouts"]["edges"]
    assert [e["node"]["id"] for e in listed] == [r["id"]]
    assert "health gate" in (await never_asked.desired())["reason"]

    back = (await acme.data(ROLLBACK, {"id": r["id"]}))["rollbackRollout"]
    assert back["status"] == "ROLLED_BACK"
    for vm in given:
        told = await vm.desired()
        assert (told["version"], told["releaseId"]) == ("1.0.0", old)
        assert "rolled back" in told["reason"]
    assert (await never_asked.desired())["version"] is None  # never moved: keeps 1.0.0
    assert "rollout.rolled_back" in await topics(acme, "rollout.rolled_back")


async def test_rollout_validation_names_the_field(gw):
    acme = gw.acme
    rel = await release(acme, "1.0.0")
    for fields, field in [
        ({"percentage": 101}, "percentage"),
        ({"labels": ["env"]}, "labels"),
        ({"labels": {"bad key!": "x"}}, "labels.bad key!"),
        ({"rings": [{"name": "a", "labels": {}}, {"name": "a", "labels": {}}]}, "rings.1.name"),
        ({"rings": [{"name": "a", "labels": "x"}]}, "rings.0.labels"),
    ]:
        variables = {"input": {"releaseId": rel, "percentage": 10, **fields}}
        error = await acme.error(START, variables)
        assert error["extensions"]["code"] == "INVALID_INPUT", error
        assert error["extensions"]["field"] == field
    r = await start(acme, rel, 10)
    error = await acme.error(SET_PERCENTAGE, {"id": r["id"], "percentage": -1})
    assert error["extensions"]["field"] == "percentage"
    taken = await acme.error(START, {"input": {"releaseId": rel, "percentage": 10}})
    assert (taken["extensions"]["code"], taken["extensions"]["field"]) == ("CONFLICT", "releaseId")
    member = await gw.key_for(acme, "member", "member@acme.io")
    denied = await member.error(PAUSE, {"id": r["id"]})
    assert denied["extensions"]["code"] == "FORBIDDEN"  # rollouts: admins and owners


async def test_rollouts_and_vms_are_tenant_isolated(gw):
    acme, globex = gw.acme, gw.globex
    vm = await register(gw, acme, "node-1")
    rel = await release(acme, "1.0.0")
    r = await start(acme, rel)
    for query, variables in [
        (ROLLOUT, {"id": r["id"]}),
        (PAUSE, {"id": r["id"]}),
        (ROLLBACK, {"id": r["id"]}),
        (SET_PERCENTAGE, {"id": r["id"], "percentage": 1}),
        (VM_DESIRED, {"vmId": vm.id}),
        (START, {"input": {"releaseId": rel, "percentage": 1}}),
    ]:
        error = await globex.error(query, variables)
        assert error["extensions"]["code"] == "NOT_FOUND", (query, error)
    assert (await globex.data(ROLLOUTS))["rollouts"]["edges"] == []
    assert (await acme.data(ROLLOUT, {"id": r["id"]}))["rollout"]["status"] == "RUNNING"


# ---------------------------------------------------------------------------- subscription


async def test_rollout_progress_is_streamed_until_the_rollout_ends(gw):
    acme = gw.acme
    vm = await register(gw, acme, "node-1")
    r = await start(acme, await release(acme, "1.1.0"), 0)
    items: asyncio.Queue[dict] = asyncio.Queue()

    async with ws_client(gw, {"authorization": f"Bearer {acme.key}"}) as session:
        request = gql(PROGRESS)
        request.variable_values = {"id": r["id"]}

        async def follow() -> None:
            async with aclosing(session.subscribe(request)) as stream:
                async for item in stream:
                    items.put_nowait(item["rolloutProgress"])

        task = asyncio.create_task(follow())
        try:
            first = await asyncio.wait_for(items.get(), DEADLINE)
            assert (first["rolloutId"], first["status"], first["percentage"]) == (
                r["id"],
                "RUNNING",
                0,
            )
            await acme.data(SET_PERCENTAGE, {"id": r["id"], "percentage": 100})
            grown = await next_where(items, lambda p: p["targeted"] == 1)
            assert grown["percentage"] == 100
            await vm.desired()
            await vm.beat("1.1.0")
            done = await next_where(items, lambda p: p["status"] == "COMPLETED")
            assert (done["targeted"], done["updated"], done["failed"]) == (1, 1, 0)
            await asyncio.wait_for(task, DEADLINE)  # the stream ended with the rollout
        finally:
            task.cancel()


async def next_where(items: asyncio.Queue[dict], condition: Any) -> dict:
    while True:
        item = await asyncio.wait_for(items.get(), DEADLINE)
        if condition(item):
            return item
