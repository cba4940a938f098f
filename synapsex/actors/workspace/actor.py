"""workspace-service handlers: workspaces, artifacts, content stored once per tenant.

Concurrency (several ``synapsex serve`` processes may share one PostgreSQL database, so every
rule is decided in the database, never in this actor's memory; writes run side by side):

* Plan limits are conditional updates of the tenant's ``workspace_quotas`` row in the change's
  transaction: ``workspaces = workspaces + 1 WHERE workspaces < limit`` on creation, and
  ``storage_bytes = storage_bytes + size WHERE storage_bytes <= limit - size`` when an upload
  stores content the tenant does not hold yet. Two writers at the limit cannot both pass.
* Locks are taken in one order, so two changes never wait on each other in a cycle: the
  workspace row, then blob rows (by id), then the quota row. On PostgreSQL ``SELECT … FOR
  UPDATE``; on SQLite (one writer per database) a no-op ``UPDATE`` of the workspace first takes
  the database's write lock at once, as the audit-service does.
* Upload: the content is hashed first. When the tenant already holds it, the artifact row and
  ``ref_count + 1`` are the whole change (no file is written). Otherwise the content is
  written to a staged file and fsynced outside the transaction; inside it, the blob row is
  inserted (a concurrent insert of the same content loses on the unique ``(tenant_id,
  sha256)`` and the upload starts again, finding the winner's blob), the storage is charged,
  and the staged file is renamed into place before the commit. If anything fails after the
  rename, the file is removed: its name carries the new blob's id, which nobody else knows.
* Deletion lowers ``ref_count``; a blob that reaches 0 loses its row and its bytes in the
  quota, and its file is removed after the commit (a crash between the two leaves a file no
  row names, which is harmless; see ``docs/workspaces.md``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from synapsex.actors.domain_events import Outbox
from synapsex.contracts.agents import GetAgent
from synapsex.contracts.billing import USAGE_TOPIC
from synapsex.contracts.common import Page, as_utc
from synapsex.contracts.errors import Conflict, InvalidInput, LimitExceeded, NotFound
from synapsex.contracts.tenant import GetTenant, Limits
from synapsex.contracts.workspaces import (
    ARTIFACT_CREATED,
    ARTIFACT_DELETED,
    SERVICE,
    WORKSPACE_ARCHIVED,
    WORKSPACE_CREATED,
    WORKSPACE_DELETED,
    ArchiveWorkspace,
    ArtifactChunk,
    ArtifactView,
    CreateWorkspace,
    DeleteArtifact,
    DeleteWorkspace,
    GetArtifact,
    GetStorageUsage,
    GetWorkspace,
    ListArtifacts,
    ListWorkspaces,
    ReadArtifactChunk,
    StorageUsage,
    UploadArtifact,
    UploadedArtifact,
    WorkspaceView,
    artifact_event,
    workspace_event,
)
from synapsex.runtime import Actor, handler, new_id
from synapsex.runtime.orm import db_errors, paginate

from .models import Artifact, ArtifactBlob, Workspace, WorkspaceOutbox, WorkspaceQuota
from .store import BlobStore

log = structlog.get_logger("synapsex.workspace")

ACTIVE = "ACTIVE"
ARCHIVED = "ARCHIVED"
#: uploads that lose the race to store the same new content start again this many times
MAX_UPLOAD_ATTEMPTS = 3


def name_key(name: str) -> str:
    """What makes two workspace names one: NFKC-normalised and case-folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def workspace_view(row: Workspace) -> WorkspaceView:
    return WorkspaceView(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        agent_id=row.agent_id,
        status=row.status,
        artifact_count=row.artifact_count,
        created_by=row.created_by,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        archived_at=None if row.archived_at is None else as_utc(row.archived_at),
    )


def artifact_view(row: Artifact) -> ArtifactView:
    return ArtifactView(
        id=row.id,
        tenant_id=row.tenant_id,
        workspace_id=row.workspace_id,
        name=row.name,
        kind=row.kind,
        media_type=row.media_type,
        size=row.size,
        sha256=row.sha256,
        created_by=row.created_by,
        created_at=as_utc(row.created_at),
    )


def _is_sqlite(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "sqlite"


class _NeedFile(Exception):
    """The content is new to the tenant (or its blob went meanwhile): stage the file first."""


@dataclass(slots=True)
class _Released:
    """What releasing artifacts freed: bytes off the quota, files to remove after commit."""

    freed_bytes: int = 0
    files: list[Path] = field(default_factory=list)


class WorkspaceActor(
    Actor,
    service=SERVICE,
    models="synapsex.actors.workspace.models",
    concurrency=8,
):
    """Owns ``workspaces``, ``artifacts``, ``artifact_blobs``, ``workspace_quotas`` and the
    content files under ``SYNAPSEX_ARTIFACT_ROOT``."""

    async def on_start(self) -> None:
        settings = self.actor_runtime.settings
        self._max_bytes = settings.artifact_max_bytes
        self._store = BlobStore(settings.artifact_dir)
        await asyncio.to_thread(self._store.prepare)
        self._outbox = Outbox(self, WorkspaceOutbox)
        self._outbox.start()

    # ------------------------------------------------------------------ lookups

    async def _limits(self, tenant_id: str) -> Limits:
        return (await self.actor_runtime.ask(GetTenant(id=tenant_id))).limits

    @staticmethod
    async def _workspace(tenant_id: str, workspace_id: str, field: str = "id") -> Workspace:
        row = await Workspace.filter(id=workspace_id, tenant_id=tenant_id).first()
        if row is None:
            raise NotFound("workspace not found", field=field, id=workspace_id)
        return row

    @staticmethod
    async def _lock_workspace(
        conn: BaseDBAsyncClient, tenant_id: str, workspace_id: str, field: str = "id"
    ) -> Workspace:
        query = Workspace.filter(id=workspace_id, tenant_id=tenant_id).using_db(conn)
        if _is_sqlite(conn):
            # a write first takes SQLite's write lock now, not at the first real write
            await query.update(status=F("status"))
        row = await query.select_for_update().first()
        if row is None:
            raise NotFound("workspace not found", field=field, id=workspace_id)
        return row

    @staticmethod
    async def _artifact(tenant_id: str, artifact_id: str) -> Artifact:
        row = await Artifact.filter(id=artifact_id, tenant_id=tenant_id).first()
        if row is None:
            raise NotFound("artifact not found", field="id", id=artifact_id)
        return row

    @staticmethod
    async def _ensure_quota(tenant_id: str) -> None:
        """The tenant's counter row, created race-free (a second insert is ignored)."""
        await WorkspaceQuota.bulk_create(
            [WorkspaceQuota(tenant_id=tenant_id, workspaces=0, storage_bytes=0)],
            ignore_conflicts=True,
        )

    # ------------------------------------------------------------------ workspaces

    @handler(concurrent=True)  # the quota's conditional update and the unique name decide
    async def create_workspace(self, msg: CreateWorkspace) -> WorkspaceView:
        if msg.agent_id is not None:
            await self._check_agent(msg.tenant_id, msg.agent_id)
        limit = (await self._limits(msg.tenant_id)).workspaces
        await self._ensure_quota(msg.tenant_id)
        now = datetime.now(UTC)
        with db_errors(conflict=f"a workspace named {msg.name!r} already exists", field="name"):
            async with in_transaction() as conn:
                claimed = (
                    await WorkspaceQuota.filter(tenant_id=msg.tenant_id, workspaces__lt=limit)
                    .using_db(conn)
                    .update(workspaces=F("workspaces") + 1)
                )
                if not claimed:
                    raise LimitExceeded(
                        f"the plan allows {limit} workspaces; delete one to make room "
                        "(archived workspaces count too)",
                        limit="workspaces",
                        allowed=limit,
                    )
                row = await Workspace.create(
                    id=new_id("wsp"),
                    tenant_id=msg.tenant_id,
                    name=msg.name,
                    name_key=name_key(msg.name),
                    agent_id=msg.agent_id,
                    status=ACTIVE,
                    artifact_count=0,
                    created_by=msg.created_by,
                    created_at=now,
                    updated_at=now,
                    using_db=conn,
                )
                view = workspace_view(row)
                await self._outbox.stage(
                    conn, msg.tenant_id, WORKSPACE_CREATED, workspace_event(view), key=row.id
                )
        await self._outbox.flush()
        return view

    async def _check_agent(self, tenant_id: str, agent_id: str) -> None:
        try:
            agent = await self.actor_runtime.ask(GetAgent(tenant_id=tenant_id, id=agent_id))
        except NotFound:
            raise InvalidInput("agentId", "no agent with this id") from None
        if agent.status != ACTIVE:
            raise InvalidInput("agentId", "the agent is archived")

    @handler(read_only=True)
    async def get_workspace(self, msg: GetWorkspace) -> WorkspaceView:
        return workspace_view(await self._workspace(msg.tenant_id, msg.id))

    @handler(read_only=True)
    async def list_workspaces(self, msg: ListWorkspaces) -> Page[WorkspaceView]:
        query = Workspace.filter(tenant_id=msg.tenant_id)
        if msg.status is not None:
            query = query.filter(status=msg.status)
        if msg.agent_id is not None:
            query = query.filter(agent_id=msg.agent_id)
        return await paginate(query, first=msg.first, after=msg.after, view=workspace_view)

    @handler(concurrent=True)  # under the workspace's row lock
    async def archive_workspace(self, msg: ArchiveWorkspace) -> WorkspaceView:
        async with in_transaction() as conn:
            row = await self._lock_workspace(conn, msg.tenant_id, msg.id)
            if row.status == ARCHIVED:
                return workspace_view(row)
            now = datetime.now(UTC)
            row.status, row.archived_at, row.updated_at = ARCHIVED, now, now
            await (
                Workspace.filter(id=row.id)
                .using_db(conn)
                .update(status=ARCHIVED, archived_at=now, updated_at=now)
            )
            view = workspace_view(row)
            await self._outbox.stage(
                conn, msg.tenant_id, WORKSPACE_ARCHIVED, workspace_event(view), key=row.id
            )
        await self._outbox.flush()
        return view

    @handler(concurrent=True)  # under the workspace's and its blobs' row locks
    async def delete_workspace(self, msg: DeleteWorkspace) -> WorkspaceView:
        async with in_transaction() as conn:
            row = await self._lock_workspace(conn, msg.tenant_id, msg.id)
            artifacts = await Artifact.filter(workspace_id=row.id).using_db(conn)
            await Artifact.filter(workspace_id=row.id).using_db(conn).delete()
            released = await self._release(conn, msg.tenant_id, artifacts)
            await Workspace.filter(id=row.id).using_db(conn).delete()
            await (
                WorkspaceQuota.filter(tenant_id=msg.tenant_id, workspaces__gt=0)
                .using_db(conn)
                .update(workspaces=F("workspaces") - 1)
            )
            row.artifact_count = len(artifacts)
            view = workspace_view(row)
            await self._outbox.stage(
                conn, msg.tenant_id, WORKSPACE_DELETED, workspace_event(view), key=row.id
            )
        await self._remove_files(released)
        await self._outbox.flush()
        return view

    @handler(read_only=True)
    async def storage_usage(self, msg: GetStorageUsage) -> StorageUsage:
        limits = await self._limits(msg.tenant_id)
        quota = await WorkspaceQuota.filter(tenant_id=msg.tenant_id).first()
        return StorageUsage(
            tenant_id=msg.tenant_id,
            workspaces=0 if quota is None else quota.workspaces,
            workspace_limit=limits.workspaces,
            storage_bytes=0 if quota is None else quota.storage_bytes,
            storage_limit_bytes=limits.storage_bytes,
            artifact_max_bytes=self._max_bytes,
        )

    # ------------------------------------------------------------------ artifacts

    @handler(concurrent=True)  # row locks, a conditional update and a unique blob decide
    async def upload_artifact(self, msg: UploadArtifact) -> UploadedArtifact:
        size = len(msg.content)
        if size > self._max_bytes:
            raise LimitExceeded(
                f"the artifact is {size} bytes; at most {self._max_bytes} are accepted",
                field="content",
                limit="artifact_max_bytes",
                allowed=self._max_bytes,
                size=size,
            )
        workspace = await self._workspace(msg.tenant_id, msg.workspace_id, "workspaceId")
        _check_active(workspace)
        sha256 = await asyncio.to_thread(lambda: hashlib.sha256(msg.content).hexdigest())
        storage_limit = (await self._limits(msg.tenant_id)).storage_bytes
        await self._ensure_quota(msg.tenant_id)
        staged: Path | None = None
        try:
            for _attempt in range(MAX_UPLOAD_ATTEMPTS):
                try:
                    view = await self._store_upload(msg, sha256, storage_limit, staged)
                except _NeedFile:
                    staged = await asyncio.to_thread(self._store.stage, msg.content)
                except IntegrityError:
                    continue  # another upload stored this content first: use its blob
                else:
                    break
            else:
                raise Conflict("the same content is being stored concurrently; try again")
        finally:
            if staged is not None:
                await asyncio.to_thread(self._store.remove, staged)
        await self._outbox.flush()
        return view

    async def _store_upload(
        self, msg: UploadArtifact, sha256: str, storage_limit: int, staged: Path | None
    ) -> UploadedArtifact:
        """One attempt: the whole change in one transaction; ``_NeedFile`` when new content
        must be staged first, ``IntegrityError`` when another upload inserted its blob."""
        size = len(msg.content)
        installed: Path | None = None
        try:
            async with in_transaction() as conn:
                workspace = await self._lock_workspace(
                    conn, msg.tenant_id, msg.workspace_id, "workspaceId"
                )
                _check_active(workspace)
                blob = (
                    await ArtifactBlob.filter(tenant_id=msg.tenant_id, sha256=sha256)
                    .using_db(conn)
                    .select_for_update()
                    .first()
                )
                deduplicated = blob is not None
                if blob is not None:
                    await (
                        ArtifactBlob.filter(id=blob.id)
                        .using_db(conn)
                        .update(ref_count=F("ref_count") + 1)
                    )
                else:
                    if staged is None:
                        raise _NeedFile
                    blob = await ArtifactBlob.create(
                        id=new_id("blb"),
                        tenant_id=msg.tenant_id,
                        sha256=sha256,
                        size=size,
                        ref_count=1,
                        created_at=datetime.now(UTC),
                        using_db=conn,
                    )
                    await self._charge(conn, msg.tenant_id, size, storage_limit)
                    installed = self._store.path(msg.tenant_id, sha256, blob.id)
                    await asyncio.to_thread(self._store.install, staged, installed)
                row = await Artifact.create(
                    id=new_id("art"),
                    tenant_id=msg.tenant_id,
                    workspace_id=workspace.id,
                    name=msg.name,
                    kind=msg.kind,
                    media_type=msg.media_type,
                    size=size,
                    sha256=sha256,
                    blob_id=blob.id,
                    created_by=msg.created_by,
                    created_at=datetime.now(UTC),
                    using_db=conn,
                )
                await (
                    Workspace.filter(id=workspace.id)
                    .using_db(conn)
                    .update(artifact_count=F("artifact_count") + 1, updated_at=row.created_at)
                )
                view = artifact_view(row)
                await self._outbox.stage(
                    conn, msg.tenant_id, ARTIFACT_CREATED, artifact_event(view), key=workspace.id
                )
                if not deduplicated and size > 0:
                    await self._outbox.stage(
                        conn, msg.tenant_id, USAGE_TOPIC, _storage_usage(view), key=None
                    )
        except BaseException:
            if installed is not None:  # named by a blob id that never committed
                await asyncio.to_thread(self._store.remove, installed)
            raise
        return UploadedArtifact(
            **{f.name: getattr(view, f.name) for f in dataclasses.fields(view)},
            deduplicated=deduplicated,
        )

    @staticmethod
    async def _charge(conn: BaseDBAsyncClient, tenant_id: str, size: int, limit: int) -> None:
        charged = (
            await WorkspaceQuota.filter(tenant_id=tenant_id, storage_bytes__lte=limit - size)
            .using_db(conn)
            .update(storage_bytes=F("storage_bytes") + size)
        )
        if not charged:
            quota = await WorkspaceQuota.filter(tenant_id=tenant_id).using_db(conn).first()
            used = 0 if quota is None else quota.storage_bytes
            raise LimitExceeded(
                f"the plan allows {limit} bytes of storage; {used} are used and this content "
                f"needs {size} more",
                limit="storage_bytes",
                allowed=limit,
                used=used,
                requested=size,
            )

    @handler(read_only=True)
    async def get_artifact(self, msg: GetArtifact) -> ArtifactView:
        return artifact_view(await self._artifact(msg.tenant_id, msg.id))

    @handler(read_only=True)
    async def list_artifacts(self, msg: ListArtifacts) -> Page[ArtifactView]:
        await self._workspace(msg.tenant_id, msg.workspace_id, "workspaceId")
        query = Artifact.filter(tenant_id=msg.tenant_id, workspace_id=msg.workspace_id)
        if msg.kind is not None:
            query = query.filter(kind=msg.kind)
        return await paginate(query, first=msg.first, after=msg.after, view=artifact_view)

    @handler(read_only=True)
    async def read_chunk(self, msg: ReadArtifactChunk) -> ArtifactChunk:
        row = await self._artifact(msg.tenant_id, msg.id)
        data = b""
        if msg.offset < row.size:
            path = self._store.path(row.tenant_id, row.sha256, row.blob_id)
            try:
                data = await asyncio.to_thread(self._store.read, path, msg.offset, msg.length)
            except FileNotFoundError:  # deleted since the row was read
                raise NotFound("artifact not found", field="id", id=msg.id) from None
        return ArtifactChunk(
            id=row.id,
            offset=msg.offset,
            data=data,
            size=row.size,
            sha256=row.sha256,
            eof=msg.offset + len(data) >= row.size,
        )

    @handler(concurrent=True)  # under the workspace's and the blob's row locks
    async def delete_artifact(self, msg: DeleteArtifact) -> ArtifactView:
        found = await self._artifact(msg.tenant_id, msg.id)
        async with in_transaction() as conn:
            workspace = await self._lock_workspace(conn, msg.tenant_id, found.workspace_id)
            _check_active(workspace, field="id")
            row = await Artifact.filter(id=msg.id).using_db(conn).first()
            if row is None:  # deleted meanwhile
                raise NotFound("artifact not found", field="id", id=msg.id)
            await Artifact.filter(id=row.id).using_db(conn).delete()
            released = await self._release(conn, msg.tenant_id, [row])
            await (
                Workspace.filter(id=workspace.id)
                .using_db(conn)
                .update(artifact_count=F("artifact_count") - 1, updated_at=datetime.now(UTC))
            )
            view = artifact_view(row)
            await self._outbox.stage(
                conn, msg.tenant_id, ARTIFACT_DELETED, artifact_event(view), key=workspace.id
            )
        await self._remove_files(released)
        await self._outbox.flush()
        return view

    # ------------------------------------------------------------------ releasing content

    async def _release(
        self, conn: BaseDBAsyncClient, tenant_id: str, artifacts: list[Artifact]
    ) -> _Released:
        """Lower the blobs' ``ref_count`` for deleted ``artifacts`` (locks in blob id order);
        blobs no artifact refers to any more lose their row and their bytes in the quota."""
        released = _Released()
        counts = Counter(a.blob_id for a in artifacts)
        for blob_id in sorted(counts):
            blob = await ArtifactBlob.filter(id=blob_id).using_db(conn).select_for_update().first()
            if blob is None:
                continue
            if blob.ref_count > counts[blob_id]:
                await (
                    ArtifactBlob.filter(id=blob_id)
                    .using_db(conn)
                    .update(ref_count=F("ref_count") - counts[blob_id])
                )
                continue
            await ArtifactBlob.filter(id=blob_id).using_db(conn).delete()
            released.freed_bytes += blob.size
            released.files.append(self._store.path(tenant_id, blob.sha256, blob.id))
        if released.freed_bytes:
            quota = WorkspaceQuota.filter(tenant_id=tenant_id).using_db(conn)
            freed = released.freed_bytes
            if not await quota.filter(storage_bytes__gte=freed).update(
                storage_bytes=F("storage_bytes") - freed
            ):
                await quota.update(storage_bytes=0)
        return released

    async def _remove_files(self, released: _Released) -> None:
        for path in released.files:
            try:
                await asyncio.to_thread(self._store.remove, path)
            except OSError:  # the row is gone: the file is only wasted space now
                log.warning("artifact file not removed", path=str(path), exc_info=True)


def _check_active(workspace: Workspace, field: str = "workspaceId") -> None:
    if workspace.status != ACTIVE:
        raise Conflict(
            "the workspace is archived: its artifacts can be read but not changed",
            field=field,
            id=workspace.id,
        )


def _storage_usage(view: ArtifactView) -> dict[str, Any]:
    """The ``usage.recorded`` payload billing meters new content with (keyed by the artifact
    that stored it)."""
    return {
        "kind": "STORAGE_BYTES",
        "quantity": view.size,
        "at": view.created_at.isoformat(),
        "idempotencyKey": view.id,
    }
