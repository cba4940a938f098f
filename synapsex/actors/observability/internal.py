"""Messages the observability-service sends itself (not part of its public contract)."""

from __future__ import annotations

from synapsex.contracts.message import Message
from synapsex.contracts.telemetry import SERVICE


class StoreSpans(Message, service=SERVICE):
    """Take the runtime's buffered spans in batches and store each batch in one insert."""
