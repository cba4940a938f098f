"""Bounded mailboxes: backpressure for ``put``, an immediate refusal for ``put_nowait``.

A mailbox belongs to the supervisor's child, not to one actor instance, so messages waiting in it
survive a restart. A message being retried after a crash goes to the front (``put_retry``).
"""

from __future__ import annotations

import asyncio
from collections import deque

from synapsex.contracts.errors import Unavailable
from synapsex.runtime.envelope import Envelope

DEFAULT_CAPACITY = 1000


class Mailbox:
    """An ``asyncio.Queue`` of envelopes plus a retry lane that is read first."""

    __slots__ = ("_closed_reason", "_queue", "_retry", "capacity", "service")

    def __init__(self, service: str, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("mailbox capacity must be at least 1")
        self.service = service
        self.capacity = capacity
        self._queue: asyncio.Queue[Envelope] = asyncio.Queue(capacity)
        self._retry: deque[Envelope] = deque()
        self._closed_reason: str | None = None

    def __len__(self) -> int:
        return self._queue.qsize() + len(self._retry)

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    def close(self, reason: str) -> None:
        """Refuse new messages from now on; those already queued stay."""
        self._closed_reason = reason

    def put_nowait(self, envelope: Envelope) -> None:
        """Enqueue or raise :class:`Unavailable` at once (closed or full). Does not wait."""
        if self._closed_reason is not None:
            raise Unavailable(f"{self.service} is {self._closed_reason}", service=self.service)
        try:
            self._queue.put_nowait(envelope)
        except asyncio.QueueFull:
            raise Unavailable(
                f"{self.service} is busy (mailbox full)", service=self.service
            ) from None

    async def put(self, envelope: Envelope) -> None:
        """Enqueue, waiting for room (backpressure). Raises :class:`Unavailable` when closed."""
        if self._closed_reason is not None:
            raise Unavailable(f"{self.service} is {self._closed_reason}", service=self.service)
        await self._queue.put(envelope)

    def put_retry(self, envelope: Envelope) -> None:
        """Put a message back at the front, ignoring the bound (it was already admitted)."""
        self._retry.appendleft(envelope)

    async def get(self) -> Envelope:
        """The next envelope, waiting for one. Cancellation loses nothing."""
        if self._retry:
            return self._retry.popleft()
        return await self._queue.get()

    def get_nowait(self) -> Envelope | None:
        """The next envelope, or ``None`` when empty."""
        if self._retry:
            return self._retry.popleft()
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
