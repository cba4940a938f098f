"""``GET /artifacts/{id}`` on both engines: bytes and SHA-256 identical to the upload, the
headers (media type, length, ETag, Content-Disposition), 304 and HEAD, a 20 MiB download
streamed without the file in memory (measured with tracemalloc), and the JSON errors: 401
without a valid key, 403 for a VM token, 404 for an unknown, deleted or another tenant's
artifact alike."""

from __future__ import annotations

import base64
import gc
import hashlib
import io
import json
import os
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from synapsex.contracts.vms import VM_TOKEN_PREFIX
from synapsex.contracts.workspaces import ArtifactChunk, UploadArtifact

from .conftest import Caller, Gateway, running_gateway

SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "workspace-service",
]
MIB = 1024 * 1024
CREATE = "mutation ($name: String!) { createWorkspace(input: {name: $name}) { id } }"
UPLOAD = """mutation ($input: UploadArtifactInput!) {
  uploadArtifact(input: $input) { id size sha256 downloadPath } }"""
DELETE = "mutation ($id: ID!) { deleteArtifact(input: {id: $id}) { id } }"


@pytest.fixture
async def gateway(tmp_path, db_environ, aiohttp_client) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, db_environ, aiohttp_client, SERVICES) as gateway:
        yield gateway


async def upload(caller: Caller, content: bytes, name: str, media_type: str) -> dict:
    workspace = (await caller.data(CREATE, {"name": f"for {name}"}))["createWorkspace"]
    variables = {
        "input": {
            "workspaceId": workspace["id"],
            "name": name,
            "kind": "FILE",
            "mediaType": media_type,
            "contentBase64": base64.b64encode(content).decode(),
        }
    }
    # a file object: aiohttp warns about large bodies given as bytes
    body = io.BytesIO(json.dumps({"query": UPLOAD, "variables": variables}).encode())
    headers = {"Authorization": f"Bearer {caller.key}", "Content-Type": "application/json"}
    response = await caller.client.post("/graphql", data=body, headers=headers)
    payload = await response.json()
    assert "errors" not in payload, payload
    return payload["data"]["uploadArtifact"]


def bearer(caller: Caller) -> dict[str, str]:
    return {"Authorization": f"Bearer {caller.key}"}


async def test_a_download_has_the_uploaded_bytes_and_the_right_headers(gateway: Gateway):
    content = os.urandom(3 * MIB + 17)  # more than one chunk, not a multiple of it
    name = 'Q3 "résumé" report.csv'
    art = await upload(gateway.acme, content, name, "text/csv; charset=utf-8")
    response = await gateway.client.get(art["downloadPath"], headers=bearer(gateway.acme))
    assert response.status == 200
    body = await response.read()
    assert body == content
    assert hashlib.sha256(body).hexdigest() == art["sha256"]
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Length"] == str(len(content))
    assert response.headers["ETag"] == f'"{art["sha256"]}"'
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="Q3 _r_sum__ report.csv"; '
        "filename*=UTF-8''Q3%20%22r%C3%A9sum%C3%A9%22%20report.csv"
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-Id"].startswith("req_")

    # the ETag answers a conditional request without the body; HEAD has only the headers
    again = await gateway.client.get(
        art["downloadPath"],
        headers={**bearer(gateway.acme), "If-None-Match": response.headers["ETag"]},
    )
    assert again.status == 304
    assert await again.read() == b""
    head = await gateway.client.head(art["downloadPath"], headers=bearer(gateway.acme))
    assert head.status == 200
    assert head.headers["Content-Length"] == str(len(content))
    assert await head.read() == b""


async def test_a_twenty_mib_download_streams_without_the_file_in_memory(gateway: Gateway):
    content = os.urandom(20 * MIB)
    expected = hashlib.sha256(content).hexdigest()
    art = await upload(gateway.acme, content, "big.bin", "application/octet-stream")
    assert art["size"] == 20 * MIB
    assert art["sha256"] == expected
    del content
    gc.collect()
    # nothing keeps the upload's message (its 20 MiB) once it was answered
    assert not [o for o in gc.get_objects() if isinstance(o, UploadArtifact)]

    digest, received = hashlib.sha256(), 0
    tracemalloc.start()
    try:
        response = await gateway.client.get(art["downloadPath"], headers=bearer(gateway.acme))
        assert response.status == 200
        assert response.headers["Content-Length"] == str(20 * MIB)
        async for piece in response.content.iter_chunked(64 * 1024):
            digest.update(piece)
            received += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == 20 * MIB
    assert digest.hexdigest() == expected
    # server and client together held a few chunks at most, never the 20 MiB file
    assert peak < 6 * MIB, f"peak {peak / MIB:.1f} MiB"
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, ArtifactChunk)]


async def test_without_a_valid_key_a_download_is_401_and_with_a_vm_token_403(gateway: Gateway):
    art = await upload(gateway.acme, b"private", "p.txt", "text/plain")
    for headers in ({}, {"Authorization": "Bearer sx_wrong"}, {"Authorization": "Basic eDp5"}):
        response = await gateway.client.get(art["downloadPath"], headers=headers)
        assert response.status == 401
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        body = await response.json()
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # a VM token only heartbeats and asks for versions
    response = await gateway.client.get(
        art["downloadPath"], headers={"Authorization": f"Bearer {VM_TOKEN_PREFIX}whatever"}
    )
    assert response.status == 403
    assert (await response.json())["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_another_tenants_unknown_and_deleted_artifacts_are_404_alike(gateway: Gateway):
    art = await upload(gateway.acme, b"acme only", "a.txt", "text/plain")
    answers = []
    for path, caller in (
        (art["downloadPath"], gateway.globex),  # another tenant's
        ("/artifacts/art_01M0000000000000000000000", gateway.acme),  # unknown
        ("/artifacts/" + "x" * 200, gateway.acme),  # not even an id
    ):
        response = await gateway.client.get(path, headers=bearer(caller))
        assert response.status == 404
        answers.append(await response.json())
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    await gateway.acme.data(DELETE, {"id": art["id"]})
    response = await gateway.client.get(art["downloadPath"], headers=bearer(gateway.acme))
    assert response.status == 404
    assert await response.json() == answers[0]
