"""workspace-service on both engines: workspaces (names, agents, archive, delete, the plan's
limit also with two runtimes racing on one database), artifacts stored once per tenant per
SHA-256 (files on disk, ref counts, concurrent identical uploads), chunked reads, the
per-artifact and storage limits (also racing), deletion freeing storage and files, the
configurable root, events, and tenant isolation."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import pytest

from synapsex.contracts.agents import ArchiveAgent, RegisterAgent
from synapsex.contracts.errors import (
    Conflict,
    InvalidInput,
    LimitExceeded,
    NotFound,
)
from synapsex.contracts.events import ListEvents
from synapsex.contracts.tenant import CreateTenant
from synapsex.contracts.workspaces import (
    CHUNK_MAX_BYTES,
    ArchiveWorkspace,
    CreateWorkspace,
    DeleteArtifact,
    DeleteWorkspace,
    GetArtifact,
    GetStorageUsage,
    GetWorkspace,
    ListArtifacts,
    ListWorkspaces,
    ReadArtifactChunk,
    UploadArtifact,
    UploadedArtifact,
    WorkspaceView,
)
from synapsex.runtime import Runtime
from synapsex.runtime.testing import raw_sql, wait_until

SERVICE = "workspace-service"
SERVICES = ["tenant-service", SERVICE]


def embedded(tmp_path, environ, *, services=SERVICES) -> Runtime:
    return Runtime.embedded(data_dir=tmp_path, services=services, environ=environ)


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as runtime:
        yield runtime


async def tenant(rt: Runtime, name: str = "Acme", **limits: int) -> str:
    return (await rt.ask(CreateTenant(name=name, plan="pro", limits=limits or None))).id


async def workspace(rt: Runtime, tenant_id: str, name: str = "Main", **kw) -> WorkspaceView:
    return await rt.ask(CreateWorkspace(tenant_id=tenant_id, name=name, **kw))


async def upload(
    rt: Runtime, tenant_id: str, workspace_id: str, content: bytes, name: str = "out.txt", **kw
) -> UploadedArtifact:
    fields = {"kind": "OUTPUT", "media_type": "text/plain", **kw}
    return await rt.ask(
        UploadArtifact(
            tenant_id=tenant_id, workspace_id=workspace_id, name=name, content=content, **fields
        )
    )


async def read_all(rt: Runtime, tenant_id: str, artifact_id: str, length: int) -> bytes:
    parts, offset = [], 0
    while True:
        chunk = await rt.ask(
            ReadArtifactChunk(tenant_id=tenant_id, id=artifact_id, offset=offset, length=length)
        )
        parts.append(chunk.data)
        offset += len(chunk.data)
        if chunk.eof:
            return b"".join(parts)


def stored_files(root: Path) -> list[Path]:
    """Content files under the artifact root (not the staging folder)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp")


async def blob_rows(rt: Runtime) -> list[dict]:
    async with raw_sql(rt, SERVICE) as sql:
        return await sql("SELECT tenant_id, sha256, size, ref_count FROM artifact_blobs")


# ---------------------------------------------------------------------------- workspaces


async def test_a_workspace_is_created_read_listed_archived_and_deleted(rt):
    acme = await tenant(rt)
    made = [await workspace(rt, acme, f"ws {i}", created_by="mem_1") for i in range(5)]
    assert made[0].status == "ACTIVE"
    assert made[0].artifact_count == 0
    assert made[0].created_by == "mem_1"
    assert made[0].archived_at is None
    assert await rt.ask(GetWorkspace(tenant_id=acme, id=made[1].id)) == made[1]

    listed, after = [], None
    while True:
        page = await rt.ask(ListWorkspaces(tenant_id=acme, first=2, after=after))
        listed += page.items
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert [w.id for w in listed] == [w.id for w in made]

    archived = await rt.ask(ArchiveWorkspace(tenant_id=acme, id=made[0].id))
    assert archived.status == "ARCHIVED"
    assert archived.archived_at is not None
    assert await rt.ask(ArchiveWorkspace(tenant_id=acme, id=made[0].id)) == archived  # no-op
    page = await rt.ask(ListWorkspaces(tenant_id=acme, status="ARCHIVED"))
    assert [w.id for w in page.items] == [made[0].id]

    deleted = await rt.ask(DeleteWorkspace(tenant_id=acme, id=made[0].id))
    assert deleted.id == made[0].id
    with pytest.raises(NotFound):
        await rt.ask(GetWorkspace(tenant_id=acme, id=made[0].id))
    assert (await rt.ask(GetStorageUsage(tenant_id=acme))).workspaces == 4


async def test_names_are_unique_per_tenant_case_insensitively(rt):
    acme, globex = await tenant(rt), await tenant(rt, "Globex")
    first = await workspace(rt, acme, "Research")
    with pytest.raises(Conflict) as err:
        await workspace(rt, acme, "RESEARCH")
    assert err.value.details["field"] == "name"
    await workspace(rt, globex, "Research")  # another tenant may
    await rt.ask(DeleteWorkspace(tenant_id=acme, id=first.id))
    await workspace(rt, acme, "research")  # a deleted workspace frees its name
    # a refused name takes no slot of the plan
    assert (await rt.ask(GetStorageUsage(tenant_id=acme))).workspaces == 1


async def test_the_plan_limit_counts_workspaces_until_deleted(rt):
    acme = await tenant(rt, workspaces=2)
    a = await workspace(rt, acme, "a")
    await workspace(rt, acme, "b")
    await rt.ask(ArchiveWorkspace(tenant_id=acme, id=a.id))  # archived still counts
    with pytest.raises(LimitExceeded) as err:
        await workspace(rt, acme, "c")
    assert err.value.details["limit"] == "workspaces"
    await rt.ask(DeleteWorkspace(tenant_id=acme, id=a.id))
    await workspace(rt, acme, "c")


async def test_concurrent_creations_from_two_runtimes_admit_exactly_the_limit(tmp_path, db_environ):
    # two runtimes on one database stand for two `synapsex serve` processes
    async with embedded(tmp_path, db_environ) as a, embedded(tmp_path, db_environ) as b:
        acme = await tenant(a, workspaces=5)
        results = await asyncio.gather(
            *(workspace(rt, acme, f"n{i}") for i, rt in enumerate([a, b] * 8)),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, LimitExceeded)]
        assert [r for r in results if isinstance(r, BaseException)] == refused
        assert len(results) - len(refused) == 5
        page = await b.ask(ListWorkspaces(tenant_id=acme))
        assert len(page.items) == 5
        assert (await a.ask(GetStorageUsage(tenant_id=acme))).workspaces == 5


async def test_an_agent_must_be_an_active_agent_of_the_tenant(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ, services=[*SERVICES, "api-gateway"]) as rt:
        acme, globex = await tenant(rt), await tenant(rt, "Globex")
        agent = await rt.ask(RegisterAgent(tenant_id=acme, name="Bot", version="1.0.0"))
        made = await workspace(rt, acme, "Bot's", agent_id=agent.id)
        assert made.agent_id == agent.id
        page = await rt.ask(ListWorkspaces(tenant_id=acme, agent_id=agent.id))
        assert [w.id for w in page.items] == [made.id]

        for tenant_id, agent_id in ((globex, agent.id), (acme, "agt_unknown")):
            with pytest.raises(InvalidInput) as err:
                await workspace(rt, tenant_id, "x", agent_id=agent_id)
            assert err.value.field == "agentId"
            assert err.value.problem == "no agent with this id"
        await rt.ask(ArchiveAgent(tenant_id=acme, id=agent.id))
        with pytest.raises(InvalidInput, match="archived"):
            await workspace(rt, acme, "y", agent_id=agent.id)


# ---------------------------------------------------------------------------- artifacts


async def test_content_is_stored_once_per_tenant_and_read_back_in_chunks(tmp_path, rt):
    acme, globex = await tenant(rt), await tenant(rt, "Globex")
    ws1, ws2 = await workspace(rt, acme, "one"), await workspace(rt, acme, "two")
    content = os.urandom(CHUNK_MAX_BYTES + 12_345)
    first = await upload(rt, acme, ws1.id, content, "a.bin", kind="FILE")
    again = await upload(rt, acme, ws2.id, content, "b.bin", kind="REPORT")
    assert (first.deduplicated, again.deduplicated) == (False, True)
    assert first.id != again.id
    assert first.sha256 == again.sha256
    assert first.sha256 == hashlib.sha256(content).hexdigest()
    assert first.size == len(content)
    assert again.workspace_id == ws2.id
    fetched = await rt.ask(GetArtifact(tenant_id=acme, id=again.id))
    assert (fetched.name, fetched.kind, fetched.size) == ("b.bin", "REPORT", len(content))

    # one file, one blob row referred to twice; the storage counts it once
    root = tmp_path / "artifacts"
    (path,) = stored_files(root)
    assert path.read_bytes() == content
    assert path.name.startswith(first.sha256)
    assert path.parent.parent.name == acme
    assert await blob_rows(rt) == [
        {"tenant_id": acme, "sha256": first.sha256, "size": len(content), "ref_count": 2}
    ]
    assert (await rt.ask(GetStorageUsage(tenant_id=acme))).storage_bytes == len(content)

    # another tenant's identical content is its own
    theirs = await upload(rt, globex, (await workspace(rt, globex)).id, content)
    assert not theirs.deduplicated
    assert len(stored_files(root)) == 2

    # chunks: any length up to 1 MiB, from any offset
    assert await read_all(rt, acme, again.id, CHUNK_MAX_BYTES) == content
    assert await read_all(rt, acme, again.id, 100_000) == content
    tail = await rt.ask(ReadArtifactChunk(tenant_id=acme, id=first.id, offset=len(content) - 5))
    assert (tail.data, tail.eof, tail.size) == (content[-5:], True, len(content))
    past = await rt.ask(ReadArtifactChunk(tenant_id=acme, id=first.id, offset=len(content) + 9))
    assert (past.data, past.eof) == (b"", True)
    with pytest.raises(InvalidInput) as err:
        ReadArtifactChunk(tenant_id=acme, id=first.id, length=CHUNK_MAX_BYTES + 1)
    assert err.value.field == "length"


async def test_an_empty_artifact_is_an_artifact(rt):
    acme = await tenant(rt)
    ws = await workspace(rt, acme)
    empty = await upload(rt, acme, ws.id, b"")
    assert empty.size == 0
    assert empty.sha256 == hashlib.sha256(b"").hexdigest()
    chunk = await rt.ask(ReadArtifactChunk(tenant_id=acme, id=empty.id))
    assert (chunk.data, chunk.eof) == (b"", True)


async def test_artifacts_are_listed_by_workspace_and_kind_page_by_page(rt):
    acme = await tenant(rt)
    ws, other = await workspace(rt, acme), await workspace(rt, acme, "other")
    kinds = ["OUTPUT", "FILE", "REPORT", "OUTPUT", "OUTPUT"]
    made = [await upload(rt, acme, ws.id, f"{i}".encode(), kind=k) for i, k in enumerate(kinds)]
    await upload(rt, acme, other.id, b"elsewhere")

    listed, after = [], None
    while True:
        page = await rt.ask(
            ListArtifacts(tenant_id=acme, workspace_id=ws.id, kind="OUTPUT", first=2, after=after)
        )
        listed += page.items
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert [a.id for a in listed] == [made[0].id, made[3].id, made[4].id]
    page = await rt.ask(ListArtifacts(tenant_id=acme, workspace_id=ws.id))
    assert len(page.items) == 5
    assert (await rt.ask(GetWorkspace(tenant_id=acme, id=ws.id))).artifact_count == 5


async def test_concurrent_identical_uploads_store_the_content_once(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as a, embedded(tmp_path, db_environ) as b:
        acme = await tenant(a)
        ws = await workspace(a, acme)
        content = os.urandom(300_000)
        results = await asyncio.gather(
            *(upload(rt, acme, ws.id, content, f"{i}.bin") for i, rt in enumerate([a, b] * 5))
        )
        assert sum(not r.deduplicated for r in results) == 1
        assert len({r.id for r in results}) == 10
        (path,) = stored_files(tmp_path / "artifacts")
        assert path.read_bytes() == content
        assert [r["ref_count"] for r in await blob_rows(a)] == [10]
        assert (await b.ask(GetStorageUsage(tenant_id=acme))).storage_bytes == len(content)
        assert not list((tmp_path / "artifacts" / "tmp").iterdir())  # staged files cleaned


async def test_an_archived_workspace_is_read_only(rt):
    acme = await tenant(rt)
    ws = await workspace(rt, acme)
    kept = await upload(rt, acme, ws.id, b"kept")
    await rt.ask(ArchiveWorkspace(tenant_id=acme, id=ws.id))
    with pytest.raises(Conflict) as err:
        await upload(rt, acme, ws.id, b"more")
    assert err.value.details["field"] == "workspaceId"
    with pytest.raises(Conflict) as err:
        await rt.ask(DeleteArtifact(tenant_id=acme, id=kept.id))
    assert err.value.details["field"] == "id"
    assert await read_all(rt, acme, kept.id, 10) == b"kept"


async def test_deleting_releases_content_no_artifact_refers_to(tmp_path, rt):
    acme = await tenant(rt)
    ws, other = await workspace(rt, acme), await workspace(rt, acme, "other")
    shared, own = b"s" * 1000, b"o" * 300
    a = await upload(rt, acme, ws.id, shared)
    await upload(rt, acme, other.id, shared)
    await upload(rt, acme, ws.id, own)
    b = await upload(rt, acme, ws.id, own, "copy.txt")
    root = tmp_path / "artifacts"
    assert len(stored_files(root)) == 2

    deleted = await rt.ask(DeleteArtifact(tenant_id=acme, id=b.id))
    assert deleted.id == b.id
    with pytest.raises(NotFound):
        await rt.ask(GetArtifact(tenant_id=acme, id=b.id))
    assert (await rt.ask(GetStorageUsage(tenant_id=acme))).storage_bytes == 1300

    gone = await rt.ask(DeleteWorkspace(tenant_id=acme, id=ws.id))
    assert gone.artifact_count == 2
    with pytest.raises(NotFound):
        await rt.ask(ReadArtifactChunk(tenant_id=acme, id=a.id))
    # the shared content stays for the other workspace; the workspace's own content is gone
    (path,) = stored_files(root)
    assert path.read_bytes() == shared
    assert (await rt.ask(GetStorageUsage(tenant_id=acme))).storage_bytes == 1000
    assert [r["ref_count"] for r in await blob_rows(rt)] == [1]


async def test_the_per_artifact_limit_is_checked_on_the_decoded_size(tmp_path, db_environ):
    environ = {**db_environ, "SYNAPSEX_ARTIFACT_MAX_BYTES": "1KiB"}
    async with embedded(tmp_path, environ) as rt:
        acme = await tenant(rt)
        ws = await workspace(rt, acme)
        assert (await upload(rt, acme, ws.id, b"x" * 1024)).size == 1024
        with pytest.raises(LimitExceeded) as err:
            await upload(rt, acme, ws.id, b"x" * 1025)
        assert err.value.details["field"] == "content"
        assert err.value.details["limit"] == "artifact_max_bytes"
        assert (await rt.ask(GetStorageUsage(tenant_id=acme))).artifact_max_bytes == 1024


async def test_the_storage_limit_counts_distinct_content_and_holds_under_races(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as a, embedded(tmp_path, db_environ) as b:
        acme = await tenant(a, storage_bytes=3500)
        ws = await workspace(a, acme)
        results = await asyncio.gather(
            *(
                upload(rt, acme, ws.id, bytes([i]) * 1000, f"{i}.bin")
                for i, rt in enumerate([a, b] * 5)
            ),
            return_exceptions=True,
        )
        stored = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, LimitExceeded)]
        assert len(stored) == 3
        assert len(refused) == 7
        assert refused[0].details["limit"] == "storage_bytes"
        assert (await a.ask(GetStorageUsage(tenant_id=acme))).storage_bytes == 3000
        assert len(stored_files(tmp_path / "artifacts")) == 3
        # content the tenant holds takes no more room
        held = int(stored[0].name.split(".")[0])
        dup = await upload(b, acme, ws.id, bytes([held]) * 1000)
        assert dup.deduplicated
        # deleting frees room
        await a.ask(DeleteArtifact(tenant_id=acme, id=stored[1].id))
        await upload(a, acme, ws.id, b"n" * 1000)


async def test_another_tenants_workspaces_and_artifacts_are_not_found(rt):
    acme, globex = await tenant(rt), await tenant(rt, "Globex")
    ws = await workspace(rt, acme)
    art = await upload(rt, acme, ws.id, b"secret")
    attempts = [
        GetWorkspace(tenant_id=globex, id=ws.id),
        ArchiveWorkspace(tenant_id=globex, id=ws.id),
        DeleteWorkspace(tenant_id=globex, id=ws.id),
        ListArtifacts(tenant_id=globex, workspace_id=ws.id),
        GetArtifact(tenant_id=globex, id=art.id),
        ReadArtifactChunk(tenant_id=globex, id=art.id),
        DeleteArtifact(tenant_id=globex, id=art.id),
        UploadArtifact(tenant_id=globex, workspace_id=ws.id, name="x", kind="FILE", content=b"x"),
    ]
    for message in attempts:
        with pytest.raises(NotFound):
            await rt.ask(message)
    assert (await rt.ask(ListWorkspaces(tenant_id=globex))).items == ()
    assert (await rt.ask(GetArtifact(tenant_id=acme, id=art.id))).id == art.id


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": " padded"}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": ".."}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"kind": "IMAGE"}, "kind"),
        ({"media_type": "text"}, "mediaType"),
        ({"media_type": "text/plain; charset"}, "mediaType"),
        ({"workspace_id": ""}, "workspaceId"),
        ({"content": "not bytes"}, "content"),
    ],
)
def test_bad_uploads_name_their_field(fields, field):
    base = {"tenant_id": "t", "workspace_id": "w", "name": "n", "kind": "FILE", "content": b""}
    with pytest.raises(InvalidInput) as err:
        UploadArtifact(**{**base, **fields})
    assert err.value.field == field


def test_good_media_types_and_names_pass():
    for media_type in ("text/plain", "text/csv; charset=utf-8", 'application/x-a+b; q="1 2"'):
        UploadArtifact(
            tenant_id="t", workspace_id="w", name="r.csv", kind="REPORT",
            media_type=media_type, content=b"",
        )  # fmt: skip
    for name in ("résumé (final).pdf", "a b", ".env"):
        UploadArtifact(tenant_id="t", workspace_id="w", name=name, kind="FILE", content=b"")
    with pytest.raises(InvalidInput) as err:
        CreateWorkspace(tenant_id="t", name="x", agent_id="")
    assert err.value.field == "agentId"


# ---------------------------------------------------------------------------- configuration


async def test_the_artifact_root_is_configurable_and_stale_staged_files_are_removed(
    tmp_path, db_environ
):
    root = tmp_path / "elsewhere"
    stale, fresh = root / "tmp" / "old.part", root / "tmp" / "new.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"crash leftover")
    fresh.write_bytes(b"an upload in flight elsewhere")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    environ = {**db_environ, "SYNAPSEX_ARTIFACT_ROOT": str(root)}
    async with embedded(tmp_path / "data", environ) as rt:
        assert not stale.exists()
        assert fresh.exists()
        acme = await tenant(rt)
        art = await upload(rt, acme, (await workspace(rt, acme)).id, b"here")
        (path,) = stored_files(root)
        assert path.read_bytes() == b"here"
        assert art.sha256 in path.name
        assert not (tmp_path / "data" / "artifacts").exists()


# ---------------------------------------------------------------------------- events


async def test_changes_publish_events_and_new_content_is_metered_once(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ, services=[*SERVICES, "event-bus-service"]) as rt:
        acme = await tenant(rt)
        ws = await workspace(rt, acme, created_by="mem_1")
        art = await upload(rt, acme, ws.id, b"report", "r.txt", created_by="mem_1")
        await upload(rt, acme, ws.id, b"report", "copy.txt")
        await rt.ask(ArchiveWorkspace(tenant_id=acme, id=ws.id))
        await rt.ask(DeleteWorkspace(tenant_id=acme, id=ws.id))

        async def events() -> list:
            page = await rt.ask(ListEvents(tenant_id=acme, first=100))
            return [e for e in page.items if not e.topic.startswith("tenant.")]

        async def all_six() -> list:
            items = await events()
            return items if len(items) >= 6 else []

        items = await wait_until(all_six)
        # the identical second upload is an artifact.created, and no usage
        assert [e.topic for e in items] == [
            "workspace.created",
            "artifact.created",
            "usage.recorded",
            "artifact.created",
            "workspace.archived",
            "workspace.deleted",
        ]
        usage = items[2]
        assert usage.payload == {
            "kind": "STORAGE_BYTES",
            "quantity": 6,
            "at": art.created_at.isoformat(),
            "idempotencyKey": art.id,
        }
        created = next(e for e in items if e.topic == "artifact.created")
        assert created.key == ws.id
        assert created.source == SERVICE
        assert created.payload["sha256"] == art.sha256
        assert created.payload["downloadPath"] == f"/artifacts/{art.id}"
        assert "content" not in created.payload
        deleted = next(e for e in items if e.topic == "workspace.deleted")
        assert deleted.payload["artifactCount"] == 2
