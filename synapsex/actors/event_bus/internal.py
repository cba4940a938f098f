"""Messages the event bus sends itself (not part of its public contract)."""

from __future__ import annotations

from synapsex.contracts.events import SERVICE
from synapsex.contracts.message import Message


class StreamCommitted(Message, service=SERVICE):
    """Events ``first_seq..last_seq`` of a tenant were committed (by this or another process):
    announce what this process has not announced yet."""

    tenant_id: str
    first_seq: int
    last_seq: int


class Maintain(Message, service=SERVICE):
    """The once-a-second tick: catch live listeners up with the stream heads; prune."""
