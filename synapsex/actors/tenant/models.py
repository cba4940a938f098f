"""Tables owned by tenant-service: ``tenants``, ``tenant_members`` and its ``tenant_outbox``."""

from tortoise import fields
from tortoise.models import Model

from synapsex.actors.domain_events import OutboxEvent


class Tenant(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    name = fields.CharField(max_length=100, unique=True)
    slug = fields.CharField(max_length=100, unique=True)
    plan = fields.CharField(max_length=20)
    # per-tenant overrides of the plan's limits, e.g. {"members": 25}
    limit_overrides = fields.JSONField(default=dict)
    # kept in step with tenant_members in the same transaction; the limit check is a
    #: conditional update of this counter, which cannot race (see actor.AddMember)
    member_count = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        app = "tenant"
        table = "tenants"


class TenantMember(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant = fields.ForeignKeyField(
        "tenant.Tenant", related_name="members", on_delete=fields.CASCADE
    )
    email = fields.CharField(max_length=254)
    role = fields.CharField(max_length=20)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        app = "tenant"
        table = "tenant_members"
        unique_together = (("tenant", "email"),)


class TenantOutbox(OutboxEvent):
    """Domain events staged with the change that caused them (see ``domain_events``)."""

    class Meta:
        app = "tenant"
        table = "tenant_outbox"
