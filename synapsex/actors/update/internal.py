"""Messages the update-service sends itself (not part of its public contract)."""

from __future__ import annotations

from synapsex.contracts.message import Message
from synapsex.contracts.releases import SERVICE


class Evaluate(Message, service=SERVICE):
    """Evaluate the rollouts of the tenants due (heartbeats noted, or the periodic sweep)."""


class EvaluateTenant(Message, service=SERVICE):
    """Evaluate one tenant's active rollouts now (no debounce), and reply once done: tests
    use it to see an evaluation's outcome without waiting for a timer."""

    tenant_id: str
