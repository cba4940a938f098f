"""Messages the webhook-service sends itself (not part of its public contract)."""

from __future__ import annotations

from synapsex.contracts.message import Message
from synapsex.contracts.webhooks import SERVICE


class Pump(Message, service=SERVICE):
    """Turn claimed events into deliveries and start the due attempts."""


class AttemptsDone(Message, service=SERVICE):
    """Attempts finished (their results wait in the actor): record them, start the next."""
