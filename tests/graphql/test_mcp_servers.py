"""MCP servers and the tool catalog through the gateway, on both engines, against a real MCP
server (tests/mcp_fixture.py): register, sync (paged tools/list), the catalog with hashes and
cursors, changed and removed tools, an unreachable server leaving the catalog as it was, the
audit trail; the seeded platform servers; tenant isolation and roles; validation naming each
field; the auth header from a tenant secret."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from synapsex.actors.mcp_router import client
from synapsex.contracts.mcp_tools import definition_sha256
from tests.mcp_fixture import TOOL_NAMES, mcp_fixture_server, unreachable_url

from .conftest import Caller, Gateway, running_gateway

SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "secrets-service",
    "api-gateway",
    "mcp-router-service",
]
ENVIRON = {"SYNAPSEX_MCP_ALLOW_PRIVATE_NETWORKS": "true", "SYNAPSEX_MCP_TIMEOUT": "5s"}

SERVER = """id scope name url description enabled authSecretName lastSyncedAt lastSyncError
toolCount createdBy createdAt updatedAt
lastSync { added changed removed unchanged skipped pages }"""
REGISTER = f"""mutation ($input: RegisterMcpServerInput!) {{
  registerMcpServer(input: $input) {{ {SERVER} }} }}"""
UPDATE = f"""mutation ($input: UpdateMcpServerInput!) {{
  updateMcpServer(input: $input) {{ {SERVER} }} }}"""
DISABLE = f"""mutation ($id: ID!) {{ disableMcpServer(input: {{id: $id}}) {{ {SERVER} }} }}"""
SYNC = f"""mutation ($id: ID!) {{ syncMcpServer(input: {{id: $id}}) {{ {SERVER} }} }}"""
GET = f"query ($id: ID!) {{ mcpServer(id: $id) {{ {SERVER} }} }}"
SERVERS = f"""query ($first: Int, $after: String, $search: String) {{
  mcpServers(first: $first, after: $after, search: $search) {{
    edges {{ node {{ {SERVER} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""
TOOL = """id scope serverId serverName name originalName title description inputSchema annotations
definitionSha256 previousSha256 status syncedAt"""
TOOLS = f"""query ($serverId: ID, $search: String, $status: McpToolStatus, $first: Int,
                   $after: String) {{
  mcpTools(serverId: $serverId, search: $search, status: $status, first: $first, after: $after) {{
    edges {{ cursor node {{ {TOOL} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""
AUDIT = """{ auditRecords(first: 100) { edges { node {
  action resourceType resourceId outcome errorCode
} } } }"""
PUT_SECRET = """mutation ($name: String!, $value: String!) {
  putSecret(input: {name: $name, value: $value}) { name version } }"""


@pytest.fixture
async def gateway(tmp_path, db_environ, aiohttp_client) -> AsyncIterator[Gateway]:
    environ = {**db_environ, **ENVIRON}
    async with running_gateway(tmp_path, environ, aiohttp_client, SERVICES) as gateway:
        yield gateway


def code(error: dict) -> str:
    return error["extensions"]["code"]


async def register(caller: Caller, url: str, name: str = "fixture", **fields) -> dict:
    variables = {"input": {"name": name, "url": url, **fields}}
    return (await caller.data(REGISTER, variables))["registerMcpServer"]


async def tools(caller: Caller, **variables) -> list[dict]:
    """Every catalog entry, through pages of five."""
    nodes: list[dict] = []
    after = None
    while True:
        data = await caller.data(TOOLS, {"first": 5, "after": after, **variables})
        nodes += [edge["node"] for edge in data["mcpTools"]["edges"]]
        if not data["mcpTools"]["pageInfo"]["hasNextPage"]:
            return nodes
        after = data["mcpTools"]["pageInfo"]["endCursor"]


async def servers(caller: Caller) -> list[dict]:
    data = await caller.data(SERVERS, {"first": 100})
    return [edge["node"] for edge in data["mcpServers"]["edges"]]


async def test_a_server_is_registered_synced_and_its_catalog_paged_changed_and_kept(
    gateway: Gateway,
):
    acme = gateway.acme
    async with mcp_fixture_server(page_size=4) as server:
        registered = await register(acme, server.url, description="Test tools")
        assert registered["scope"] == "TENANT"
        assert registered["createdBy"] == acme.member_id
        assert (registered["toolCount"], registered["lastSync"]) == (0, None)

        synced = (await acme.data(SYNC, {"id": registered["id"]}))["syncMcpServer"]
        assert synced["lastSync"] == {
            "added": 14,
            "changed": 0,
            "removed": 0,
            "unchanged": 0,
            "skipped": 0,
            "pages": 4,
        }
        assert synced["toolCount"] == 14
        assert synced["lastSyncedAt"] is not None

        catalog = await tools(acme, serverId=registered["id"])
        assert [t["name"] for t in catalog] == [f"fixture__{n}" for n in TOOL_NAMES]
        listed = {t.name: t for t in await client.list_tools(server.url, {}, 5)}
        for entry in catalog:
            definition = listed[entry["originalName"]]
            assert entry["definitionSha256"] == definition_sha256(definition)
            assert entry["inputSchema"] == definition.input_schema
            assert entry["annotations"] == definition.annotations
            assert (entry["status"], entry["scope"]) == ("ACTIVE", "TENANT")
            assert entry["serverName"] == "fixture"
        found = await tools(acme, search="currency")
        assert [t["originalName"] for t in found] == ["convert_currency"]

        server.change_tool("refund_payment", description="Refund part of a payment.")
        server.remove_tool("send_email")
        resynced = (await acme.data(SYNC, {"id": registered["id"]}))["syncMcpServer"]
        assert resynced["lastSync"]["changed"] == 1
        assert resynced["lastSync"]["removed"] == 1
        assert resynced["toolCount"] == 13
        after = {t["originalName"]: t for t in await tools(acme)}
        before = {t["originalName"]: t for t in catalog}
        refund = after["refund_payment"]
        assert refund["status"] == "CHANGED"
        assert refund["previousSha256"] == before["refund_payment"]["definitionSha256"]
        assert refund["description"] == "Refund part of a payment."
        assert after["send_email"]["status"] == "REMOVED"
        removed = await tools(acme, status="REMOVED")
        assert [t["name"] for t in removed] == ["fixture__send_email"]

    # the server is gone: UNAVAILABLE, the catalog and the last good sync stay
    moved = unreachable_url()
    await acme.data(UPDATE, {"input": {"id": registered["id"], "url": moved}})
    error = await acme.error(SYNC, {"id": registered["id"]})
    assert code(error) == "UNAVAILABLE"
    assert "cannot connect to the MCP server at http://127.0.0.1" in error["message"]
    assert await tools(acme) == list(after.values())
    kept = (await acme.data(GET, {"id": registered["id"]}))["mcpServer"]
    assert kept["lastSyncError"].startswith("UNAVAILABLE: cannot connect")
    assert kept["lastSync"] == resynced["lastSync"]
    assert kept["url"] == moved

    disabled = (await acme.data(DISABLE, {"id": registered["id"]}))["disableMcpServer"]
    assert disabled["enabled"] is False
    assert code(await acme.error(SYNC, {"id": registered["id"]})) == "CONFLICT"

    records = [e["node"] for e in (await acme.data(AUDIT))["auditRecords"]["edges"]]
    mine = [  # oldest first (the log lists the newest first)
        (r["action"], r["outcome"], r["errorCode"])
        for r in records
        if r["resourceType"] == "mcp_server"
    ][::-1]
    assert mine == [
        ("mcp_server.create", "SUCCESS", None),
        ("mcp_server.sync", "SUCCESS", None),
        ("mcp_server.sync", "SUCCESS", None),
        ("mcp_server.update", "SUCCESS", None),
        ("mcp_server.sync", "FAILURE", "UNAVAILABLE"),
        ("mcp_server.disable", "SUCCESS", None),
        ("mcp_server.sync", "FAILURE", "CONFLICT"),
    ]
    assert all(
        r["resourceId"] == registered["id"] for r in records if r["resourceType"] == "mcp_server"
    )


async def test_platform_servers_tenant_isolation_and_roles(gateway: Gateway):
    acme, globex = gateway.acme, gateway.globex
    async with mcp_fixture_server() as server:
        own = await register(acme, server.url, name="crm")
        await acme.data(SYNC, {"id": own["id"]})

    for caller in (acme, globex):
        platform = {s["name"]: s for s in await servers(caller) if s["scope"] == "PLATFORM"}
        assert platform["synapsex-ops-mcp"]["url"] == "http://127.0.0.1:8090/mcp"
        assert platform["synapsex-ops-mcp"]["enabled"] is True
        assert (platform["qcos-mcp"]["enabled"], platform["qcos-mcp"]["url"]) == (False, None)
    assert [s["name"] for s in await servers(globex) if s["scope"] == "TENANT"] == []
    assert [s["name"] for s in await servers(acme) if s["scope"] == "TENANT"] == ["crm"]

    # another tenant's server is NOT_FOUND everywhere, its tools are not listed
    for query, variables in (
        (GET, {"id": own["id"]}),
        (TOOLS, {"serverId": own["id"]}),
        (SYNC, {"id": own["id"]}),
        (DISABLE, {"id": own["id"]}),
        (UPDATE, {"input": {"id": own["id"], "description": "mine"}}),
    ):
        assert code(await globex.error(query, variables)) == "NOT_FOUND"
    assert await tools(globex) == []
    assert len(await tools(acme)) == 14

    # platform servers are the operator's: FORBIDDEN to every tenant, even its owner
    ops = next(s for s in await servers(acme) if s["name"] == "synapsex-ops-mcp")
    error = await acme.error(UPDATE, {"input": {"id": ops["id"], "url": "https://x.example/m"}})
    assert (code(error), error["extensions"]["field"]) == ("FORBIDDEN", "id")
    assert code(await globex.error(DISABLE, {"id": ops["id"]})) == "FORBIDDEN"

    # members and viewers read; managing servers is for admins and owners
    member = await gateway.key_for(acme, "member", "member@acme.io")
    viewer = await gateway.key_for(acme, "viewer", "viewer@acme.io")
    admin = await gateway.key_for(acme, "admin", "admin@acme.io")
    assert len(await tools(viewer)) == 14
    assert {s["name"] for s in await servers(member)} >= {"crm", "qcos-mcp"}
    for caller in (member, viewer):
        error = await caller.error(REGISTER, {"input": {"name": "x", "url": "https://x.io/m"}})
        assert code(error) == "FORBIDDEN"
        assert code(await caller.error(SYNC, {"id": own["id"]})) == "FORBIDDEN"
    renamed = await admin.data(UPDATE, {"input": {"id": own["id"], "name": "sales"}})
    assert renamed["updateMcpServer"]["name"] == "sales"
    assert {t["serverName"] for t in await tools(acme)} == {"sales"}


async def test_validation_errors_name_their_fields_and_auth_comes_from_a_secret(
    gateway: Gateway,
):
    acme = gateway.acme
    for fields, field in (
        ({"name": "Not Valid"}, "name"),
        ({"name": "a__b"}, "name"),
        ({"url": "ftp://example.com/mcp"}, "url"),
        ({"url": "https://user:pw@example.com/mcp"}, "url"),
        ({"description": "d" * 1001}, "description"),
        ({"authSecretName": "has space"}, "authSecretName"),
        ({"authSecretName": "NOT_PUT_YET"}, "authSecretName"),
    ):
        variables = {"input": {"name": "ok", "url": "https://127.0.0.1:1/mcp", **fields}}
        error = await acme.error(REGISTER, variables)
        assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", field), fields
    error = await acme.error(TOOLS, {"first": 101})
    assert (code(error), error["extensions"]["field"]) == ("INVALID_INPUT", "first")
    error = await acme.error(REGISTER, {"input": {"name": "qcos-mcp", "url": "https://q.io/m"}})
    assert (code(error), error["extensions"]["field"]) == ("CONFLICT", "name")

    await acme.data(PUT_SECRET, {"name": "CRM_TOKEN", "value": "s3cret-token"})
    async with mcp_fixture_server() as server:
        server.required_authorization = "Bearer s3cret-token"
        registered = await register(acme, server.url, authSecretName="CRM_TOKEN")
        assert registered["authSecretName"] == "CRM_TOKEN"
        synced = (await acme.data(SYNC, {"id": registered["id"]}))["syncMcpServer"]
        assert synced["toolCount"] == 14
        assert {r["authorization"] for r in server.requests} == {"Bearer s3cret-token"}

        body = await acme.gql(GET, {"id": registered["id"]})
        assert "s3cret-token" not in str(body)

        cleared = await acme.data(
            UPDATE, {"input": {"id": registered["id"], "authSecretName": None}}
        )
        assert cleared["updateMcpServer"]["authSecretName"] is None
        error = await acme.error(SYNC, {"id": registered["id"]})
        assert code(error) == "UNAVAILABLE"
        assert "HTTP 401" in error["message"]
        kept = await acme.data(UPDATE, {"input": {"id": registered["id"], "description": "x"}})
        assert kept["updateMcpServer"]["authSecretName"] is None
