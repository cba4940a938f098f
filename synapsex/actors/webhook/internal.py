"""Messages the webhook-service sends itself (not part of its public contract)."""

from __future__ import annotations

from datetime import datetime

from synapsex.contracts.message import Message
from synapsex.contracts.webhooks import SERVICE


class Pump(Message, service=SERVICE):
    """Turn claimed events into deliveries and start the due attempts."""


class AttemptDone(Message, service=SERVICE):
    """How one POST of a delivery went."""

    delivery_id: str
    at: datetime
    status_code: int | None
    duration_ms: float
    error: str | None
    body_excerpt: str
    retry_after_seconds: float | None
    ok: bool
