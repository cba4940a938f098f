"""Ask deadlines, bucketed: one loop timer per 10 ms of deadlines instead of one per ask.

A timer per ask costs a heap push and a cancelled entry on the event loop's heap for every round
trip, which dominated the runtime's overhead under many concurrent askers. Asks whose deadlines
fall in the same 10 ms bucket share one timer; a timeout therefore fires up to 10 ms late, never
early.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from synapsex.contracts.errors import Timeout

RESOLUTION = 0.01


class Deadlines:
    """Fails pending asks with :class:`Timeout` once their deadline has passed."""

    __slots__ = ("_buckets", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buckets: dict[int, dict[asyncio.Future[Any], tuple[str, str]]] = {}

    def add(self, deadline: float, reply: asyncio.Future[Any], service: str, what: str) -> int:
        """Watch ``reply``; returns the bucket to pass to :meth:`discard`."""
        key = math.ceil(deadline / RESOLUTION)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = {}
            self._loop.call_at(key * RESOLUTION, self._expire, key)
        bucket[reply] = (service, what)
        return key

    def discard(self, key: int, reply: asyncio.Future[Any]) -> None:
        """Stop watching ``reply`` (it was answered or withdrawn)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.pop(reply, None)

    def _expire(self, key: int) -> None:
        for reply, (service, what) in self._buckets.pop(key, {}).items():
            if not reply.done():
                reply.set_exception(
                    Timeout(f"{service} did not answer {what} in time", service=service)
                )
