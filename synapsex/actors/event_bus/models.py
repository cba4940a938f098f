"""Tables owned by event-bus-service.

``events`` is the log; ``event_streams`` keeps each tenant's last ``seq`` (its row is the lock that
puts a tenant's publishes in commit order); ``event_consumer_groups`` and ``event_deliveries`` hold
each group's state per event. Times are epoch milliseconds taken from the database's clock, so
every process sharing the database agrees on when a lease expires.
"""

from tortoise import fields
from tortoise.models import Model


class Event(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    #: the position in the tenant's stream: consecutive, in commit order
    seq = fields.BigIntField()
    topic = fields.CharField(max_length=200)
    key = fields.CharField(max_length=200, null=True)
    #: compact JSON text, kept exactly as published
    payload = fields.TextField()
    occurred_at_ms = fields.BigIntField()
    trace_id = fields.CharField(max_length=64, null=True)
    source = fields.CharField(max_length=100)
    #: set while the key may still deduplicate (cleared when reused after the window)
    idempotency_key = fields.CharField(max_length=200, null=True)

    class Meta:
        app = "event_bus"
        table = "events"
        unique_together = (("tenant_id", "seq"), ("tenant_id", "idempotency_key"))
        indexes = (("occurred_at_ms",),)


class EventStream(Model):
    """Bookkeeping: the last ``seq`` handed out per tenant."""

    tenant_id = fields.CharField(primary_key=True, max_length=40)
    last_seq = fields.BigIntField()

    class Meta:
        app = "event_bus"
        table = "event_streams"


class ConsumerGroup(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    name = fields.CharField(max_length=100)
    #: JSON list of topic patterns
    topics = fields.TextField()
    max_attempts = fields.IntField()
    visibility_timeout_ms = fields.BigIntField()
    retry_backoff_ms = fields.BigIntField()
    max_retry_backoff_ms = fields.BigIntField()
    created_at_ms = fields.BigIntField()

    class Meta:
        app = "event_bus"
        table = "event_consumer_groups"
        unique_together = (("tenant_id", "name"),)


class Delivery(Model):
    """One event's state in one group: ``pending``, ``leased``, ``acked`` or ``dead_letter``.

    A lease is ``state='leased'`` with ``lease_expires_at_ms`` in the future. When it lapses the
    delivery counts as pending again from ``available_at_ms`` (the expiry plus the backoff), with
    no sweeper needed; a lapsed lease on the last attempt is moved to ``dead_letter`` by the next
    claim or count of its group.
    """

    id = fields.BigIntField(primary_key=True)
    group_id = fields.CharField(max_length=40)
    event_id = fields.CharField(max_length=40)
    seq = fields.BigIntField()
    key = fields.CharField(max_length=200, null=True)
    state = fields.CharField(max_length=12)
    attempt = fields.IntField()
    available_at_ms = fields.BigIntField()
    lease_id = fields.CharField(max_length=40, null=True)
    lease_expires_at_ms = fields.BigIntField(null=True)
    last_error = fields.TextField(null=True)
    occurred_at_ms = fields.BigIntField()
    updated_at_ms = fields.BigIntField()

    class Meta:
        app = "event_bus"
        table = "event_deliveries"
        unique_together = (("group_id", "event_id"),)
        indexes = (("group_id", "state", "seq"), ("group_id", "key", "seq"), ("event_id",))
