"""VMs through the gateway on both engines: the token shown once and used for heartbeats, an API
key refused on heartbeats and a VM token refused everywhere else (queries, mutations, a
WebSocket), health moved in time on the database's clock, the plan's limit under concurrent
registrations, the label filter, roles, audit only for heartbeats that change the VM, tenant
isolation, validation errors naming their field, and a heartbeat's report reaching the
deployment it names."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from synapsex.runtime.testing import raw_sql, wait_until

from .conftest import Caller, Gateway, running_gateway

SERVICE = "vm-registry-service"
SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    SERVICE,
]
INTERVAL_MS = 30_000

VM = "id name labels runtimeVersion agentVersion status lastHeartbeatAt health createdAt createdBy"
REGISTER = f"""mutation ($input: RegisterVmInput!) {{
  registerVm(input: $input) {{ token vm {{ {VM} }} }}
}}"""
ROTATE = f"""mutation ($id: ID!) {{
  rotateVmToken(input: {{id: $id}}) {{ token vm {{ {VM} }} }}
}}"""
DEREGISTER = f"mutation ($id: ID!) {{ deregisterVm(input: {{id: $id}}) {{ {VM} }} }}"
HEARTBEAT = f"""mutation ($input: VmHeartbeatInput!) {{
  vmHeartbeat(input: $input) {{
    vm {{ {VM} }}
    deployments {{ id agentId vmId version state error }}
    heartbeatIntervalSeconds
  }}
}}"""
LIST = f"""query ($status: VmStatus, $health: VmHealth, $label: String, $first: Int,
                  $after: String) {{
  vms(status: $status, health: $health, label: $label, first: $first, after: $after) {{
    edges {{ cursor node {{ {VM} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
GET = f"query ($id: ID!) {{ vm(id: $id) {{ {VM} }} }}"
AUDIT = """{ auditRecords(first: 100) { edges { node {
  action resourceType resourceId outcome errorCode actor { memberId keyId }
} } } }"""


@pytest.fixture
async def gateway(tmp_path, db_environ, aiohttp_client) -> AsyncIterator[Gateway]:
    """The gateway with only the services these tests need."""
    async with running_gateway(tmp_path, db_environ, aiohttp_client, SERVICES) as gateway:
        yield gateway


def code(error: dict) -> str:
    return error["extensions"]["code"]


def as_vm(gateway: Gateway, token: str | None) -> Caller:
    """A caller sending ``token`` (a VM token) as its bearer credential."""
    return Caller(gateway.client, token, "", "")


async def register(caller: Caller, name: str = "node-1", **fields) -> dict:
    variables = {
        "name": name,
        "labels": {"zone": "eu-west"},
        "runtimeVersion": "1.0.0",
        "agentVersion": "2.0.0",
        **fields,
    }
    return (await caller.data(REGISTER, {"input": variables}))["registerVm"]


def heartbeat_input(status: str = "READY", **fields) -> dict:
    return {
        "input": {"runtimeVersion": "1.0.0", "agentVersion": "2.0.0", "status": status, **fields}
    }


async def listed(caller: Caller, **variables) -> list[dict]:
    data = await caller.data(LIST, {"first": 100, **variables})
    return [edge["node"] for edge in data["vms"]["edges"]]


async def audit_actions(caller: Caller) -> list[tuple]:
    data = await caller.data(AUDIT)
    return [
        (n["action"], n["outcome"], n["resourceId"], n["actor"]["keyId"])
        for n in (e["node"] for e in data["auditRecords"]["edges"])
        if n["action"].startswith("vm.")
    ]


# ---------------------------------------------------------------------------- tokens


async def test_the_token_is_shown_once_and_lets_the_vm_heartbeat(gateway):
    acme = gateway.acme
    created = await register(acme, labels={"zone": "eu-west", "example.com/gpu": "a100"})
    vm, token = created["vm"], created["token"]
    assert token.startswith("sxvm_")
    assert vm["labels"] == {"example.com/gpu": "a100", "zone": "eu-west"}
    assert (vm["status"], vm["health"], vm["lastHeartbeatAt"]) == ("READY", "STALE", None)
    assert vm["createdBy"] == acme.member_id
    # the token is nowhere to be read again
    assert token not in str(await acme.data(GET, {"id": vm["id"]}))
    assert token not in str(await listed(acme))

    beat = (await as_vm(gateway, token).data(HEARTBEAT, heartbeat_input("BUSY")))["vmHeartbeat"]
    assert beat["vm"]["id"] == vm["id"]
    assert (beat["vm"]["status"], beat["vm"]["health"]) == ("BUSY", "HEALTHY")
    assert beat["vm"]["lastHeartbeatAt"] is not None
    assert beat["heartbeatIntervalSeconds"] == 30.0
    # agent-registry does not run here: unknown, not "run nothing"
    assert beat["deployments"] is None
    seen = await acme.data(GET, {"id": vm["id"]})
    assert seen["vm"]["lastHeartbeatAt"] == beat["vm"]["lastHeartbeatAt"]

    rotated = (await acme.data(ROTATE, {"id": vm["id"]}))["rotateVmToken"]
    assert rotated["token"] != token
    stale = await as_vm(gateway, token).error(HEARTBEAT, heartbeat_input())
    assert code(stale) == "UNAUTHENTICATED"
    await as_vm(gateway, rotated["token"]).data(HEARTBEAT, heartbeat_input())


async def test_heartbeats_take_a_vm_token_and_nothing_else(gateway):
    acme = gateway.acme
    token = (await register(acme))["token"]
    refused = await acme.error(HEARTBEAT, heartbeat_input())  # a valid API key
    assert code(refused) == "FORBIDDEN"
    for bad in (None, "sx_" + "x" * 43, "sxvm_" + "x" * 43, token[:-1], "nonsense"):
        error = await as_vm(gateway, bad).error(HEARTBEAT, heartbeat_input())
        assert code(error) == "UNAUTHENTICATED", bad


async def test_a_vm_token_is_forbidden_everywhere_else(gateway):
    token = (await register(gateway.acme))["token"]
    vm = as_vm(gateway, token)
    operations = [
        (LIST, {}),
        ("{ me { role } }", {}),
        ("{ auditRecords { edges { node { id } } } }", {}),
        (REGISTER, {"input": {"name": "x", "runtimeVersion": "1.0.0", "agentVersion": "1.0.0"}}),
        ('mutation { publishEvent(input: {topic: "a.b"}) { id } }', {}),
        ('mutation { createApiKey(input: {name: "k", role: OWNER}) { key } }', {}),
    ]
    for query, variables in operations:
        error = await vm.error(query, variables)
        assert code(error) == "FORBIDDEN", query
        assert error["message"] == (
            "a VM token can only send heartbeats and ask for its desired versions"
        )
    # nor over GET, nor on a WebSocket (rejected at connection_init)
    response = await gateway.client.get(
        "/graphql",
        params={"query": "{ me { role } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (await response.json())["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    ws = await gateway.client.ws_connect("/graphql", protocols=["graphql-transport-ws"])
    await ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 4403


# ---------------------------------------------------------------------------- health, lists


async def test_health_moves_from_healthy_to_stale_to_offline_and_filters_the_list(gateway):
    acme = gateway.acme
    created = await register(acme)
    vm_id, vm = created["vm"]["id"], as_vm(gateway, created["token"])
    await vm.data(HEARTBEAT, heartbeat_input())

    async def health() -> str:
        return (await acme.data(GET, {"id": vm_id}))["vm"]["health"]

    async def back_in_time(ms: int) -> None:
        async with raw_sql(gateway.runtime, SERVICE) as sql:
            await sql(
                "UPDATE vms SET last_heartbeat_ms = last_heartbeat_ms - ? WHERE id = ?", ms, vm_id
            )

    assert await health() == "HEALTHY"
    await back_in_time(3 * INTERVAL_MS + 1_000)
    assert await health() == "STALE"
    assert [v["id"] for v in await listed(acme, health="STALE")] == [vm_id]
    assert await listed(acme, health="HEALTHY") == []
    await back_in_time(7 * INTERVAL_MS)
    assert await health() == "OFFLINE"
    assert [v["id"] for v in await listed(acme, health="OFFLINE")] == [vm_id]
    await vm.data(HEARTBEAT, heartbeat_input())
    assert await health() == "HEALTHY"


async def test_vms_are_filtered_by_label_and_status_and_paged(gateway):
    acme = gateway.acme
    ids = []
    for i, zone in enumerate(["eu", "us", "eu"]):
        created = await register(acme, f"n{i}", labels={"zone": zone})
        ids.append(created["vm"]["id"])
        if i == 2:
            await as_vm(gateway, created["token"]).data(HEARTBEAT, heartbeat_input("UPDATING"))
    assert [v["id"] for v in await listed(acme, label="zone=eu")] == [ids[0], ids[2]]
    assert [v["id"] for v in await listed(acme, label="zone=eu", status="UPDATING")] == [ids[2]]
    assert await listed(acme, label="zone=ap") == []
    page = (await acme.data(LIST, {"first": 2}))["vms"]
    assert [e["node"]["id"] for e in page["edges"]] == ids[:2]
    rest = (await acme.data(LIST, {"first": 2, "after": page["pageInfo"]["endCursor"]}))["vms"]
    assert [e["node"]["id"] for e in rest["edges"]] == ids[2:]
    assert rest["pageInfo"]["hasNextPage"] is False
    # labels written in the document itself (a JSON object literal)
    inline = await acme.data(
        'mutation { registerVm(input: {name: "lit", labels: {zone: "ap", tier: ""}, '
        'runtimeVersion: "1.0.0", agentVersion: "1.0.0"}) { vm { id labels } } }'
    )
    assert inline["registerVm"]["vm"]["labels"] == {"tier": "", "zone": "ap"}
    found = await listed(acme, label="tier=")
    assert [v["id"] for v in found] == [inline["registerVm"]["vm"]["id"]]


# ---------------------------------------------------------------------------- limits, roles, audit


async def test_concurrent_registrations_stop_at_the_plan_limit_and_deregistering_frees(gateway):
    globex = gateway.globex  # the free plan: 2 VMs
    bodies = await asyncio.gather(
        *(
            globex.gql(
                REGISTER,
                {"input": {"name": f"n{i}", "runtimeVersion": "1.0.0", "agentVersion": "1.0.0"}},
            )
            for i in range(6)
        )
    )
    made = [b["data"]["registerVm"] for b in bodies if b.get("data")]
    assert len(made) == 2
    refused = [b["errors"][0] for b in bodies if b.get("errors")]
    assert [code(e) for e in refused] == ["LIMIT_EXCEEDED"] * 4
    assert refused[0]["extensions"]["limit"] == "vms"
    removed = (await globex.data(DEREGISTER, {"id": made[0]["vm"]["id"]}))["deregisterVm"]
    assert removed["id"] == made[0]["vm"]["id"]
    gone = await as_vm(gateway, made[0]["token"]).error(HEARTBEAT, heartbeat_input())
    assert code(gone) == "UNAUTHENTICATED"
    await register(globex, "n-again")


async def test_members_manage_their_own_vms_viewers_none(gateway):
    acme = gateway.acme
    member = await gateway.key_for(acme, "member", "mia@acme.io")
    viewer = await gateway.key_for(acme, "viewer", "vic@acme.io")
    assert (
        code(
            await viewer.error(
                REGISTER,
                {"input": {"name": "v", "runtimeVersion": "1.0.0", "agentVersion": "1.0.0"}},
            )
        )
        == "FORBIDDEN"
    )
    assert len(await listed(viewer)) == 0  # reads are allowed
    own = (await register(member, "mine"))["vm"]["id"]
    owners = (await register(acme, "owners"))["vm"]["id"]
    assert code(await member.error(ROTATE, {"id": owners})) == "FORBIDDEN"
    assert code(await member.error(DEREGISTER, {"id": owners})) == "FORBIDDEN"
    await member.data(ROTATE, {"id": own})
    await member.data(DEREGISTER, {"id": own})


async def test_only_heartbeats_that_change_the_vm_are_audited(gateway):
    acme = gateway.acme
    created = await register(acme)
    vm_id, vm = created["vm"]["id"], as_vm(gateway, created["token"])
    for _ in range(3):
        await vm.data(HEARTBEAT, heartbeat_input())  # READY, same versions: nothing changes
    await vm.data(HEARTBEAT, heartbeat_input("UPDATING"))
    await vm.data(HEARTBEAT, heartbeat_input("UPDATING", agentVersion="2.1.0"))
    await vm.data(HEARTBEAT, heartbeat_input("UPDATING", agentVersion="2.1.0"))
    await acme.data(ROTATE, {"id": vm_id})
    records = await audit_actions(acme)  # newest first
    assert records == [
        ("vm.token.rotate", "SUCCESS", vm_id, records[0][3]),
        ("vm.heartbeat", "SUCCESS", vm_id, vm_id),
        ("vm.heartbeat", "SUCCESS", vm_id, vm_id),
        ("vm.create", "SUCCESS", vm_id, records[3][3]),
    ]


# ---------------------------------------------------------------------------- isolation, input


async def test_another_tenants_vm_is_not_found(gateway):
    acme, globex = gateway.acme, gateway.globex
    created = await register(acme)
    vm_id = created["vm"]["id"]
    for query in (GET, ROTATE, DEREGISTER):
        assert code(await globex.error(query, {"id": vm_id})) == "NOT_FOUND"
    assert await listed(globex) == []
    assert await listed(globex, label="zone=eu-west") == []
    # globex may use the same name; acme's VM is untouched and still heartbeats
    await register(globex)
    beat = await as_vm(gateway, created["token"]).data(HEARTBEAT, heartbeat_input())
    assert beat["vmHeartbeat"]["vm"]["id"] == vm_id
    assert (
        code(
            await acme.error(
                REGISTER,
                {"input": {"name": "NODE-1", "runtimeVersion": "1.0.0", "agentVersion": "1.0.0"}},
            )
        )
        == "CONFLICT"
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "no spaces"}, "name"),
        ({"runtimeVersion": "v1"}, "runtimeVersion"),
        ({"agentVersion": "1.0"}, "agentVersion"),
        ({"labels": ["zone=eu"]}, "labels"),
        ({"labels": {"zone": "eu west"}}, "labels.zone"),
        ({"labels": {"-zone": "eu"}}, "labels"),
    ],
)
async def test_bad_registrations_name_the_field(gateway, fields, field):
    variables = {"name": "node-1", "runtimeVersion": "1.0.0", "agentVersion": "1.0.0", **fields}
    error = await gateway.acme.error(REGISTER, {"input": variables})
    assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", field)


async def test_bad_heartbeats_and_filters_name_the_field(gateway):
    acme = gateway.acme
    vm = as_vm(gateway, (await register(acme))["token"])
    error = await vm.error(HEARTBEAT, heartbeat_input(runtimeVersion="latest"))
    assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", "runtimeVersion")
    report = {"deploymentId": "", "state": "RUNNING"}
    error = await vm.error(HEARTBEAT, heartbeat_input(deployments=[report]))
    assert error["extensions"]["field"] == "deployments.deploymentId"
    error = await acme.error(LIST, {"label": "zone"})
    assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", "label")


# ---------------------------------------------------------------------------- deployments


async def test_a_heartbeat_reports_its_deployments_and_gets_them_back(
    tmp_path, db_environ, aiohttp_client
):
    services = [*SERVICES, "api-gateway", "agent-registry-service"]
    async with running_gateway(tmp_path, db_environ, aiohttp_client, services) as gateway:
        acme = gateway.acme
        created = await register(acme)
        vm = as_vm(gateway, created["token"])
        beat = (await vm.data(HEARTBEAT, heartbeat_input()))["vmHeartbeat"]
        assert beat["deployments"] == []
        agent = await acme.data(
            'mutation { registerAgent(input: {name: "helper", version: "1.2.0"}) { id } }'
        )
        deployed = await acme.data(
            "mutation ($a: ID!, $v: ID!) { deployAgent(input: {agentId: $a, vmId: $v}) "
            "{ id state } }",
            {"a": agent["registerAgent"]["id"], "v": created["vm"]["id"]},
        )
        deployment_id = deployed["deployAgent"]["id"]
        beat = (await vm.data(HEARTBEAT, heartbeat_input()))["vmHeartbeat"]
        assert [(d["id"], d["state"], d["version"]) for d in beat["deployments"]] == [
            (deployment_id, "PENDING", "1.2.0")
        ]
        report = {"deploymentId": deployment_id, "state": "FAILED", "error": "exit 1"}
        await vm.data(HEARTBEAT, heartbeat_input(deployments=[report]))

        async def reported() -> bool:  # the report is told, not awaited: it lands soon after
            beat = (await vm.data(HEARTBEAT, heartbeat_input()))["vmHeartbeat"]
            return [(d["state"], d["error"]) for d in beat["deployments"]] == [("FAILED", "exit 1")]

        await wait_until(reported)
        # a VM token cannot use the users' side, even for its own deployments
        error = await vm.error(
            'mutation ($a: String!) { registerAgent(input: {name: $a, version: "1.0.0"}) { id } }',
            {"a": "mine"},
        )
        assert code(error) == "FORBIDDEN"
