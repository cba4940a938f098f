"""What an MCP client discovers on synapsex-ops-mcp, and its errors that need no gateway:
the tool list with titles, descriptions, schemas and annotations; no key; a malformed
``Authorization``; an unreachable gateway; arguments outside the schema."""

from __future__ import annotations

from synapsex.opsmcp import SERVER_NAME

from .conftest import NOWHERE, mcp_client, ops_mcp

#: tool -> (readOnlyHint, destructiveHint, idempotentHint, openWorldHint)
ANNOTATIONS = {
    "list_vms": (True, False, True, False),
    "get_vm": (True, False, True, False),
    "list_rollouts": (True, False, True, False),
    "pause_rollout": (False, False, True, False),
    "resume_rollout": (False, True, True, False),
    "list_events": (True, False, True, False),
    "publish_event": (False, False, False, True),
    "list_workspaces": (True, False, True, False),
    "list_artifacts": (True, False, True, False),
    "read_artifact_text": (True, False, True, False),
}
REQUIRED = {
    "get_vm": ["id"],
    "pause_rollout": ["id"],
    "resume_rollout": ["id"],
    "publish_event": ["topic"],
    "list_artifacts": ["workspaceId"],
    "read_artifact_text": ["id"],
}


async def test_tools_have_titles_descriptions_schemas_and_honest_annotations():
    async with ops_mcp(NOWHERE) as server, mcp_client(server.url) as mcp:
        assert server.url.endswith("/mcp")
        page = await mcp.session.list_tools()
        assert page.nextCursor is None
        tools = {tool.name: tool for tool in page.tools}
        assert set(tools) == set(ANNOTATIONS)
        for name, tool in tools.items():
            a = tool.annotations
            assert a is not None
            assert (a.readOnlyHint, a.destructiveHint, a.idempotentHint, a.openWorldHint) == (
                ANNOTATIONS[name]
            ), name
            assert tool.title, name
            assert tool.title[0].isupper(), name
            assert len(tool.description or "") > 80, name  # written for a model
            schema = tool.inputSchema
            assert schema["type"] == "object"
            assert schema.get("required", []) == REQUIRED.get(name, []), name
            for prop in schema["properties"].values():
                assert prop.get("description"), (name, prop)
        # pages: first is bounded as the gateway's connections are
        first = tools["list_events"].inputSchema["properties"]["first"]
        assert (first["minimum"], first["maximum"], first["default"]) == (1, 100, 20)
        statuses = tools["list_rollouts"].inputSchema["properties"]["status"]["anyOf"][0]
        assert statuses["enum"] == ["RUNNING", "PAUSED", "HALTED", "COMPLETED", "ROLLED_BACK"]


async def test_server_names_itself_and_says_what_it_is_for():
    async with ops_mcp(NOWHERE) as server, mcp_client(server.url) as mcp:
        assert mcp.initialized.serverInfo.name == SERVER_NAME == "synapsex-ops-mcp"
        assert "SynapseX" in (mcp.initialized.instructions or "")
        assert mcp.initialized.capabilities.tools is not None


async def test_no_key_malformed_header_and_unreachable_gateway_are_tool_errors():
    async with ops_mcp(NOWHERE) as server:
        async with mcp_client(server.url) as mcp:
            error = await mcp.error("list_events")
            assert "UNAUTHENTICATED" in error
            assert "Authorization: Bearer" in error
        async with mcp_client(server.url, Authorization="Basic dXNlcjpwYXNz") as mcp:
            assert "must be 'Bearer" in await mcp.error("list_rollouts")
        async with mcp_client(server.url, "sx_some_key") as mcp:
            error = await mcp.error("get_vm", id="vm_1")
            assert "UNAVAILABLE" in error
            assert "127.0.0.1:9" in error
            assert "sx_some_key" not in error


async def test_arguments_outside_the_schema_are_refused_before_the_gateway():
    async with ops_mcp(NOWHERE) as server, mcp_client(server.url, "sx_some_key") as mcp:
        assert "first" in await mcp.error("list_events", first=500)
        assert "status" in await mcp.error("list_rollouts", status="EXPLODED")
        assert "maxBytes" in await mcp.error("read_artifact_text", id="art_1", maxBytes=0)
        assert "topic" in await mcp.error("publish_event")
