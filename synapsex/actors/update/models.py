"""Tables owned by update-service: ``releases``, ``rollouts``, ``rollout_assignments`` (which
VM was given which rollout's release: what makes "a VM that got the version keeps it" hold) and
its ``update_outbox``.

``rollouts.active_key`` is ``<tenant>:<component>`` while the rollout is active and NULL once
it has ended: its unique constraint is the "one active rollout per component and tenant" rule,
held by the database across processes (both engines treat NULLs as distinct). Every change of
a rollout row increments ``revision`` and is conditional on the one read, so two writers (a
user's pause, an evaluation in another process) never overwrite each other.
"""

from tortoise import fields
from tortoise.models import Model

from synapsex.actors.domain_events import OutboxEvent


class Release(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    component = fields.CharField(max_length=10)
    #: as given (build metadata included)
    version = fields.CharField(max_length=100)
    #: the version without build metadata: what makes two releases the same
    version_key = fields.CharField(max_length=100)
    notes = fields.TextField()
    url = fields.CharField(max_length=2000)
    sha256 = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()

    class Meta:
        app = "update"
        table = "releases"
        unique_together = (("tenant_id", "component", "version_key"),)


class Rollout(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    component = fields.CharField(max_length=10)
    release_id = fields.CharField(max_length=40)
    version = fields.CharField(max_length=100)
    previous_release_id = fields.CharField(max_length=40, null=True)
    previous_version = fields.CharField(max_length=100, null=True)
    status = fields.CharField(max_length=12)
    percentage = fields.IntField()
    #: JSON object: the label selector narrowing the target
    labels = fields.TextField()
    #: JSON list of rings, each name and labels
    rings = fields.TextField()
    #: index of the last ring reached
    current_ring = fields.IntField(default=0)
    #: tenant and component while active, else NULL (unique: one active rollout each)
    active_key = fields.CharField(max_length=60, null=True, unique=True)
    targeted = fields.IntField(default=0)
    updated = fields.IntField(default=0)
    failed = fields.IntField(default=0)
    halted_reason = fields.CharField(max_length=500, null=True)
    #: incremented by every change (writes are conditional on it)
    revision = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        app = "update"
        table = "rollouts"
        indexes = (("tenant_id", "component"), ("status",))


class RolloutAssignment(Model):
    """A VM given the release of a rollout (once per rollout and VM)."""

    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    rollout_id = fields.CharField(max_length=40)
    vm_id = fields.CharField(max_length=60)
    component = fields.CharField(max_length=10)
    bucket = fields.IntField()
    #: index of the ring the VM was in
    ring = fields.IntField()
    #: the version the VM reported when it was given the release
    from_version = fields.CharField(max_length=100, null=True)
    assigned_at = fields.DatetimeField()

    class Meta:
        app = "update"
        table = "rollout_assignments"
        unique_together = (("rollout_id", "vm_id"),)
        indexes = (("tenant_id", "vm_id", "component"),)


class UpdateOutbox(OutboxEvent):
    class Meta:
        app = "update"
        table = "update_outbox"
