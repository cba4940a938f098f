"""Workspaces and artifacts: where agents' outputs, generated files and reports land.

Content goes up as base64 in ``uploadArtifact`` (bodies past the gateway's 1 MiB are accepted
for that mutation only: :mod:`synapsex.graphql.upload_limit`) and comes back inline through
``artifact { contentBase64 }`` up to :data:`~synapsex.contracts.workspaces.INLINE_MAX_BYTES`,
or streamed by ``GET /artifacts/{id}`` (:mod:`synapsex.graphql.artifact_download`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import datetime
from enum import Enum

import strawberry
from strawberry.types import Info

from synapsex.contracts import workspaces as contract
from synapsex.contracts.auth import Principal
from synapsex.contracts.errors import InvalidInput, LimitExceeded
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.guard import guarded, made_by_caller
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.scalars import BigInt
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]

#: base64 longer than this is decoded in a thread (the event loop keeps serving meanwhile)
DECODE_IN_THREAD_CHARS = 256 * 1024


# ---------------------------------------------------------------------------- content


def decoded_size(text: str) -> int:
    """The size ``text`` decodes to, if it is padded base64 (checked when decoding)."""
    return len(text) // 4 * 3 - (len(text) - len(text.rstrip("="))) if text else 0


async def decode_content(text: str, max_bytes: int) -> bytes:
    """Strict RFC 4648 base64 (standard alphabet, padded, no white space) → bytes;
    ``LIMIT_EXCEEDED`` past ``max_bytes`` (judged before decoding), ``INVALID_INPUT`` on
    ``contentBase64`` otherwise."""
    size = decoded_size(text)
    if size > max_bytes:
        raise LimitExceeded(
            f"contentBase64 decodes to {size} bytes; an artifact may have at most {max_bytes}",
            field="contentBase64",
            limit="artifact_max_bytes",
            allowed=max_bytes,
            size=size,
        )
    try:
        if len(text) > DECODE_IN_THREAD_CHARS:
            return await asyncio.to_thread(base64.b64decode, text, validate=True)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "contentBase64",
            "must be base64 (RFC 4648: A-Z a-z 0-9 + /, padded with =, no white space)",
        ) from None


async def read_inline(ctx: GatewayContext, tenant_id: str, artifact_id: str, size: int) -> bytes:
    """The whole content of a small artifact, read in chunks."""
    if size > contract.INLINE_MAX_BYTES:
        path = contract.download_path(artifact_id)
        raise LimitExceeded(
            f"the artifact is {size} bytes; contentBase64 inlines at most "
            f"{contract.INLINE_MAX_BYTES}: download it with GET {path}",
            field="contentBase64",
            limit="inline_max_bytes",
            allowed=contract.INLINE_MAX_BYTES,
            size=size,
            downloadPath=path,
        )
    parts: list[bytes] = []
    offset = 0
    while True:
        chunk = await ctx.ask(
            contract.ReadArtifactChunk(tenant_id=tenant_id, id=artifact_id, offset=offset)
        )
        parts.append(chunk.data)
        offset += len(chunk.data)
        if chunk.eof or not chunk.data:
            return b"".join(parts)


# ---------------------------------------------------------------------------- types


@strawberry.enum(description="ACTIVE: artifacts may be added; ARCHIVED: read-only.")
class WorkspaceStatus(Enum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


@strawberry.enum(description="What an artifact is.")
class ArtifactKind(Enum):
    OUTPUT = strawberry.enum_value("OUTPUT", description="An output of an agent's run.")
    FILE = strawberry.enum_value("FILE", description="A generated or supplied file.")
    REPORT = strawberry.enum_value("REPORT", description="A report for people to read.")


@strawberry.type(
    description="An immutable piece of content in a workspace. Identical content is stored "
    "once per tenant (sha256), whatever the number of artifacts that hold it."
)
class Artifact:
    id: strawberry.ID
    workspace_id: strawberry.ID
    name: str
    kind: ArtifactKind
    media_type: str
    size: BigInt = strawberry.field(description="Bytes.")
    sha256: str = strawberry.field(description="Of the content, lower-case hex.")
    created_by: str | None = strawberry.field(description="The member who uploaded it.")
    created_at: datetime
    deduplicated: bool | None = strawberry.field(
        default=None,
        description="In uploadArtifact's reply: true when the tenant already stored this "
        "content (the upload took no storage and was not metered again). Null elsewhere.",
    )

    @strawberry.field(
        description="Where the content streams from: GET it with 'Authorization: Bearer "
        "<api key>' (a path on this gateway)."
    )
    def download_path(self) -> str:
        return contract.download_path(str(self.id))

    @strawberry.field(
        description="The content as base64, read only when asked for; artifacts larger than "
        f"{contract.INLINE_MAX_BYTES} bytes are refused (LIMIT_EXCEEDED): download them "
        "from downloadPath."
    )
    async def content_base64(self, info: Ctx) -> str:
        p = await info.context.principal()
        content = await read_inline(info.context, p.tenant_id, str(self.id), self.size)
        return base64.b64encode(content).decode("ascii")

    @classmethod
    def of(cls, view: contract.ArtifactView) -> Artifact:
        return cls(
            id=strawberry.ID(view.id),
            workspace_id=strawberry.ID(view.workspace_id),
            name=view.name,
            kind=ArtifactKind(view.kind),
            media_type=view.media_type,
            size=BigInt(view.size),
            sha256=view.sha256,
            created_by=view.created_by,
            created_at=view.created_at,
        )


@strawberry.type(description="A place of the tenant where an agent's artifacts land.")
class Workspace:
    id: strawberry.ID
    name: str
    agent_id: strawberry.ID | None = strawberry.field(
        description="The agent of the tenant the workspace belongs to, if any."
    )
    status: WorkspaceStatus
    artifact_count: int
    created_by: str | None = strawberry.field(description="The member who created it.")
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None

    @strawberry.field(description="The workspace's artifacts, oldest first.")
    async def artifacts(
        self,
        info: Ctx,
        kind: ArtifactKind | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[Artifact]:
        return await _artifacts(info, str(self.id), kind, first, after)

    @classmethod
    def of(cls, view: contract.WorkspaceView) -> Workspace:
        return cls(
            id=strawberry.ID(view.id),
            name=view.name,
            agent_id=None if view.agent_id is None else strawberry.ID(view.agent_id),
            status=WorkspaceStatus(view.status),
            artifact_count=view.artifact_count,
            created_by=view.created_by,
            created_at=view.created_at,
            updated_at=view.updated_at,
            archived_at=view.archived_at,
        )


@strawberry.type(description="The tenant's workspaces and stored bytes against its plan.")
class StorageUsage:
    workspaces: int
    workspace_limit: int
    storage_bytes: BigInt = strawberry.field(
        description="Distinct content the tenant's artifacts hold (identical content once)."
    )
    storage_limit_bytes: BigInt
    artifact_max_bytes: BigInt = strawberry.field(
        description="The largest single artifact this server accepts (decoded bytes)."
    )
    inline_max_bytes: BigInt = strawberry.field(
        description="The largest artifact contentBase64 returns; larger ones are downloaded."
    )


# ---------------------------------------------------------------------------- inputs


@strawberry.input
class CreateWorkspaceInput:
    name: str = strawberry.field(description="Unique in the tenant (case-insensitively).")
    agent_id: strawberry.ID | None = strawberry.field(
        default=None, description="An ACTIVE agent of the tenant the workspace belongs to."
    )


@strawberry.input
class ArchiveWorkspaceInput:
    id: strawberry.ID


@strawberry.input
class DeleteWorkspaceInput:
    id: strawberry.ID


@strawberry.input
class UploadArtifactInput:
    workspace_id: strawberry.ID
    name: str = strawberry.field(description="A file name (no / or \\), at most 255 characters.")
    kind: ArtifactKind
    media_type: str = strawberry.field(
        default=contract.DEFAULT_MEDIA_TYPE,
        description="e.g. text/csv; charset=utf-8 (default application/octet-stream).",
    )
    content_base64: str = strawberry.field(
        description="The content, base64 (RFC 4648, padded, no line breaks)."
    )


@strawberry.input
class DeleteArtifactInput:
    id: strawberry.ID


# ---------------------------------------------------------------------------- resolvers


async def _artifacts(
    info: Ctx, workspace_id: str, kind: ArtifactKind | None, first: int, after: str | None
) -> Connection[Artifact]:
    return await tenant_connection(
        info,
        contract.ListArtifacts,
        Artifact.of,
        workspace_id=workspace_id,
        kind=None if kind is None else kind.value,
        first=first,
        after=after,
    )


async def _created_by_caller(info: Ctx, kind: str, object_id: str) -> bool:
    """Whether the caller created the workspace or artifact; an unknown or malformed id counts
    as theirs, so that the mutation runs and audits its NOT_FOUND or INVALID_INPUT."""
    get = contract.GetWorkspace if kind == "workspace" else contract.GetArtifact
    return await made_by_caller(info, lambda t: get(tenant_id=t, id=object_id), unknown=True)


@strawberry.type
class WorkspaceQuery:
    @strawberry.field(description="The tenant's workspaces, oldest first.")
    async def workspaces(
        self,
        info: Ctx,
        status: WorkspaceStatus | None = None,
        agent_id: strawberry.ID | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[Workspace]:
        return await tenant_connection(
            info,
            contract.ListWorkspaces,
            Workspace.of,
            status=None if status is None else status.value,
            agent_id=None if agent_id is None else str(agent_id),
            first=first,
            after=after,
        )

    @strawberry.field
    async def workspace(self, info: Ctx, id: strawberry.ID) -> Workspace:
        p = await info.context.principal()
        view = await info.context.ask(contract.GetWorkspace(tenant_id=p.tenant_id, id=str(id)))
        return Workspace.of(view)

    @strawberry.field(description="The artifacts of one workspace, oldest first.")
    async def artifacts(
        self,
        info: Ctx,
        workspace_id: strawberry.ID,
        kind: ArtifactKind | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[Artifact]:
        return await _artifacts(info, str(workspace_id), kind, first, after)

    @strawberry.field
    async def artifact(self, info: Ctx, id: strawberry.ID) -> Artifact:
        p = await info.context.principal()
        view = await info.context.ask(contract.GetArtifact(tenant_id=p.tenant_id, id=str(id)))
        return Artifact.of(view)

    @strawberry.field(description="The tenant's workspaces and stored bytes against its plan.")
    async def storage_usage(self, info: Ctx) -> StorageUsage:
        p = await info.context.principal()
        usage = await info.context.ask(contract.GetStorageUsage(tenant_id=p.tenant_id))
        return StorageUsage(
            workspaces=usage.workspaces,
            workspace_limit=usage.workspace_limit,
            storage_bytes=BigInt(usage.storage_bytes),
            storage_limit_bytes=BigInt(usage.storage_limit_bytes),
            artifact_max_bytes=BigInt(usage.artifact_max_bytes),
            inline_max_bytes=BigInt(contract.INLINE_MAX_BYTES),
        )


@strawberry.type
class WorkspaceMutation:
    @strawberry.mutation(description="Create a workspace (the plan limits how many).")
    async def create_workspace(self, info: Ctx, input: CreateWorkspaceInput) -> Workspace:
        async def run(p: Principal) -> contract.WorkspaceView:
            return await info.context.ask(
                contract.CreateWorkspace(
                    tenant_id=p.tenant_id,
                    name=input.name,
                    agent_id=None if input.agent_id is None else str(input.agent_id),
                    created_by=p.member_id,
                )
            )

        view = await guarded(info, action="workspace.create", resource_type="workspace", run=run)
        return Workspace.of(view)

    @strawberry.mutation(
        description="Make a workspace read-only: its artifacts stay readable, nothing can be "
        "added or deleted. It still counts towards the plan's workspaces."
    )
    async def archive_workspace(self, info: Ctx, input: ArchiveWorkspaceInput) -> Workspace:
        workspace_id = str(input.id)

        async def run(p: Principal) -> contract.WorkspaceView:
            return await info.context.ask(
                contract.ArchiveWorkspace(tenant_id=p.tenant_id, id=workspace_id)
            )

        view = await guarded(
            info,
            action="workspace.archive",
            resource_type="workspace",
            resource_id=workspace_id,
            is_own_resource=await _created_by_caller(info, "workspace", workspace_id),
            run=run,
        )
        return Workspace.of(view)

    @strawberry.mutation(
        description="Delete a workspace and its artifacts; content no other artifact holds "
        "is removed and frees its storage. Returns the workspace as it was."
    )
    async def delete_workspace(self, info: Ctx, input: DeleteWorkspaceInput) -> Workspace:
        workspace_id = str(input.id)

        async def run(p: Principal) -> contract.WorkspaceView:
            return await info.context.ask(
                contract.DeleteWorkspace(tenant_id=p.tenant_id, id=workspace_id)
            )

        view = await guarded(
            info,
            action="workspace.delete",
            resource_type="workspace",
            resource_id=workspace_id,
            is_own_resource=await _created_by_caller(info, "workspace", workspace_id),
            run=run,
        )
        return Workspace.of(view)

    @strawberry.mutation(
        description="Upload an artifact into an ACTIVE workspace. Content the tenant already "
        "stored is not stored (nor counted) twice."
    )
    async def upload_artifact(self, info: Ctx, input: UploadArtifactInput) -> Artifact:
        max_bytes = info.context.runtime.settings.artifact_max_bytes

        async def run(p: Principal) -> contract.UploadedArtifact:
            content = await decode_content(input.content_base64, max_bytes)
            return await info.context.ask(
                contract.UploadArtifact(
                    tenant_id=p.tenant_id,
                    workspace_id=str(input.workspace_id),
                    name=input.name,
                    kind=input.kind.value,
                    media_type=input.media_type,
                    content=content,
                    created_by=p.member_id,
                )
            )

        view = await guarded(info, action="artifact.upload", resource_type="artifact", run=run)
        artifact = Artifact.of(view)
        artifact.deduplicated = view.deduplicated
        return artifact

    @strawberry.mutation(
        description="Delete an artifact of an ACTIVE workspace; its content is removed when "
        "no other artifact holds it. Returns the artifact as it was."
    )
    async def delete_artifact(self, info: Ctx, input: DeleteArtifactInput) -> Artifact:
        artifact_id = str(input.id)

        async def run(p: Principal) -> contract.ArtifactView:
            return await info.context.ask(
                contract.DeleteArtifact(tenant_id=p.tenant_id, id=artifact_id)
            )

        view = await guarded(
            info,
            action="artifact.delete",
            resource_type="artifact",
            resource_id=artifact_id,
            is_own_resource=await _created_by_caller(info, "artifact", artifact_id),
            run=run,
        )
        return Artifact.of(view)
