"""Messages the webhook-service sends itself (not part of its public contract)."""

from __future__ import annotations

from synapsex.contracts.message import Message
from synapsex.contracts.webhooks import SERVICE


class Pump(Message, service=SERVICE):
    """Turn the events claimed from the bus into deliveries (and start the fresh ones)."""


class Dispatch(Message, service=SERVICE):
    """Lease the due deliveries and start their attempts, as far as there is room in flight."""


class Record(Message, service=SERVICE):
    """Record the finished attempts: schedule each next attempt or end the delivery."""
