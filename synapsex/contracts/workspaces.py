"""workspace-service: workspaces and the artifacts agents leave in them (outputs, generated
files, reports).

A **workspace** is a named place of a tenant (name unique in the tenant, compared
case-insensitively), optionally tied to one of the tenant's agents. ``ACTIVE`` → ``ARCHIVED``
(read-only: nothing more can be uploaded; it still counts towards the plan's ``workspaces``
limit) → deleted (with its artifacts; that frees the slot).

An **artifact** is immutable: a name, a kind (``OUTPUT``, ``FILE``, ``REPORT``), a media type,
and content identified by its SHA-256. Content is **content-addressed per tenant**: the same
bytes uploaded twice (in one workspace or two) are stored once, and each upload has its own
artifact row. A tenant's ``storage_bytes`` (the plan's limit) counts each distinct content
once, for as long as an artifact refers to it; that is also what is metered for billing: a
``usage.recorded`` event of kind ``STORAGE_BYTES`` is published when an upload stores content
the tenant did not hold yet (keyed by that artifact's id), none for a deduplicated upload.

Content is read in chunks of at most :data:`CHUNK_MAX_BYTES` (:class:`ReadArtifactChunk`), so
the gateway streams a download without holding the file in memory.

Limits: each artifact at most ``SYNAPSEX_ARTIFACT_MAX_BYTES`` (default
:data:`DEFAULT_ARTIFACT_MAX_BYTES`, checked by the service on the decoded size); the plan's
``workspaces`` and ``storage_bytes``, each enforced by one conditional update of the tenant's
counter in the change's transaction, so they hold across processes sharing PostgreSQL.

Domain events (outbox): ``workspace.created``, ``workspace.archived``, ``workspace.deleted``,
``artifact.created``, ``artifact.deleted``, and ``usage.recorded`` (billing).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from synapsex.contracts.common import PageRequest, check_choice, check_text, secret_field
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply

SERVICE = "workspace-service"

MIB = 1024 * 1024
WORKSPACE_STATUSES: tuple[str, ...] = ("ACTIVE", "ARCHIVED")
ARTIFACT_KINDS: tuple[str, ...] = ("OUTPUT", "FILE", "REPORT")
#: the default largest artifact (decoded bytes); ``SYNAPSEX_ARTIFACT_MAX_BYTES`` changes it
DEFAULT_ARTIFACT_MAX_BYTES = 25 * MIB
#: the most one :class:`ReadArtifactChunk` returns
CHUNK_MAX_BYTES = 1 * MIB
#: the largest artifact ``artifact(id) { contentBase64 }`` inlines; larger ones are downloaded
INLINE_MAX_BYTES = 1 * MIB
DEFAULT_MEDIA_TYPE = "application/octet-stream"
MAX_WORKSPACE_NAME_LENGTH = 100
MAX_ARTIFACT_NAME_LENGTH = 255
MAX_MEDIA_TYPE_LENGTH = 255
MAX_ID_LENGTH = 60

WORKSPACE_CREATED = "workspace.created"
WORKSPACE_ARCHIVED = "workspace.archived"
WORKSPACE_DELETED = "workspace.deleted"
ARTIFACT_CREATED = "artifact.created"
ARTIFACT_DELETED = "artifact.deleted"

_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_MEDIA_TYPE_RE = re.compile(
    rf"{_TOKEN}/{_TOKEN}(\s*;\s*{_TOKEN}=({_TOKEN}|\"[^\"\\\x00-\x1f\x7f]*\"))*", re.ASCII
)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def download_path(artifact_id: str) -> str:
    """Where the gateway serves an artifact's content: ``GET /artifacts/{id}``."""
    return f"/artifacts/{artifact_id}"


# ---------------------------------------------------------------------------- checks


def check_id(value: str, field: str = "id") -> None:
    check_text(value, field, max_length=MAX_ID_LENGTH)


def check_workspace_name(value: str, field: str = "name") -> None:
    check_text(value, field, max_length=MAX_WORKSPACE_NAME_LENGTH)
    if _CONTROL_RE.search(value):
        raise InvalidInput(field, "must not contain control characters")


def check_artifact_name(value: str, field: str = "name") -> None:
    """A file name: no path separators, no control characters, not ``.`` or ``..``."""
    check_text(value, field, max_length=MAX_ARTIFACT_NAME_LENGTH)
    if "/" in value or "\\" in value:
        raise InvalidInput(field, "must be a file name, without / or \\")
    if _CONTROL_RE.search(value):
        raise InvalidInput(field, "must not contain control characters")
    if value in (".", ".."):
        raise InvalidInput(field, "must be a file name, not . or ..")


def check_media_type(value: str, field: str = "mediaType") -> None:
    """``type/subtype`` with optional ``; name=value`` parameters (RFC 6838, RFC 9110)."""
    if len(value) > MAX_MEDIA_TYPE_LENGTH:
        raise InvalidInput(field, f"must be at most {MAX_MEDIA_TYPE_LENGTH} characters")
    if not _MEDIA_TYPE_RE.fullmatch(value):
        raise InvalidInput(
            field, "must be a media type such as text/plain or text/csv; charset=utf-8"
        )


# ---------------------------------------------------------------------------- replies


class WorkspaceView(Reply):
    id: str
    tenant_id: str
    name: str
    #: the agent of the tenant the workspace belongs to, if any
    agent_id: str | None
    #: ``ACTIVE`` or ``ARCHIVED``
    status: str
    #: artifacts in it now
    artifact_count: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class ArtifactView(Reply):
    id: str
    tenant_id: str
    workspace_id: str
    name: str
    #: ``OUTPUT``, ``FILE`` or ``REPORT``
    kind: str
    media_type: str
    #: bytes
    size: int
    #: of the content, lower-case hex
    sha256: str
    created_at: datetime
    #: the member (or service) that uploaded it
    created_by: str | None = None


class UploadedArtifact(ArtifactView):
    """What :class:`UploadArtifact` answers: the artifact, and whether its content was already
    stored for the tenant (then it took no storage and was not metered again)."""

    deduplicated: bool


class ArtifactChunk(Reply):
    """``data`` is the content from ``offset`` (at most the length asked for)."""

    id: str
    offset: int
    data: bytes
    #: the artifact's whole size
    size: int
    sha256: str
    #: whether ``data`` reaches the end of the content
    eof: bool


class StorageUsage(Reply):
    """A tenant's workspaces and stored bytes against its plan."""

    tenant_id: str
    workspaces: int
    workspace_limit: int
    #: distinct content the tenant's artifacts refer to
    storage_bytes: int
    storage_limit_bytes: int
    #: the largest single artifact this server accepts
    artifact_max_bytes: int


def workspace_event(view: WorkspaceView) -> dict[str, Any]:
    """The payload of the ``workspace.*`` events."""
    return {
        "id": view.id,
        "tenantId": view.tenant_id,
        "name": view.name,
        "agentId": view.agent_id,
        "status": view.status,
        "artifactCount": view.artifact_count,
        "createdBy": view.created_by,
        "createdAt": view.created_at.isoformat(),
    }


def artifact_event(view: ArtifactView) -> dict[str, Any]:
    """The payload of the ``artifact.*`` events (never the content)."""
    return {
        "id": view.id,
        "tenantId": view.tenant_id,
        "workspaceId": view.workspace_id,
        "name": view.name,
        "kind": view.kind,
        "mediaType": view.media_type,
        "size": view.size,
        "sha256": view.sha256,
        "createdBy": view.created_by,
        "createdAt": view.created_at.isoformat(),
        "downloadPath": download_path(view.id),
    }


# ---------------------------------------------------------------------------- workspaces


class CreateWorkspace(Message, service=SERVICE):
    """Create an ACTIVE workspace. Replies :class:`WorkspaceView`; ``INVALID_INPUT`` on
    ``agentId`` unless it is an agent of the tenant (asked of api-gateway), ``CONFLICT`` on
    ``name`` when the tenant has a workspace of that name, ``LIMIT_EXCEEDED``
    (``limit="workspaces"``) when the plan's workspaces are all taken."""

    tenant_id: str
    name: str
    agent_id: str | None = None
    created_by: str | None = None

    def validate(self) -> None:
        check_workspace_name(self.name)
        if self.agent_id is not None:
            check_id(self.agent_id, "agentId")


class GetWorkspace(Message, service=SERVICE):
    """Replies :class:`WorkspaceView`; ``NOT_FOUND`` (on ``id``) otherwise, another tenant's
    included."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_id(self.id)


class ListWorkspaces(PageRequest, service=SERVICE):
    """Replies ``Page[WorkspaceView]``, oldest first, narrowed by ``status`` and ``agent_id``."""

    tenant_id: str
    status: str | None = None
    agent_id: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        if self.status is not None:
            check_choice(self.status, WORKSPACE_STATUSES, "status")
        if self.agent_id is not None:
            check_id(self.agent_id, "agentId")


class ArchiveWorkspace(Message, service=SERVICE):
    """Make a workspace read-only (archiving an archived one changes nothing). Replies
    :class:`WorkspaceView`."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_id(self.id)


class DeleteWorkspace(Message, service=SERVICE):
    """Delete a workspace and every artifact in it; content no other artifact of the tenant
    refers to is removed and stops counting towards ``storage_bytes``. Replies the deleted
    :class:`WorkspaceView` (``artifact_count``: how many artifacts went with it)."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_id(self.id)


class GetStorageUsage(Message, service=SERVICE):
    """Replies :class:`StorageUsage`."""

    tenant_id: str


# ---------------------------------------------------------------------------- artifacts


class UploadArtifact(Message, service=SERVICE):
    """Store ``content`` as a new artifact of an ACTIVE workspace. Replies
    :class:`UploadedArtifact` (an :class:`ArtifactView`). ``NOT_FOUND`` on ``workspaceId``,
    ``CONFLICT`` on ``workspaceId`` for an archived workspace, ``LIMIT_EXCEEDED`` on
    ``content`` past ``SYNAPSEX_ARTIFACT_MAX_BYTES`` (``limit="artifact_max_bytes"``) or when
    new content would pass the plan's ``storage_bytes``.

    ``content`` is never logged nor kept in dead letters (a secret field: it may be large and
    it is the tenant's data)."""

    tenant_id: str
    workspace_id: str
    name: str
    kind: str
    media_type: str = DEFAULT_MEDIA_TYPE
    content: bytes = secret_field()
    created_by: str | None = None

    def validate(self) -> None:
        check_id(self.workspace_id, "workspaceId")
        check_artifact_name(self.name)
        check_choice(self.kind, ARTIFACT_KINDS, "kind")
        check_media_type(self.media_type)


class GetArtifact(Message, service=SERVICE):
    """Replies :class:`ArtifactView`; ``NOT_FOUND`` (on ``id``) otherwise."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_id(self.id)


class ListArtifacts(PageRequest, service=SERVICE):
    """Replies ``Page[ArtifactView]`` of one workspace, oldest first, narrowed by ``kind``;
    ``NOT_FOUND`` on ``workspaceId`` when the tenant has no such workspace."""

    tenant_id: str
    workspace_id: str
    kind: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        check_id(self.workspace_id, "workspaceId")
        if self.kind is not None:
            check_choice(self.kind, ARTIFACT_KINDS, "kind")


class ReadArtifactChunk(Message, service=SERVICE):
    """Up to ``length`` bytes (at most :data:`CHUNK_MAX_BYTES`) of an artifact's content from
    ``offset``. Replies :class:`ArtifactChunk` (empty ``data`` and ``eof`` at or past the
    end); ``NOT_FOUND`` (on ``id``) for another tenant's or a deleted artifact."""

    tenant_id: str
    id: str
    offset: int = 0
    length: int = CHUNK_MAX_BYTES

    def validate(self) -> None:
        check_id(self.id)
        if self.offset < 0:
            raise InvalidInput("offset", "must not be negative")
        if not 1 <= self.length <= CHUNK_MAX_BYTES:
            raise InvalidInput("length", f"must be between 1 and {CHUNK_MAX_BYTES}")


class DeleteArtifact(Message, service=SERVICE):
    """Delete one artifact of an ACTIVE workspace; its content is removed when no other
    artifact of the tenant refers to it. Replies the deleted :class:`ArtifactView`;
    ``CONFLICT`` on ``id`` when its workspace is archived."""

    tenant_id: str
    id: str

    def validate(self) -> None:
        check_id(self.id)
