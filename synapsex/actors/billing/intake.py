"""Usage events: what a ``usage.recorded`` event on a tenant's stream means as a report.

The payload is ``{"kind", "quantity", "model"?, "at"?, "idempotencyKey"?}`` (see
``docs/billing.md``). The event id is the idempotency key unless the payload names one, so an
event delivered twice (at-least-once) is recorded once, and a publisher that also reports the
same usage another way can make both count once by giving the same key.

Events published through the gateway (source ``apikey:…``) are not usage: users report usage
through ``recordUsage``, which the ``usage.record`` policy guards; publishing an event needs
only ``event.publish``.
"""

from __future__ import annotations

from datetime import datetime

from synapsex.contracts.billing import RecordUsage
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.events import EventView

#: sources that are callers of the gateway, not services
GATEWAY_SOURCE_PREFIX = "apikey:"


def usage_from_event(event: EventView) -> RecordUsage | None:
    """The report an event carries; ``None`` for an event published through the gateway.
    ``InvalidInput`` naming the payload field at fault."""
    if event.source.startswith(GATEWAY_SOURCE_PREFIX):
        return None
    payload = event.payload
    if not isinstance(payload, dict):
        raise InvalidInput("payload", "must be a JSON object")
    at = payload.get("at")
    if at is None:
        at = event.occurred_at
    elif isinstance(at, str):
        try:
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput("at", "must be an ISO 8601 time") from None
    else:
        raise InvalidInput("at", "must be an ISO 8601 time")
    return RecordUsage(
        tenant_id=event.tenant_id,
        kind=payload.get("kind"),  # type: ignore[arg-type]  # checked by the message
        quantity=payload.get("quantity"),  # type: ignore[arg-type]
        model=payload.get("model"),
        at=at,
        idempotency_key=payload.get("idempotencyKey") or event.id,
        source=event.source,
    )
