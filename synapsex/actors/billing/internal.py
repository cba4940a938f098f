"""Messages the billing-service sends itself (not part of its public contract)."""

from __future__ import annotations

from synapsex.contracts.billing import SERVICE
from synapsex.contracts.message import Message


class Pump(Message, service=SERVICE):
    """Record the usage events claimed from the tenants' streams."""
