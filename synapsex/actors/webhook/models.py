"""Tables owned by webhook-service: ``webhook_subscriptions``, ``webhook_deliveries`` and its
``webhook_outbox``. Times the dispatcher compares are epoch milliseconds."""

from tortoise import fields
from tortoise.models import Model

from synapsex.actors.domain_events import OutboxEvent


class WebhookSubscription(Model):
    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    url = fields.CharField(max_length=2048)
    #: JSON list of topic patterns
    event_types = fields.TextField()
    description = fields.CharField(max_length=500, null=True)
    enabled = fields.BooleanField(default=True)
    disabled_reason = fields.CharField(max_length=200, null=True)
    #: the signing secret, sealed under the master key (never stored in plaintext)
    secret_sealed = fields.TextField()
    #: the secret before the last rotation, still signing until previous_secret_until
    previous_secret_sealed = fields.TextField(null=True)
    previous_secret_until = fields.DatetimeField(null=True)
    secret_rotated_at = fields.DatetimeField(null=True)
    #: since when its deliveries have failed with no success (cleared by a success)
    failing_since = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        app = "webhook"
        table = "webhook_subscriptions"
        indexes = (("tenant_id",),)


class WebhookDelivery(Model):
    """One event to one subscription: ``pending`` → ``sending`` → ``succeeded`` or, after the
    retry schedule, ``failed``. A ``sending`` delivery whose lease lapsed (the process died
    mid-attempt) is due again."""

    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    subscription_id = fields.CharField(max_length=40)
    event_id = fields.CharField(max_length=40)
    # the event id for deliveries made from the stream (one per event and subscription);
    # None for replays
    dedupe_key = fields.CharField(max_length=40, null=True)
    topic = fields.CharField(max_length=200)
    key = fields.CharField(max_length=200, null=True)
    #: the exact JSON body POSTed on every attempt (what the signature covers)
    body = fields.TextField()
    status = fields.CharField(max_length=10)
    #: JSON list of attempts: at, statusCode, durationMs, error, responseBodyExcerpt
    attempts = fields.TextField(default="[]")
    attempt_count = fields.IntField(default=0)
    next_attempt_at_ms = fields.BigIntField(null=True)
    lease_until_ms = fields.BigIntField(null=True)
    #: who holds the ``sending`` lease (one claim batch of one process)
    lease_token = fields.CharField(max_length=40, null=True)
    created_at = fields.DatetimeField()

    class Meta:
        app = "webhook"
        table = "webhook_deliveries"
        unique_together = (("subscription_id", "dedupe_key"),)
        indexes = (("status", "next_attempt_at_ms"), ("subscription_id", "key", "created_at"))


class WebhookOutbox(OutboxEvent):
    """Domain events (``webhook.subscription.disabled``) staged with their change."""

    class Meta:
        app = "webhook"
        table = "webhook_outbox"
