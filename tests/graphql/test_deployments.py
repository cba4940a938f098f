"""Agent deployments through the gateway, on both engines, with the real api-gateway and
vm-registry: deploy, the states VMs report (directly, and in a VM's ``vmHeartbeat``), a
redeploy replacing the current deployment, undeploy, archiving an agent, validation and
NOT_FOUND errors naming their field, roles, and tenant isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from synapsex.contracts.deployments import DeploymentReport, ReportDeploymentStates
from synapsex.contracts.vms import RegisterVm
from synapsex.runtime.testing import wait_until

from .conftest import Caller, Gateway, running_gateway

SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "api-gateway",
    "vm-registry-service",
    "agent-registry-service",
]

DEPLOYMENT = (
    "id agentId vmId version state error createdAt updatedAt reportedAt replacesId "
    "agent { id name version } vm { id name }"
)
DEPLOY = f"""mutation ($input: DeployAgentInput!) {{
  deployAgent(input: $input) {{ {DEPLOYMENT} }}
}}"""
UNDEPLOY = f"""mutation ($input: UndeployAgentInput!) {{
  undeployAgent(input: $input) {{ {DEPLOYMENT} }}
}}"""
GET = f"query ($id: ID!) {{ agentDeployment(id: $id) {{ {DEPLOYMENT} }} }}"
LIST = f"""query ($agentId: ID, $vmId: ID, $state: DeploymentState, $first: Int, $after: String) {{
  agentDeployments(agentId: $agentId, vmId: $vmId, state: $state, first: $first, after: $after) {{
    edges {{ cursor node {{ {DEPLOYMENT} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
REGISTER_AGENT = """mutation ($input: RegisterAgentInput!) {
  registerAgent(input: $input) { id name version }
}"""
ARCHIVE_AGENT = "mutation ($id: ID!) { archiveAgent(input: {id: $id}) { id status } }"
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


async def agent(caller: Caller, name: str = "Bot", version: str = "1.0.0") -> dict:
    variables = {"input": {"name": name, "version": version}}
    return (await caller.data(REGISTER_AGENT, variables))["registerAgent"]


async def vm(gateway: Gateway, caller: Caller, name: str = "node-1") -> str:
    registered = await gateway.runtime.ask(
        RegisterVm(
            tenant_id=caller.tenant_id,
            name=name,
            labels={},
            runtime_version="1.0.0",
            agent_version="1.0.0",
        )
    )
    return registered.vm.id


async def deploy(caller: Caller, agent_id: str, vm_id: str, **fields) -> dict:
    variables = {"input": {"agentId": agent_id, "vmId": vm_id, **fields}}
    return (await caller.data(DEPLOY, variables))["deployAgent"]


async def listed(caller: Caller, **variables) -> list[dict]:
    nodes: list[dict] = []
    after = None
    while True:
        data = await caller.data(LIST, {"first": 2, "after": after, **variables})
        nodes += [edge["node"] for edge in data["agentDeployments"]["edges"]]
        if not data["agentDeployments"]["pageInfo"]["hasNextPage"]:
            return nodes
        after = data["agentDeployments"]["pageInfo"]["endCursor"]


async def report(gateway: Gateway, caller: Caller, vm_id: str, *reports: tuple) -> None:
    """What vm-registry sends agent-registry on a heartbeat carrying deployment reports."""
    sent = tuple(
        DeploymentReport(deployment_id=r[0], state=r[1], error=r[2] if len(r) > 2 else None)
        for r in reports
    )
    await gateway.runtime.ask(
        ReportDeploymentStates(tenant_id=caller.tenant_id, vm_id=vm_id, reports=sent)
    )


async def get(caller: Caller, deployment_id: str) -> dict:
    return (await caller.data(GET, {"id": deployment_id}))["agentDeployment"]


async def test_deploy_report_redeploy_undeploy_and_archive(gateway: Gateway):
    acme = gateway.acme
    bot = await agent(acme, version="2.0.0")
    node = await vm(gateway, acme)
    first = await deploy(acme, bot["id"], node)
    assert (first["state"], first["version"], first["vmId"]) == ("PENDING", "2.0.0", node)
    assert first["agent"] == bot
    assert first["vm"] == {"id": node, "name": "node-1"}
    assert await deploy(acme, bot["id"], node) == first  # same version: unchanged

    await report(gateway, acme, node, (first["id"], "RUNNING"))
    running = await get(acme, first["id"])
    assert (running["state"], running["error"]) == ("RUNNING", None)
    assert running["reportedAt"] is not None
    await report(gateway, acme, node, (first["id"], "FAILED", "out of memory"))
    failed = await get(acme, first["id"])
    assert (failed["state"], failed["error"]) == ("FAILED", "out of memory")

    second = await deploy(acme, bot["id"], node, version="2.1.0")
    assert (second["state"], second["replacesId"]) == ("PENDING", first["id"])
    assert (await get(acme, first["id"]))["state"] == "UNDEPLOYED"
    assert [d["id"] for d in await listed(acme, agentId=bot["id"])] == [second["id"]]
    assert [d["id"] for d in await listed(acme, state="UNDEPLOYED")] == [first["id"]]

    undone = (await acme.data(UNDEPLOY, {"input": {"id": second["id"]}}))["undeployAgent"]
    assert undone["state"] == "UNDEPLOYED"
    assert await listed(acme, vmId=node) == []

    third = await deploy(acme, bot["id"], node)
    await acme.data(ARCHIVE_AGENT, {"id": bot["id"]})

    async def undeployed() -> bool:
        return (await get(acme, third["id"]))["state"] == "UNDEPLOYED"

    await wait_until(undeployed, deadline=10)
    error = await acme.error(DEPLOY, {"input": {"agentId": bot["id"], "vmId": node}})
    assert (code(error), error["extensions"]["field"]) == ("CONFLICT", "agentId")

    records = [e["node"] for e in (await acme.data(AUDIT))["auditRecords"]["edges"]]
    records.reverse()  # newest first
    mine = [
        (r["action"], r["resourceId"], r["outcome"], r["errorCode"])
        for r in records
        if r["resourceType"] == "agent_deployment"
    ]
    assert mine == [
        ("agent.deploy", first["id"], "SUCCESS", None),
        ("agent.deploy", first["id"], "SUCCESS", None),
        ("agent.deploy", second["id"], "SUCCESS", None),
        ("agent.undeploy", second["id"], "SUCCESS", None),
        ("agent.deploy", third["id"], "SUCCESS", None),
        ("agent.deploy", None, "FAILURE", "CONFLICT"),
    ]


HEARTBEAT = """mutation ($input: VmHeartbeatInput!) {
  vmHeartbeat(input: $input) {
    vm { id status }
    deployments { id version state error agent { id name } vm { name } }
  }
}"""


async def test_a_vm_reports_its_deployments_states_in_its_heartbeat(gateway: Gateway):
    acme = gateway.acme
    bot = await agent(acme, "Heartbeat Bot", "1.2.0")
    registered = await gateway.runtime.ask(
        RegisterVm(
            tenant_id=acme.tenant_id,
            name="beating",
            labels={},
            runtime_version="1.0.0",
            agent_version="1.0.0",
        )
    )
    machine = Caller(acme.client, registered.token, acme.tenant_id, "")
    dep = await deploy(acme, bot["id"], registered.vm.id)

    def beat(*reports: dict) -> dict:
        return {
            "input": {
                "runtimeVersion": "1.0.0",
                "agentVersion": "1.0.0",
                "status": "READY",
                "deployments": list(reports),
            }
        }

    reply = (await machine.data(HEARTBEAT, beat()))["vmHeartbeat"]
    assert reply["deployments"] == [  # what the VM should run, its agent readable by the VM
        {
            "id": dep["id"],
            "version": "1.2.0",
            "state": "PENDING",
            "error": None,
            "agent": {"id": bot["id"], "name": "Heartbeat Bot"},
            "vm": {"name": "beating"},
        }
    ]
    await machine.data(
        HEARTBEAT, beat({"deploymentId": dep["id"], "state": "FAILED", "error": "no GPU"})
    )

    async def failed() -> bool:  # passed on without blocking the heartbeat
        return (await get(acme, dep["id"]))["state"] == "FAILED"

    await wait_until(failed, deadline=10)
    assert (await get(acme, dep["id"]))["error"] == "no GPU"
    await machine.data(HEARTBEAT, beat({"deploymentId": dep["id"], "state": "RUNNING"}))

    async def running() -> bool:
        return (await get(acme, dep["id"]))["state"] == "RUNNING"

    await wait_until(running, deadline=10)
    reply = (await machine.data(HEARTBEAT, beat()))["vmHeartbeat"]
    assert [(d["id"], d["state"], d["error"]) for d in reply["deployments"]] == [
        (dep["id"], "RUNNING", None)
    ]
    # the VM token reaches deployments only through its heartbeat
    assert code(await machine.error(GET, {"id": dep["id"]})) == "FORBIDDEN"
    error = await machine.error(DEPLOY, {"input": {"agentId": bot["id"], "vmId": "vm_x"}})
    assert code(error) == "FORBIDDEN"


async def test_bad_input_and_unknown_objects_name_their_field(gateway: Gateway):
    acme = gateway.acme
    bot = await agent(acme)
    node = await vm(gateway, acme)
    cases = [
        ({"agentId": bot["id"], "vmId": node, "version": "1.0"}, "INVALID_INPUT", "version"),
        ({"agentId": "", "vmId": node}, "INVALID_INPUT", "agentId"),
        ({"agentId": bot["id"], "vmId": ""}, "INVALID_INPUT", "vmId"),
        ({"agentId": "agt_nope", "vmId": node}, "NOT_FOUND", "agentId"),
        ({"agentId": bot["id"], "vmId": "vm_nope"}, "NOT_FOUND", "vmId"),
    ]
    for fields, error_code, field in cases:
        error = await acme.error(DEPLOY, {"input": fields})
        assert (code(error), error["extensions"]["field"]) == (error_code, field), fields
    error = await acme.error(LIST, {"first": 101})
    assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", "first")
    assert code(await acme.error(GET, {"id": "dep_nope"})) == "NOT_FOUND"
    assert code(await acme.error(UNDEPLOY, {"input": {"id": "dep_nope"}})) == "NOT_FOUND"
    assert await listed(acme) == []


async def test_roles_members_deploy_their_own_agents(gateway: Gateway):
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    node = await vm(gateway, gateway.acme)
    own = await agent(member, "Member Bot")
    owners = await agent(gateway.acme, "Owner Bot")
    mine = await deploy(member, own["id"], node)
    error = await member.error(DEPLOY, {"input": {"agentId": owners["id"], "vmId": node}})
    assert code(error) == "FORBIDDEN"
    error = await viewer.error(DEPLOY, {"input": {"agentId": own["id"], "vmId": node}})
    assert code(error) == "FORBIDDEN"
    theirs = await deploy(gateway.acme, owners["id"], node)
    assert code(await member.error(UNDEPLOY, {"input": {"id": theirs["id"]}})) == "FORBIDDEN"
    assert len(await listed(viewer)) == 2  # every role reads
    await member.data(UNDEPLOY, {"input": {"id": mine["id"]}})


async def test_another_tenants_agents_vms_and_deployments_are_not_found(gateway: Gateway):
    acme, globex = gateway.acme, gateway.globex
    bot, their_bot = await agent(acme), await agent(globex)
    node, their_node = await vm(gateway, acme), await vm(gateway, globex)
    dep = await deploy(acme, bot["id"], node)
    error = await globex.error(DEPLOY, {"input": {"agentId": bot["id"], "vmId": their_node}})
    assert (code(error), error["extensions"]["field"]) == ("NOT_FOUND", "agentId")
    error = await globex.error(DEPLOY, {"input": {"agentId": their_bot["id"], "vmId": node}})
    assert (code(error), error["extensions"]["field"]) == ("NOT_FOUND", "vmId")
    assert code(await globex.error(GET, {"id": dep["id"]})) == "NOT_FOUND"
    assert code(await globex.error(UNDEPLOY, {"input": {"id": dep["id"]}})) == "NOT_FOUND"
    assert await listed(globex) == []
    assert await listed(globex, agentId=bot["id"]) == []
    # a report naming acme's deployment in globex's name changes nothing
    await report(gateway, globex, node, (dep["id"], "FAILED", "spoofed"))
    assert (await get(acme, dep["id"]))["state"] == "PENDING"
