"""Tables owned by billing-service: ``usage_records``, the daily counters the plan limits are
enforced on (``billing_daily_counters``), and how far each tenant's usage intake has come
(``billing_intake``).

Usage times are stored as epoch microseconds (UTC), so range filters and the price segments
compare numbers on both engines; ``day`` is the UTC date of ``at`` for grouping."""

from tortoise import fields
from tortoise.models import Model


class UsageRecord(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    kind = fields.CharField(max_length=30)
    quantity = fields.BigIntField()
    #: the model id for token kinds, else null
    model = fields.CharField(max_length=200, null=True)
    #: when the usage happened, epoch microseconds UTC
    at_us = fields.BigIntField()
    #: the UTC date of at as YYYY-MM-DD
    day = fields.CharField(max_length=10)
    #: a service name, or apikey and the key id through the gateway
    source = fields.CharField(max_length=100)
    idempotency_key = fields.CharField(max_length=200)
    created_at = fields.DatetimeField()

    class Meta:
        app = "billing"
        table = "usage_records"
        unique_together = (("tenant_id", "idempotency_key"),)
        indexes = (("tenant_id", "at_us"), ("tenant_id", "kind"))


class DailyCounter(Model):
    """One tenant, one metered limit, one UTC day: how much of the limit is taken."""

    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    metric = fields.CharField(max_length=40)
    #: the UTC date as YYYY-MM-DD
    day = fields.CharField(max_length=10)
    used = fields.BigIntField(default=0)

    class Meta:
        app = "billing"
        table = "billing_daily_counters"
        unique_together = (("tenant_id", "metric", "day"),)


class IntakeState(Model):
    """A tenant whose usage events billing reads, and whether its backfill is done.

    Backfilled: the usage events published before its consumer group existed were read back."""

    tenant_id = fields.CharField(primary_key=True, max_length=40)
    backfilled = fields.BooleanField(default=False)
    updated_at = fields.DatetimeField()

    class Meta:
        app = "billing"
        table = "billing_intake"
