"""Tables owned by vm-registry-service: ``vms``, ``vm_labels`` (one row per label, what the
label filter uses), ``vm_tenant_counters`` (each tenant's registered VMs: the row the plan's
limit is checked on) and ``vm_registry_outbox``.

Times are epoch milliseconds from the database's clock (as the event bus keeps them), so every
process sharing the database agrees on a VM's health, and a test moves a VM in time by changing
its row. Only a SHA-256 of each VM token is stored.
"""

from tortoise import fields
from tortoise.models import Model

from synapsex.actors.domain_events import OutboxEvent


class Vm(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    name = fields.CharField(max_length=63)
    #: the name lower-cased: unique per tenant
    name_key = fields.CharField(max_length=63)
    #: JSON object of the labels (keys sorted)
    labels = fields.TextField()
    runtime_version = fields.CharField(max_length=100)
    agent_version = fields.CharField(max_length=100)
    #: the status the VM last reported
    status = fields.CharField(max_length=20)
    #: hex SHA-256 of the current VM token
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at_ms = fields.BigIntField()
    last_heartbeat_ms = fields.BigIntField(null=True)
    #: the member who registered it
    created_by = fields.CharField(max_length=40, null=True)

    class Meta:
        app = "vm_registry"
        table = "vms"
        unique_together = (("tenant_id", "name_key"),)
        indexes = (("tenant_id", "id"),)


class VmLabel(Model):
    """One label of a VM (a copy of ``vms.labels`` the filter can use an index on)."""

    id = fields.BigIntField(primary_key=True)
    vm_id = fields.CharField(max_length=40)
    tenant_id = fields.CharField(max_length=40)
    key = fields.CharField(max_length=317)
    value = fields.CharField(max_length=63)

    class Meta:
        app = "vm_registry"
        table = "vm_labels"
        unique_together = (("vm_id", "key"),)
        indexes = (("tenant_id", "key", "value"),)


class VmTenantCounter(Model):
    """How many VMs a tenant has registered: the plan limit is one conditional update here."""

    tenant_id = fields.CharField(primary_key=True, max_length=40)
    vms = fields.IntField()

    class Meta:
        app = "vm_registry"
        table = "vm_tenant_counters"


class VmRegistryOutbox(OutboxEvent):
    """Domain events staged with the change that caused them (see ``domain_events``)."""

    class Meta:
        app = "vm_registry"
        table = "vm_registry_outbox"
