"""Tables owned by workspace-service: ``workspaces``, ``artifacts``, ``artifact_blobs`` (one
row per distinct content of a tenant, with how many artifacts refer to it), ``workspace_quotas``
(each tenant's counters the plan limits are checked against) and ``workspace_outbox``.

Invariants kept in each change's transaction: ``workspaces.artifact_count`` is the number of
its artifacts; ``artifact_blobs.ref_count`` the number of artifacts with that ``blob_id``;
``workspace_quotas.workspaces`` the tenant's workspaces and ``storage_bytes`` the sum of its
blobs' sizes.
"""

from tortoise import fields
from tortoise.models import Model

from synapsex.actors.domain_events import OutboxEvent


class Workspace(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    name = fields.CharField(max_length=100)
    #: the name NFKC-normalised and case-folded: unique in the tenant
    name_key = fields.CharField(max_length=100)
    agent_id = fields.CharField(max_length=60, null=True)
    #: ACTIVE or ARCHIVED
    status = fields.CharField(max_length=10)
    artifact_count = fields.IntField(default=0)
    created_by = fields.CharField(max_length=60, null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    archived_at = fields.DatetimeField(null=True)

    class Meta:
        app = "workspace"
        table = "workspaces"
        unique_together = (("tenant_id", "name_key"),)
        indexes = (("tenant_id", "status"),)


class Artifact(Model):
    """One upload: immutable metadata of content kept in a blob."""

    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    workspace_id = fields.CharField(max_length=40)
    name = fields.CharField(max_length=255)
    #: OUTPUT, FILE or REPORT
    kind = fields.CharField(max_length=10)
    media_type = fields.CharField(max_length=255)
    size = fields.BigIntField()
    sha256 = fields.CharField(max_length=64)
    blob_id = fields.CharField(max_length=40)
    created_by = fields.CharField(max_length=60, null=True)
    created_at = fields.DatetimeField()

    class Meta:
        app = "workspace"
        table = "artifacts"
        indexes = (("workspace_id", "kind"), ("blob_id",))


class ArtifactBlob(Model):
    """Content of one tenant, stored once: the file is named by the hash and this row id."""

    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    sha256 = fields.CharField(max_length=64)
    size = fields.BigIntField()
    #: artifacts whose content this is
    ref_count = fields.IntField()
    created_at = fields.DatetimeField()

    class Meta:
        app = "workspace"
        table = "artifact_blobs"
        unique_together = (("tenant_id", "sha256"),)


class WorkspaceQuota(Model):
    """The counters of a tenant, checked against its plan with conditional updates."""

    tenant_id = fields.CharField(primary_key=True, max_length=40)
    workspaces = fields.IntField(default=0)
    #: the sum of the sizes of the blobs of the tenant (each distinct content once)
    storage_bytes = fields.BigIntField(default=0)

    class Meta:
        app = "workspace"
        table = "workspace_quotas"


class WorkspaceOutbox(OutboxEvent):
    """Domain events staged with the change that caused them (see ``domain_events``)."""

    class Meta:
        app = "workspace"
        table = "workspace_outbox"
