"""MCP plans through the gateway, on both engines: planMcp with the issue's selection set over a
real MCP server (tests/mcp_fixture.py), approval, execution with the result artifact, the audit
trail written once per action, the mcpPlanUpdates subscription receiving each transition, the
default roles and tenant isolation, and a plan run on the real synapsex-ops-mcp in front of
this gateway with a short-lived key of the approver."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager, suppress

import pytest
from gql import gql

from synapsex.opsmcp import OpsMcpConfig, OpsMcpServer
from tests.mcp_fixture import expected_text, mcp_fixture_server

from .conftest import Caller, Gateway, running_gateway
from .events_support import ws_client

SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "billing-service",
    "workspace-service",
    "api-gateway",
    "mcp-router-service",
]
ENVIRON = {"SYNAPSEX_MCP_ALLOW_PRIVATE_NETWORKS": "true", "SYNAPSEX_MCP_TIMEOUT": "5s"}
DEADLINE = 10.0

PLAN_FIELDS = """id status intent requiresApproval explanation createdAt
candidates { tool server score reasons { term weight field } policy { effect reason } }
chosen { tool server arguments missingArguments toolDefinitionSha256 argumentsSha256 }
approvedBy approvedRole error durationMs resultArtifactId
resultArtifact { id kind mediaType sha256 contentBase64 }"""
PLAN = f"""mutation ($input: PlanMcpInput!) {{ planMcp(input: $input) {{ {PLAN_FIELDS} }} }}"""
APPROVE = f"""mutation ($id: ID!, $sha: String) {{
  approveMcpPlan(input: {{id: $id, argumentsSha256: $sha}}) {{ {PLAN_FIELDS} }} }}"""
REJECT = f"""mutation ($id: ID!, $reason: String!) {{
  rejectMcpPlan(input: {{id: $id, reason: $reason}}) {{ {PLAN_FIELDS} }} }}"""
EXECUTE = f"""mutation ($id: ID!) {{ executeMcpPlan(input: {{id: $id}}) {{ {PLAN_FIELDS} }} }}"""
UPDATE = f"""mutation ($id: ID!, $arguments: JSON!) {{
  updateMcpPlanArguments(input: {{id: $id, arguments: $arguments}}) {{ {PLAN_FIELDS} }} }}"""
GET = f"query ($id: ID!) {{ mcpPlan(id: $id) {{ {PLAN_FIELDS} }} }}"
PLANS = """query ($status: McpPlanStatus) {
  mcpPlans(status: $status, first: 100) { edges { node { id status } } } }"""
REGISTER = """mutation ($url: String!) {
  registerMcpServer(input: {name: "fixture", url: $url}) { id } }"""
SYNC = "mutation ($id: ID!) { syncMcpServer(input: {id: $id}) { id toolCount } }"
SERVERS = "{ mcpServers(first: 100) { edges { node { id name } } } }"
WORKSPACE = 'mutation { createWorkspace(input: {name: "ops"}) { id } }'
AUDIT = """{ auditRecords(first: 100) { edges { node {
  action resourceType resourceId outcome errorCode } } } }"""
EVENTS = """query ($topic: String) { events(topic: $topic, first: 100) {
  edges { node { topic source payload } } } }"""
SUBSCRIBE = """subscription ($id: ID!) { mcpPlanUpdates(id: $id) {
  topic status previousStatus eventId plan { id status approvedBy } } }"""


@asynccontextmanager
async def gateway_with_fixture(tmp_path, db_environ, aiohttp_client, **environ: str):
    async with (
        mcp_fixture_server() as server,
        running_gateway(
            tmp_path, {**db_environ, **ENVIRON, **environ}, aiohttp_client, SERVICES
        ) as gw,
    ):
        registered = await gw.acme.data(REGISTER, {"url": server.url})
        server_id = registered["registerMcpServer"]["id"]
        synced = await gw.acme.data(SYNC, {"id": server_id})
        assert synced["syncMcpServer"]["toolCount"] == 14
        gw.server = server  # type: ignore[attr-defined]
        yield gw


@pytest.fixture
async def gw(tmp_path, db_environ, aiohttp_client) -> AsyncIterator[Gateway]:
    async with gateway_with_fixture(tmp_path, db_environ, aiohttp_client) as gateway:
        yield gateway


def code(error: dict) -> str:
    return error["extensions"]["code"]


async def plan(caller: Caller, intent: str, **fields) -> dict:
    return (await caller.data(PLAN, {"input": {"intent": intent, **fields}}))["planMcp"]


async def audit_actions(caller: Caller) -> list[tuple[str, str | None, str]]:
    data = await caller.data(AUDIT)
    return [
        (e["node"]["action"], e["node"]["resourceId"], e["node"]["outcome"])
        for e in data["auditRecords"]["edges"]
        if e["node"]["action"].startswith("mcp_plan")
    ]


# ---------------------------------------------------------------------------- the flow


async def test_plan_approve_execute_with_the_result_artifact_and_one_audit_record_each(gw):
    acme = gw.acme
    workspace = (await acme.data(WORKSPACE))["createWorkspace"]["id"]
    proposed = await plan(
        acme,
        "schedule a calendar meeting for 30 minutes",
        arguments={"title": "Retro", "start_time": "2026-12-08T10:00", "attendees": ["ann"]},
        workspaceId=workspace,
    )
    assert proposed["status"] == "PROPOSED"
    assert proposed["requiresApproval"] is True
    chosen = proposed["chosen"]
    assert chosen["tool"] == "fixture__schedule_meeting"
    assert chosen["server"] == "fixture"
    assert chosen["arguments"] == {
        "title": "Retro",
        "start_time": "2026-12-08T10:00",
        "duration_minutes": 30,
        "attendees": ["ann"],
    }
    assert chosen["missingArguments"] == []
    assert len(chosen["toolDefinitionSha256"]) == 64
    canonical = json.dumps(chosen["arguments"], sort_keys=True, separators=(",", ":"))
    assert chosen["argumentsSha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    best = proposed["candidates"][0]
    assert best["tool"] == chosen["tool"]
    assert best["policy"] == {
        "effect": "ALLOW",
        "reason": "Members can change their own resources.",
    }
    assert {"term": "meeting", "field": "name"} in [
        {"term": r["term"], "field": r["field"]} for r in best["reasons"]
    ]
    assert proposed["explanation"].startswith("Chose fixture__schedule_meeting (score ")
    assert "duration_minutes" in proposed["explanation"]  # taken from the intent

    approved = (await acme.data(APPROVE, {"id": proposed["id"], "sha": chosen["argumentsSha256"]}))[
        "approveMcpPlan"
    ]
    assert approved["status"] == "APPROVED"
    assert approved["approvedBy"] == acme.member_id
    assert approved["approvedRole"] == "owner"

    done = (await acme.data(EXECUTE, {"id": proposed["id"]}))["executeMcpPlan"]
    assert done["status"] == "SUCCEEDED"
    assert done["error"] is None
    artifact = done["resultArtifact"]
    assert artifact["kind"] == "OUTPUT"
    assert artifact["mediaType"] == "application/json"
    content = base64.b64decode(artifact["contentBase64"])
    assert hashlib.sha256(content).hexdigest() == artifact["sha256"]
    document = json.loads(content)
    assert document["content"][0]["text"] == expected_text("schedule_meeting", chosen["arguments"])
    assert gw.server.calls == [("schedule_meeting", chosen["arguments"])]

    plan_id = proposed["id"]
    assert sorted(await audit_actions(acme)) == sorted(
        [
            ("mcp_plan.create", plan_id, "SUCCESS"),
            ("mcp_plan.approve", plan_id, "SUCCESS"),
            ("mcp_plan.execute", plan_id, "SUCCESS"),
            ("mcp_plan.executed", plan_id, "SUCCESS"),
        ]
    )
    listed = (await acme.data(PLANS, {"status": "SUCCEEDED"}))["mcpPlans"]["edges"]
    assert [e["node"]["id"] for e in listed] == [plan_id]


async def test_missing_arguments_refuse_approval_until_updated(gw):
    acme = gw.acme
    proposed = await plan(acme, "refund 250 cents of a card payment")
    assert proposed["chosen"]["missingArguments"] == ["payment_id"]
    error = await acme.error(APPROVE, {"id": proposed["id"]})
    assert code(error) == "CONFLICT"
    assert error["extensions"]["field"] == "arguments"
    bad = await acme.error(UPDATE, {"id": proposed["id"], "arguments": ["P-1"]})
    assert code(bad) == "INVALID_INPUT"
    assert bad["extensions"]["field"] == "arguments"
    updated = (await acme.data(UPDATE, {"id": proposed["id"], "arguments": {"payment_id": "P-1"}}))[
        "updateMcpPlanArguments"
    ]
    assert updated["chosen"]["missingArguments"] == []
    assert updated["chosen"]["arguments"] == {"payment_id": "P-1", "amount_cents": 250}
    assert (await acme.data(APPROVE, {"id": proposed["id"]}))["approveMcpPlan"]["status"] == (
        "APPROVED"
    )


# ---------------------------------------------------------------------------- the subscription


async def test_the_subscription_streams_every_transition_and_ends(gw):
    acme = gw.acme
    proposed = await plan(acme, "delete ticket ticket_id=T-8")
    updates: asyncio.Queue[dict] = asyncio.Queue()

    async with ws_client(gw, {"authorization": f"Bearer {acme.key}"}) as session:
        request = gql(SUBSCRIBE)
        request.variable_values = {"id": proposed["id"]}

        async def read() -> None:
            async with aclosing(session.subscribe(request)) as stream:
                async for item in stream:
                    updates.put_nowait(item["mcpPlanUpdates"])

        reader = asyncio.create_task(read())
        try:
            # the snapshot comes once the server listens: what is committed next is streamed
            first = await asyncio.wait_for(updates.get(), DEADLINE)
            assert (first["topic"], first["status"]) == (None, "PROPOSED")
            await acme.data(APPROVE, {"id": proposed["id"]})
            await acme.data(EXECUTE, {"id": proposed["id"]})
            seen = [await asyncio.wait_for(updates.get(), DEADLINE) for _ in range(3)]
            await asyncio.wait_for(reader, DEADLINE)  # the stream ends after SUCCEEDED
        finally:
            reader.cancel()
            with suppress(asyncio.CancelledError):
                await reader
    assert [(u["topic"], u["status"], u["previousStatus"]) for u in seen] == [
        ("mcp.plan.approved", "APPROVED", "PROPOSED"),
        ("mcp.plan.executing", "EXECUTING", "APPROVED"),
        ("mcp.plan.executed", "SUCCEEDED", "EXECUTING"),
    ]
    assert seen[0]["plan"]["approvedBy"] == acme.member_id
    assert updates.empty()


# ---------------------------------------------------------------------------- roles, isolation


async def test_default_roles_and_tenant_isolation(gw):
    acme, globex = gw.acme, gw.globex
    member = await gw.key_for(acme, "member", "m@acme.io")
    viewer = await gw.key_for(acme, "viewer", "v@acme.io")

    mine = await plan(member, "delete ticket ticket_id=T-4")
    assert mine["requiresApproval"] is True
    refused = await member.error(APPROVE, {"id": mine["id"]})  # approving is for admins
    assert code(refused) == "FORBIDDEN"
    assert code(await viewer.error(PLAN, {"input": {"intent": "weather in Paris"}})) == "FORBIDDEN"
    # a member may withdraw their own plan, not the owner's
    owners = await plan(acme, "delete ticket ticket_id=T-5")
    assert code(await member.error(REJECT, {"id": owners["id"], "reason": "no"})) == "FORBIDDEN"
    rejected = (await member.data(REJECT, {"id": mine["id"], "reason": "typo"}))["rejectMcpPlan"]
    assert rejected["status"] == "REJECTED"
    # the owner approves, the member who made it runs it
    await acme.data(APPROVE, {"id": owners["id"]})
    assert code(await member.error(EXECUTE, {"id": owners["id"]})) == "FORBIDDEN"

    for query, variables in (
        (GET, {"id": mine["id"]}),
        (APPROVE, {"id": owners["id"]}),
        (EXECUTE, {"id": owners["id"]}),
        (REJECT, {"id": owners["id"], "reason": "mine"}),
        (UPDATE, {"id": owners["id"], "arguments": {}}),
    ):
        assert code(await globex.error(query, variables)) == "NOT_FOUND"
    assert (await globex.data(PLANS))["mcpPlans"]["edges"] == []
    nothing = await globex.error(PLAN, {"input": {"intent": "delete ticket"}})
    assert code(nothing) == "INVALID_INPUT"  # Acme's server is not Globex's
    assert (await acme.data(GET, {"id": owners["id"]}))["mcpPlan"]["status"] == "APPROVED"


# ---------------------------------------------------------------------------- synapsex-ops-mcp


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_plan_runs_on_synapsex_ops_mcp_with_a_short_lived_key_of_the_approver(
    tmp_path, db_environ, aiohttp_client
):
    port = _free_port()  # the router learns the URL at start, before ops-mcp can listen
    environ = {
        **db_environ,
        **ENVIRON,
        "SYNAPSEX_OPS_MCP_URL": f"http://127.0.0.1:{port}/mcp",
    }
    async with running_gateway(tmp_path, environ, aiohttp_client, SERVICES) as gw:
        gateway_url = str(gw.client.make_url("/graphql"))
        config = OpsMcpConfig(gateway_url=gateway_url, port=port, timeout=10.0)
        async with OpsMcpServer(config):
            acme = gw.acme
            servers = (await acme.data(SERVERS))["mcpServers"]["edges"]
            (ops_id,) = [
                e["node"]["id"] for e in servers if e["node"]["name"] == "synapsex-ops-mcp"
            ]
            await acme.data(SYNC, {"id": ops_id})
            member = await gw.key_for(acme, "member", "m@acme.io")
            proposed = await plan(
                member, 'publish an event on topic "ops.note"', arguments={"payload": {"n": 1}}
            )
            assert proposed["chosen"]["tool"] == "synapsex-ops-mcp__publish_event"
            assert proposed["chosen"]["arguments"] == {"topic": "ops.note", "payload": {"n": 1}}
            await acme.data(APPROVE, {"id": proposed["id"]})
            done = (await member.data(EXECUTE, {"id": proposed["id"]}))["executeMcpPlan"]
            assert done["status"] == "SUCCEEDED", done["error"]

            events = (await acme.data(EVENTS, {"topic": "ops.note"}))["events"]["edges"]
            (event,) = [e["node"] for e in events]
            assert event["payload"] == {"n": 1}
            key_id = event["source"].removeprefix("apikey:")
            keys = await acme.data(
                "{ apiKeys(first: 100) { edges { node { id name role revokedAt } } } }"
            )
            (key,) = [e["node"] for e in keys["apiKeys"]["edges"] if e["node"]["id"] == key_id]
            assert key["name"] == f"mcp plan {proposed['id']}"
            assert key["role"].lower() == "owner"  # the approver's, not the member's
            assert key["revokedAt"] is not None
