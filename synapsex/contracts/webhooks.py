"""webhook-service: subscriptions to a tenant's events, delivered as signed HTTP POSTs.

A subscription names a URL and event types (topic patterns as in consumer groups). Each matching
event becomes a **delivery** to that subscription, POSTed with Standard Webhooks headers
(``webhook-id`` is the event id, stable across retries) and retried on a schedule until a 2xx
answers or the schedule ends (``failed``). Deliveries of events sharing a key go out in order per
subscription. A subscription whose deliveries have all failed for a while is disabled.

The signing secret (``whsec_…``) is returned once, by create and rotate, and stored encrypted
under the master key. For 24 hours after a rotation deliveries carry both signatures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from synapsex.contracts.common import Page, PageRequest, check_text
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.events import check_topic_patterns
from synapsex.contracts.message import Message, Reply

SERVICE = "webhook-service"

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 500
#: deliveries carry the previous secret's signature this long after a rotation
ROTATION_OVERLAP_SECONDS = 86_400.0

DeliveryStatus = Literal["pending", "sending", "succeeded", "failed"]
DELIVERY_STATUSES: tuple[str, ...] = ("pending", "sending", "succeeded", "failed")


def _check_description(value: str | None) -> None:
    if value is not None and len(value) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput("description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters")


def _check_url_shape(value: str) -> None:
    """The cheap checks; the service also resolves the host and refuses private addresses."""
    check_text(value, "url", max_length=MAX_URL_LENGTH)
    if not value.lower().startswith(("http://", "https://")):
        raise InvalidInput("url", "must be an http:// or https:// URL")


# ---------------------------------------------------------------------------- replies


class WebhookSubscriptionView(Reply):
    id: str
    tenant_id: str
    url: str
    event_types: tuple[str, ...]
    description: str | None
    enabled: bool
    #: why it was disabled (by the service after failing too long, or by a user)
    disabled_reason: str | None
    created_at: datetime
    #: when the secret was last rotated (the previous one still signs until +24 h)
    secret_rotated_at: datetime | None


class SubscriptionWithSecret(Reply):
    """Create and rotate: the subscription and its (new) secret, shown this once."""

    subscription: WebhookSubscriptionView
    secret: str


class WebhookAttemptView(Reply):
    at: datetime
    status_code: int | None
    duration_ms: float
    error: str | None
    response_body_excerpt: str


class WebhookDeliveryView(Reply):
    id: str
    subscription_id: str
    event_id: str
    topic: str
    status: DeliveryStatus
    attempts: tuple[WebhookAttemptView, ...]
    next_attempt_at: datetime | None
    created_at: datetime


# ---------------------------------------------------------------------------- messages


class CreateWebhookSubscription(Message, service=SERVICE):
    """Replies :class:`SubscriptionWithSecret`; ``InvalidInput`` naming ``url`` for a URL that
    is not http(s) or whose host resolves to a private, loopback, link-local or metadata
    address (unless the operator allows private networks)."""

    tenant_id: str
    url: str
    event_types: tuple[str, ...]
    description: str | None = None

    def validate(self) -> None:
        _check_url_shape(self.url)
        check_topic_patterns(self.event_types, "eventTypes")
        _check_description(self.description)


class UpdateWebhookSubscription(Message, service=SERVICE):
    """Change what is given; replies the subscription. Enabling a disabled one resets its
    failure clock."""

    tenant_id: str
    id: str
    url: str | None = None
    event_types: tuple[str, ...] | None = None
    description: str | None = None
    enabled: bool | None = None

    def validate(self) -> None:
        if self.url is not None:
            _check_url_shape(self.url)
        if self.event_types is not None:
            check_topic_patterns(self.event_types, "eventTypes")
        _check_description(self.description)


class DeleteWebhookSubscription(Message, service=SERVICE):
    """Delete a subscription and its deliveries; replies the last view."""

    tenant_id: str
    id: str


class RotateWebhookSecret(Message, service=SERVICE):
    """A new secret; the previous one keeps signing for 24 hours. Replies
    :class:`SubscriptionWithSecret`."""

    tenant_id: str
    id: str


class GetWebhookSubscription(Message, service=SERVICE):
    tenant_id: str
    id: str


class ListWebhookSubscriptions(PageRequest, service=SERVICE):
    """Replies ``Page[WebhookSubscriptionView]``, oldest first."""

    tenant_id: str


class ListWebhookDeliveries(PageRequest, service=SERVICE):
    """Replies ``Page[WebhookDeliveryView]`` of one subscription, oldest first."""

    tenant_id: str
    subscription_id: str
    status: DeliveryStatus | None = None


class ReplayWebhookDelivery(Message, service=SERVICE):
    """Deliver a delivery's event again (a new delivery, same ``webhook-id``); replies it."""

    tenant_id: str
    id: str


class ReplayWebhookEvents(Message, service=SERVICE):
    """Deliver again every matching event kept since ``since`` to one subscription; replies how
    many deliveries were made."""

    tenant_id: str
    subscription_id: str
    since: datetime


__all__ = [
    "DELIVERY_STATUSES",
    "SERVICE",
    "CreateWebhookSubscription",
    "DeleteWebhookSubscription",
    "GetWebhookSubscription",
    "ListWebhookDeliveries",
    "ListWebhookSubscriptions",
    "Page",
    "ReplayWebhookDelivery",
    "ReplayWebhookEvents",
    "RotateWebhookSecret",
    "SubscriptionWithSecret",
    "UpdateWebhookSubscription",
    "WebhookAttemptView",
    "WebhookDeliveryView",
    "WebhookSubscriptionView",
]
