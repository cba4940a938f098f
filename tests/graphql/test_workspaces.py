"""Workspaces and artifacts through the gateway on both engines: a workspace's life and the
plan's limit, an agent's workspace, uploads read back inline (bytes and SHA-256 identical),
dedup, the kind filter and pages, the per-artifact and storage limits, request bodies past
1 MiB for uploads only, validation errors naming their field, roles, audit, the events and
the storage billing meters, and tenant isolation."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from synapsex.contracts.agents import RegisterAgent
from synapsex.contracts.billing import GetUsageSummary
from synapsex.contracts.tenant import UpdateTenantPlan
from synapsex.runtime.testing import wait_until

from .conftest import Caller, Gateway, running_gateway
from .events_support import all_events

SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "workspace-service",
]

WORKSPACE = "id name agentId status artifactCount createdBy createdAt updatedAt archivedAt"
ARTIFACT = "id workspaceId name kind mediaType size sha256 createdBy createdAt downloadPath"
CREATE = f"""mutation ($input: CreateWorkspaceInput!) {{
  createWorkspace(input: $input) {{ {WORKSPACE} }} }}"""
ARCHIVE = f"""mutation ($id: ID!) {{ archiveWorkspace(input: {{id: $id}}) {{ {WORKSPACE} }} }}"""
DELETE = f"""mutation ($id: ID!) {{ deleteWorkspace(input: {{id: $id}}) {{ {WORKSPACE} }} }}"""
WORKSPACES = f"""query ($status: WorkspaceStatus, $agentId: ID, $first: Int, $after: String) {{
  workspaces(status: $status, agentId: $agentId, first: $first, after: $after) {{
    edges {{ cursor node {{ {WORKSPACE} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""
GET_WORKSPACE = f"query ($id: ID!) {{ workspace(id: $id) {{ {WORKSPACE} }} }}"
UPLOAD = f"""mutation ($input: UploadArtifactInput!) {{
  uploadArtifact(input: $input) {{ {ARTIFACT} deduplicated }} }}"""
ARTIFACTS = f"""query ($workspaceId: ID!, $kind: ArtifactKind, $first: Int, $after: String) {{
  artifacts(workspaceId: $workspaceId, kind: $kind, first: $first, after: $after) {{
    edges {{ cursor node {{ {ARTIFACT} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""
GET_ARTIFACT = f"query ($id: ID!) {{ artifact(id: $id) {{ {ARTIFACT} }} }}"
CONTENT = "query ($id: ID!) { artifact(id: $id) { size sha256 contentBase64 } }"
DELETE_ARTIFACT = f"""mutation ($id: ID!) {{
  deleteArtifact(input: {{id: $id}}) {{ {ARTIFACT} }} }}"""
USAGE = """{ storageUsage { workspaces workspaceLimit storageBytes storageLimitBytes
  artifactMaxBytes inlineMaxBytes } }"""
#: the topics of this service and of the usage it reports
OURS = ("workspace", "artifact", "usage")
MIXED = """mutation ($input: UploadArtifactInput!) {
  createWorkspace(input: {name: "smuggled"}) { id }
  uploadArtifact(input: $input) { deduplicated } }"""
AUDIT = """{ auditRecords(first: 100) { edges { node {
  action resourceType resourceId outcome errorCode } } } }"""


@pytest.fixture
async def gateway(tmp_path, db_environ, aiohttp_client) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, db_environ, aiohttp_client, SERVICES) as gateway:
        yield gateway


def code(error: dict) -> str:
    return error["extensions"]["code"]


async def create(caller: Caller, name: str = "Main", **fields) -> dict:
    return (await caller.data(CREATE, {"input": {"name": name, **fields}}))["createWorkspace"]


def upload_input(workspace_id: str, content: bytes, name: str = "out.bin", **fields) -> dict:
    return {
        "input": {
            "workspaceId": workspace_id,
            "name": name,
            "kind": "OUTPUT",
            "mediaType": "application/octet-stream",
            "contentBase64": base64.b64encode(content).decode(),
            **fields,
        }
    }


async def post(caller: Caller, query: str, variables: dict) -> dict:
    """Like ``caller.gql``, the body sent from a file object (aiohttp warns about large
    bodies given as bytes: they are written in one go)."""
    body = io.BytesIO(json.dumps({"query": query, "variables": variables}).encode())
    headers = {"Authorization": f"Bearer {caller.key}", "Content-Type": "application/json"}
    response = await caller.client.post("/graphql", data=body, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def upload(caller: Caller, workspace_id: str, content: bytes, **fields) -> dict:
    body = await post(caller, UPLOAD, upload_input(workspace_id, content, **fields))
    assert "errors" not in body, body
    return body["data"]["uploadArtifact"]


async def refused(caller: Caller, query: str, variables: dict) -> dict:
    """The single error of a request that must fail."""
    body = await post(caller, query, variables)
    assert len(body.get("errors", [])) == 1, body
    return body["errors"][0]


async def pages(caller: Caller, query: str, root: str, **variables) -> list[dict]:
    """Every node, following pages of two."""
    nodes, after = [], None
    while True:
        data = (await caller.data(query, {"first": 2, "after": after, **variables}))[root]
        nodes += [edge["node"] for edge in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            return nodes
        after = data["pageInfo"]["endCursor"]


# ---------------------------------------------------------------------------- workspaces


async def test_a_workspace_lives_within_the_plan_limit_and_is_audited(gateway: Gateway):
    globex = gateway.globex  # free plan: 5 workspaces
    made = [await create(globex, f"ws {i}") for i in range(4)]
    error = await globex.error(CREATE, {"input": {"name": "WS 1"}})  # names ignore case
    assert code(error) == "CONFLICT"
    assert error["extensions"]["field"] == "name"
    made.append(await create(globex, "ws 4"))  # the refused name took no slot
    assert made[0]["status"] == "ACTIVE"
    assert made[0]["createdBy"] == globex.member_id
    assert made[0]["agentId"] is None
    assert [w["id"] for w in await pages(globex, WORKSPACES, "workspaces")] == [
        w["id"] for w in made
    ]
    error = await globex.error(CREATE, {"input": {"name": "one too many"}})
    assert code(error) == "LIMIT_EXCEEDED"
    assert error["extensions"]["limit"] == "workspaces"

    archived = (await globex.data(ARCHIVE, {"id": made[0]["id"]}))["archiveWorkspace"]
    assert archived["status"] == "ARCHIVED"
    assert archived["archivedAt"] is not None
    listed = await pages(globex, WORKSPACES, "workspaces", status="ARCHIVED")
    assert [w["id"] for w in listed] == [made[0]["id"]]
    assert code(await globex.error(CREATE, {"input": {"name": "x"}})) == "LIMIT_EXCEEDED"

    deleted = (await globex.data(DELETE, {"id": made[0]["id"]}))["deleteWorkspace"]
    assert deleted["id"] == made[0]["id"]
    assert code(await globex.error(GET_WORKSPACE, {"id": made[0]["id"]})) == "NOT_FOUND"
    await create(globex, "room again")
    assert (await globex.data(USAGE))["storageUsage"]["workspaces"] == 5

    records = [e["node"] for e in (await globex.data(AUDIT))["auditRecords"]["edges"]]
    outcomes = {(r["action"], r["outcome"], r["errorCode"]) for r in records}
    assert ("workspace.create", "SUCCESS", None) in outcomes
    assert ("workspace.create", "FAILURE", "LIMIT_EXCEEDED") in outcomes
    assert ("workspace.archive", "SUCCESS", None) in outcomes
    assert ("workspace.delete", "SUCCESS", None) in outcomes


async def test_roles_members_change_their_own_workspaces_viewers_only_read(gateway: Gateway):
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    owners = await create(gateway.acme, "owners")
    mine = await create(member, "mine")
    content = b"by a member"
    art = await upload(member, mine["id"], content)

    assert code(await member.error(ARCHIVE, {"id": owners["id"]})) == "FORBIDDEN"
    assert (await member.data(ARCHIVE, {"id": mine["id"]}))["archiveWorkspace"]["status"] == (
        "ARCHIVED"
    )
    assert code(await viewer.error(CREATE, {"input": {"name": "v"}})) == "FORBIDDEN"
    assert code(await viewer.error(UPLOAD, upload_input(owners["id"], b"v"))) == "FORBIDDEN"
    got = await viewer.data(CONTENT, {"id": art["id"]})
    assert base64.b64decode(got["artifact"]["contentBase64"]) == content


async def test_an_agents_workspace_names_an_agent_of_the_tenant(
    tmp_path, db_environ, aiohttp_client
):
    services = [*SERVICES, "api-gateway"]
    async with running_gateway(tmp_path, db_environ, aiohttp_client, services) as gateway:
        agent = await gateway.runtime.ask(
            RegisterAgent(tenant_id=gateway.acme.tenant_id, name="Bot", version="1.0.0")
        )
        made = await create(gateway.acme, "Bot's outputs", agentId=agent.id)
        assert made["agentId"] == agent.id
        listed = await pages(gateway.acme, WORKSPACES, "workspaces", agentId=agent.id)
        assert [w["id"] for w in listed] == [made["id"]]
        for caller, agent_id in ((gateway.globex, agent.id), (gateway.acme, "agt_nope")):
            error = await caller.error(CREATE, {"input": {"name": "x", "agentId": agent_id}})
            assert code(error) == "INVALID_INPUT"
            assert error["extensions"]["field"] == "agentId"
            assert error["message"] == "agentId: no agent with this id"


# ---------------------------------------------------------------------------- artifacts


async def test_an_artifact_round_trips_and_identical_content_is_stored_once(
    gateway: Gateway, tmp_path
):
    acme = gateway.acme
    ws, other = await create(acme, "one"), await create(acme, "two")
    content = os.urandom(200_000)
    first = await upload(acme, ws["id"], content, name="data.bin", kind="FILE")
    art = first
    assert first["deduplicated"] is False
    assert art["size"] == len(content)
    assert art["sha256"] == hashlib.sha256(content).hexdigest()
    assert (art["name"], art["kind"], art["workspaceId"]) == ("data.bin", "FILE", ws["id"])
    assert art["downloadPath"] == f"/artifacts/{art['id']}"
    assert art["createdBy"] == acme.member_id

    got = (await acme.data(CONTENT, {"id": art["id"]}))["artifact"]
    inline = base64.b64decode(got["contentBase64"])
    assert inline == content
    assert hashlib.sha256(inline).hexdigest() == got["sha256"] == art["sha256"]

    # the same bytes again, in another workspace: a new artifact, the content stored once
    again = await upload(acme, other["id"], content, name="copy.bin")
    assert again["deduplicated"] is True
    assert again["id"] != art["id"]
    assert again["sha256"] == art["sha256"]
    stored = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in stored] == [content]
    usage = (await acme.data(USAGE))["storageUsage"]
    assert usage["storageBytes"] == len(content)
    assert usage["artifactMaxBytes"] == 25 * 1024 * 1024
    assert usage["inlineMaxBytes"] == 1024 * 1024
    assert (await acme.data(GET_WORKSPACE, {"id": other["id"]}))["workspace"]["artifactCount"] == 1

    # deleting one keeps the content for the other
    await acme.data(DELETE_ARTIFACT, {"id": art["id"]})
    assert code(await acme.error(GET_ARTIFACT, {"id": art["id"]})) == "NOT_FOUND"
    got = (await acme.data(CONTENT, {"id": again["id"]}))["artifact"]
    assert base64.b64decode(got["contentBase64"]) == content


async def test_artifacts_are_listed_by_kind_page_by_page(gateway: Gateway):
    acme = gateway.acme
    ws = await create(acme)
    kinds = ["OUTPUT", "REPORT", "FILE", "REPORT", "REPORT", "OUTPUT"]
    made = [
        await upload(acme, ws["id"], f"{i}".encode(), kind=k, name=f"{i}.txt")
        for i, k in enumerate(kinds)
    ]
    everything = await pages(acme, ARTIFACTS, "artifacts", workspaceId=ws["id"])
    assert [a["id"] for a in everything] == [a["id"] for a in made]
    reports = await pages(acme, ARTIFACTS, "artifacts", workspaceId=ws["id"], kind="REPORT")
    assert [a["id"] for a in reports] == [made[1]["id"], made[3]["id"], made[4]["id"]]
    nested = await acme.data(
        "query ($id: ID!) { workspace(id: $id) { artifactCount artifacts(kind: FILE) { edges "
        "{ node { id } } } } }",
        {"id": ws["id"]},
    )
    assert nested["workspace"]["artifactCount"] == 6
    assert [e["node"]["id"] for e in nested["workspace"]["artifacts"]["edges"]] == [made[2]["id"]]
    error = await acme.error(ARTIFACTS, {"workspaceId": ws["id"], "first": 101})
    assert code(error) == "INVALID_INPUT"
    assert error["extensions"]["field"] == "first"


async def test_bad_uploads_are_refused_naming_the_field(gateway: Gateway):
    acme = gateway.acme
    ws = await create(acme)
    cases = [
        ({"name": ""}, "INVALID_INPUT", "name"),
        ({"name": "../etc/passwd"}, "INVALID_INPUT", "name"),
        ({"mediaType": "not a media type"}, "INVALID_INPUT", "mediaType"),
        ({"contentBase64": "not base64!"}, "INVALID_INPUT", "contentBase64"),
        ({"contentBase64": "aGVsbG8"}, "INVALID_INPUT", "contentBase64"),  # unpadded
        ({"workspaceId": "wsp_unknown"}, "NOT_FOUND", "workspaceId"),
    ]
    for fields, error_code, field in cases:
        error = await acme.error(UPLOAD, upload_input(ws["id"], b"x", **fields))
        assert (code(error), error["extensions"]["field"]) == (error_code, field), fields
    await acme.data(ARCHIVE, {"id": ws["id"]})
    error = await acme.error(UPLOAD, upload_input(ws["id"], b"x"))
    assert (code(error), error["extensions"]["field"]) == ("CONFLICT", "workspaceId")
    assert "archived" in error["message"]
    assert (await acme.data(USAGE))["storageUsage"]["storageBytes"] == 0


async def test_uploads_and_reads_respect_the_size_limits(tmp_path, db_environ, aiohttp_client):
    environ = {**db_environ, "SYNAPSEX_ARTIFACT_MAX_BYTES": "1536KiB"}
    async with running_gateway(tmp_path, environ, aiohttp_client, SERVICES) as gateway:
        acme = gateway.acme
        ws = await create(acme)
        max_bytes = 1536 * 1024

        # the largest artifact fits, though its body is past the general 1 MiB
        largest = os.urandom(max_bytes)
        art = await upload(acme, ws["id"], largest)
        assert art["size"] == max_bytes
        # ... but it is too large to inline: the error points to the download
        body = await acme.gql(CONTENT, {"id": art["id"]})
        (error,) = body["errors"]
        assert code(error) == "LIMIT_EXCEEDED"
        assert error["extensions"]["field"] == "contentBase64"
        assert error["extensions"]["downloadPath"] == f"/artifacts/{art['id']}"
        assert f"GET /artifacts/{art['id']}" in error["message"]

        # one byte more is refused by size, naming the field
        error = await refused(acme, UPLOAD, upload_input(ws["id"], largest[:-1] + b"xy"))
        assert code(error) == "LIMIT_EXCEEDED"
        assert error["extensions"]["field"] == "contentBase64"
        assert error["extensions"]["limit"] == "artifact_max_bytes"

        # the plan's storage counts distinct content: a copy is free, new content is not
        await gateway.runtime.ask(
            UpdateTenantPlan(
                tenant_id=acme.tenant_id, plan="pro", limits={"storage_bytes": max_bytes + 1000}
            )
        )
        assert (await upload(acme, ws["id"], largest))["deduplicated"] is True
        error = await acme.error(UPLOAD, upload_input(ws["id"], os.urandom(2000)))
        assert code(error) == "LIMIT_EXCEEDED"
        assert error["extensions"]["limit"] == "storage_bytes"
        await upload(acme, ws["id"], os.urandom(1000))  # what is left still fits
        usage = (await acme.data(USAGE))["storageUsage"]
        assert usage["storageBytes"] == max_bytes + 1000
        assert usage["storageLimitBytes"] == max_bytes + 1000


async def test_bodies_past_one_mebibyte_are_for_uploads_only(gateway: Gateway):
    acme = gateway.acme
    ws = await create(acme)

    async def post(body: dict, key: str | None, *, chunked: bool = False) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        raw = json.dumps(body).encode()
        chunk = 256 * 1024

        async def pieces():  # a body without Content-Length (chunked transfer encoding)
            for start in range(0, len(raw), chunk):
                yield raw[start : start + chunk]

        data = pieces() if chunked else io.BytesIO(raw)
        response = await gateway.client.post("/graphql", data=data, headers=headers)
        return response.status, await response.json()

    content = os.urandom(2 * 1024 * 1024)
    upload_body = {"query": UPLOAD, "variables": upload_input(ws["id"], content)}
    for chunked in (False, True):
        status, body = await post(upload_body, acme.key, chunked=chunked)
        assert status == 200, body
        assert body["data"]["uploadArtifact"]["size"] == len(content)

    # the same body without a valid key, or any other operation, is refused as too large
    for key in (None, "sx_not-a-key"):
        status, body = await post(upload_body, key)
        assert status == 413
        assert code(body["errors"][0]) == "INVALID_INPUT"
    padded = {"query": CREATE + " " * (1024 * 1024), "variables": {"input": {"name": "big"}}}
    status, body = await post(padded, acme.key)
    assert status == 413
    assert "only uploadArtifact" in body["errors"][0]["message"]
    mixed = {"query": MIXED, "variables": upload_input(ws["id"], content)}
    status, body = await post(mixed, acme.key)
    assert status == 413
    assert len(await pages(acme, WORKSPACES, "workspaces")) == 1


# ---------------------------------------------------------------------------- events


async def test_uploads_publish_artifact_created_and_billing_meters_new_content_once(
    tmp_path, db_environ, aiohttp_client
):
    services = [*SERVICES, "billing-service", "model-registry-service"]
    async with running_gateway(tmp_path, db_environ, aiohttp_client, services) as gateway:
        acme = gateway.acme
        ws = await create(acme)
        art = await upload(acme, ws["id"], b"a report", kind="REPORT")
        await upload(acme, ws["id"], b"a report", name="copy.txt")  # deduplicated
        await upload(acme, ws["id"], b"another")

        events = [e for e in await all_events(acme) if e["topic"].split(".")[0] in OURS]
        assert [e["topic"] for e in events] == [
            "workspace.created",
            "artifact.created",
            "usage.recorded",
            "artifact.created",
            "artifact.created",
            "usage.recorded",
        ]
        created = events[1]
        assert created["source"] == "workspace-service"
        assert created["key"] == ws["id"]
        assert created["payload"]["id"] == art["id"]
        assert created["payload"]["sha256"] == art["sha256"]
        assert created["payload"]["kind"] == "REPORT"
        assert events[2]["payload"]["idempotencyKey"] == art["id"]
        assert events[2]["payload"]["kind"] == "STORAGE_BYTES"

        now = datetime.now(UTC)

        async def storage_metered() -> int:
            summary = await gateway.runtime.ask(
                GetUsageSummary(
                    tenant_id=acme.tenant_id,
                    start=now - timedelta(hours=1),
                    end=now + timedelta(hours=1),
                )
            )
            return sum(line.quantity for line in summary.lines if line.kind == "STORAGE_BYTES")

        await wait_until(lambda: _equals(storage_metered, len(b"a report") + len(b"another")))


async def _equals(read, expected) -> bool:
    return await read() == expected


# ---------------------------------------------------------------------------- isolation


async def test_another_tenants_workspaces_and_artifacts_are_not_found(gateway: Gateway):
    acme, globex = gateway.acme, gateway.globex
    ws = await create(acme, "Acme's")
    art = await upload(acme, ws["id"], b"acme only")
    for query, variables in [
        (GET_WORKSPACE, {"id": ws["id"]}),
        (GET_ARTIFACT, {"id": art["id"]}),
        (CONTENT, {"id": art["id"]}),
        (ARTIFACTS, {"workspaceId": ws["id"]}),
        (ARCHIVE, {"id": ws["id"]}),
        (DELETE, {"id": ws["id"]}),
        (DELETE_ARTIFACT, {"id": art["id"]}),
        (UPLOAD, upload_input(ws["id"], b"intruder")),
    ]:
        error = await globex.error(query, variables)
        assert code(error) == "NOT_FOUND", (query, error)
    assert await pages(globex, WORKSPACES, "workspaces") == []
    # the same name is free in another tenant, and nothing of Acme's changed
    await create(globex, "Acme's")
    assert (await acme.data(GET_WORKSPACE, {"id": ws["id"]}))["workspace"]["status"] == "ACTIVE"
    assert (await globex.data(USAGE))["storageUsage"]["storageBytes"] == 0
