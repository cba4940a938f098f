"""synapsex-ops-mcp in front of a real gateway (on a real port), used with the ``mcp`` client:
each MCP request's bearer key is the caller at the gateway, so a tenant sees only its own
events, VMs, rollouts, workspaces and artifacts (another tenant's is NOT_FOUND), a viewer is
FORBIDDEN to write, and the fallback key is used only when a request has none."""

from __future__ import annotations

import base64

import pytest
from structlog.testing import capture_logs

from synapsex.contracts.vms import RegisterVm, VmHeartbeat
from tests.graphql.conftest import Caller, Gateway, running_gateway

from .conftest import Mcp, mcp_client, ops_mcp

SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "vm-registry-service",
    "update-service",
    "workspace-service",
]
SHA = "0f" * 32
CREATE_RELEASE = f"""mutation ($version: String!) {{
  createRelease(input: {{component: AGENT, version: $version, url: "https://dl.example.com/a",
                         sha256: "{SHA}"}}) {{ id }}
}}"""
START_ROLLOUT = """mutation ($releaseId: ID!) {
  startRollout(input: {releaseId: $releaseId, percentage: 50}) { id status }
}"""
ROLLOUT = "query ($id: ID!) { rollout(id: $id) { status } }"
CREATE_WORKSPACE = """mutation ($name: String!) {
  createWorkspace(input: {name: $name}) { id }
}"""
UPLOAD = """mutation ($input: UploadArtifactInput!) {
  uploadArtifact(input: $input) { id sha256 }
}"""
TEXT = "héllo wörld — ops notes\n" * 40


@pytest.fixture
async def gw(tmp_path, db_environ, aiohttp_client):
    async with running_gateway(tmp_path, db_environ, aiohttp_client, SERVICES) as gateway:
        yield gateway


def graphql_url(gw: Gateway) -> str:
    return str(gw.client.make_url("/graphql"))


async def upload(owner: Caller, workspace_id: str, name: str, content: bytes, media: str) -> str:
    variables = {
        "input": {
            "workspaceId": workspace_id,
            "name": name,
            "kind": "REPORT",
            "mediaType": media,
            "contentBase64": base64.b64encode(content).decode(),
        }
    }
    return (await owner.data(UPLOAD, variables))["uploadArtifact"]["id"]


async def check_events(acme: Mcp, globex: Mcp) -> None:
    published = await acme.call(
        "publish_event", topic="ops.note", payload={"text": "disk at 91%"}, key="vm-1"
    )
    assert published["topic"] == "ops.note"
    assert published["payload"] == {"text": "disk at 91%"}
    assert published["source"].startswith("apikey:")
    for n in range(2):
        await acme.call("publish_event", topic="ops.tick", payload=n)
    seen = await acme.call("list_events", topic="ops.#")
    assert [e["topic"] for e in seen["items"]] == ["ops.note", "ops.tick", "ops.tick"]
    assert seen["items"][0]["id"] == published["id"]
    assert seen["nextCursor"] is None
    # paging: nextCursor as `after`
    page = await acme.call("list_events", topic="ops.tick", first=1)
    assert page["items"][0]["payload"] == 0
    assert page["nextCursor"]
    rest = await acme.call("list_events", topic="ops.tick", first=1, after=page["nextCursor"])
    assert rest["items"][0]["payload"] == 1
    # another tenant sees none of it, and its own event stays its own
    assert (await globex.call("list_events", topic="ops.#"))["items"] == []
    await globex.call("publish_event", topic="ops.note", payload={"text": "globex"})
    assert len((await acme.call("list_events", topic="ops.note"))["items"]) == 1


async def check_rollouts(gw: Gateway, acme: Mcp, globex: Mcp, viewer: Mcp) -> None:
    release = (await gw.acme.data(CREATE_RELEASE, {"version": "2.0.0"}))["createRelease"]
    rollout = (await gw.acme.data(START_ROLLOUT, {"releaseId": release["id"]}))["startRollout"]
    listed = await acme.call("list_rollouts")
    assert [(r["id"], r["status"], r["percentage"]) for r in listed["items"]] == [
        (rollout["id"], "RUNNING", 50)
    ]
    assert listed["items"][0]["version"] == "2.0.0"
    assert (await acme.call("list_rollouts", status="PAUSED"))["items"] == []

    paused = await acme.call("pause_rollout", id=rollout["id"])
    assert (paused["id"], paused["status"]) == (rollout["id"], "PAUSED")
    assert "CONFLICT" in await acme.error("pause_rollout", id=rollout["id"])

    # another tenant: as if the rollout did not exist
    assert (await globex.call("list_rollouts"))["items"] == []
    for tool in ("pause_rollout", "resume_rollout"):
        error = await globex.error(tool, id=rollout["id"])
        assert error.startswith(f"Error executing tool {tool}: NOT_FOUND"), error
    # a viewer of the same tenant reads, and is refused writes by policy
    assert (await viewer.call("list_rollouts"))["items"][0]["status"] == "PAUSED"
    assert "FORBIDDEN" in await viewer.error("resume_rollout", id=rollout["id"])
    state = await gw.acme.data(ROLLOUT, {"id": rollout["id"]})
    assert state["rollout"]["status"] == "PAUSED"

    resumed = await acme.call("resume_rollout", id=rollout["id"])
    assert resumed["status"] == "RUNNING"


async def check_vms(gw: Gateway, acme: Mcp, globex: Mcp) -> None:
    ids = {}
    for name, zone in (("edge-1", "eu-west"), ("edge-2", "us-east")):
        made = await gw.runtime.ask(
            RegisterVm(
                tenant_id=gw.acme.tenant_id,
                name=name,
                labels={"zone": zone},
                runtime_version="1.0.0",
                agent_version="1.0.0",
            )
        )
        ids[name] = made.vm.id
    await gw.runtime.ask(
        VmHeartbeat(
            tenant_id=gw.acme.tenant_id,
            vm_id=ids["edge-1"],
            runtime_version="1.0.1",
            agent_version="1.0.0",
            status="BUSY",
        )
    )
    listed = await acme.call("list_vms")
    assert [(v["name"], v["labels"]) for v in listed["items"]] == [
        ("edge-1", {"zone": "eu-west"}),
        ("edge-2", {"zone": "us-east"}),
    ]
    east = await acme.call("list_vms", label="zone=us-east")
    assert [v["id"] for v in east["items"]] == [ids["edge-2"]]
    busy = await acme.call("list_vms", status="BUSY", health="HEALTHY")
    assert [v["id"] for v in busy["items"]] == [ids["edge-1"]]

    vm = await acme.call("get_vm", id=ids["edge-1"])
    assert (vm["name"], vm["status"], vm["health"], vm["runtimeVersion"]) == (
        "edge-1",
        "BUSY",
        "HEALTHY",
        "1.0.1",
    )
    assert vm["lastHeartbeatAt"]
    # another tenant: as if the VMs did not exist
    assert (await globex.call("list_vms"))["items"] == []
    assert "NOT_FOUND" in await globex.error("get_vm", id=ids["edge-1"])


async def check_artifacts(gw: Gateway, acme: Mcp, globex: Mcp, viewer: Mcp) -> None:
    workspace_id = (await gw.acme.data(CREATE_WORKSPACE, {"name": "ops"}))["createWorkspace"]["id"]
    text_id = await upload(gw.acme, workspace_id, "notes.md", TEXT.encode(), "text/markdown")
    binary_id = await upload(gw.acme, workspace_id, "blob.bin", b"\x89PNG\xff\x00", "image/png")

    workspaces = await acme.call("list_workspaces")
    assert [(w["id"], w["artifactCount"]) for w in workspaces["items"]] == [(workspace_id, 2)]
    artifacts = await acme.call("list_artifacts", workspaceId=workspace_id)
    assert [a["name"] for a in artifacts["items"]] == ["notes.md", "blob.bin"]
    reports = await viewer.call("list_artifacts", workspaceId=workspace_id, kind="REPORT")
    assert len(reports["items"]) == 2

    whole = await acme.call("read_artifact_text", id=text_id)
    assert whole["text"] == TEXT
    assert (whole["truncated"], whole["bytesRead"]) == (False, len(TEXT.encode()))
    assert (whole["name"], whole["mediaType"], whole["workspaceId"]) == (
        "notes.md",
        "text/markdown",
        workspace_id,
    )
    # a prefix (streamed from the download path): cut inside "é", which is left out
    prefix = await acme.call("read_artifact_text", id=text_id, maxBytes=2)
    assert (prefix["text"], prefix["truncated"], prefix["bytesRead"]) == ("h", True, 2)
    longer = await acme.call("read_artifact_text", id=text_id, maxBytes=100)
    assert TEXT.startswith(longer["text"])
    assert len(longer["text"]) > 80

    error = await acme.error("read_artifact_text", id=binary_id)
    assert "INVALID_INPUT" in error
    assert "not UTF-8 text" in error

    for tool, arguments in (
        ("read_artifact_text", {"id": text_id}),
        ("read_artifact_text", {"id": text_id, "maxBytes": 5}),
        ("list_artifacts", {"workspaceId": workspace_id}),
    ):
        assert "NOT_FOUND" in await globex.error(tool, **arguments), tool
    assert (await globex.call("list_workspaces"))["items"] == []


async def test_tools_act_as_the_caller_and_each_tenant_sees_only_its_own(gw):
    viewer_key = await gw.key_for(gw.acme, "viewer", "viewer@acme.io")
    with capture_logs() as logs:
        await use_every_tool(gw, viewer_key)
    calls = [line for line in logs if line["event"] == "tool call"]
    assert {"list_events", "publish_event", "read_artifact_text"} <= {c["tool"] for c in calls}
    assert {"ok", "NOT_FOUND", "FORBIDDEN", "CONFLICT"} <= {c["outcome"] for c in calls}
    for key in (gw.acme.key, gw.globex.key, viewer_key.key):
        assert key not in repr(logs)


async def use_every_tool(gw: Gateway, viewer_key: Caller) -> None:
    async with (
        ops_mcp(graphql_url(gw)) as server,
        mcp_client(server.url, gw.acme.key) as acme,
        mcp_client(server.url, gw.globex.key) as globex,
        mcp_client(server.url, viewer_key.key) as viewer,
    ):
        await check_events(acme, globex)
        await check_vms(gw, acme, globex)
        await check_rollouts(gw, acme, globex, viewer)
        await check_artifacts(gw, acme, globex, viewer)
        assert "FORBIDDEN" in await viewer.error("publish_event", topic="ops.note")


# about keys, not storage: SQLite is enough
@pytest.mark.parametrize("db_environ", [{}], ids=["sqlite"])
async def test_fallback_key_serves_requests_without_one_and_a_request_key_wins(gw):
    await gw.acme.data('mutation { publishEvent(input: {topic: "ops.acme"}) { id } }')
    await gw.globex.data('mutation { publishEvent(input: {topic: "ops.globex"}) { id } }')
    async with ops_mcp(graphql_url(gw), api_key=gw.acme.key) as server:
        async with mcp_client(server.url) as anonymous:
            seen = await anonymous.call("list_events", topic="ops.*")
            assert [e["topic"] for e in seen["items"]] == ["ops.acme"]
        async with mcp_client(server.url, gw.globex.key) as globex:
            seen = await globex.call("list_events", topic="ops.*")
            assert [e["topic"] for e in seen["items"]] == ["ops.globex"]
        async with mcp_client(server.url, "sx_not_a_key") as stranger:
            assert "UNAUTHENTICATED" in await stranger.error("list_events")
