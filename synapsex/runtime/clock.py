"""Time, injectable: the runtime asks a :class:`Clock` for the time and for sleeps.

The real clock uses the event loop's monotonic time; ``synapsex.runtime.testing.FakeClock``
advances only when a test says so, which makes backoff and timeouts testable without waiting.
"""

from __future__ import annotations

import asyncio
import random
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; cancellable."""
        ...

    def random(self) -> float:
        """A float in [0, 1) for jitter."""
        ...


class SystemClock:
    """The event loop's clock and :func:`asyncio.sleep`."""

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def random(self) -> float:
        return random.random()
