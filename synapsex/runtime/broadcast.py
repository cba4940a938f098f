"""In-process fan-out of items to live listeners (the runtime's streams beside its mailboxes).

An actor announces items on a named channel; any number of listeners in the same process
receive them in order, each through its own bounded buffer::

    async with runtime.broadcast.listen("event-bus-service/events/ten_1") as items:
        async for item in items:
            ...

    runtime.broadcast.publish("event-bus-service/events/ten_1", item)

Publishing never waits: a listener that falls more than ``capacity`` items behind loses its
*oldest* buffered items (counted in :attr:`Listener.dropped`), so it still sees the newest ones and
can tell from them what it missed (the event stream carries consecutive ``seq`` numbers for that).
Closing the broadcast ends every listener's iteration.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

DEFAULT_CAPACITY = 1_000
_CLOSED = object()


class Listener:
    """One listener's buffer: an async iterator over the items published after it started."""

    def __init__(self, channel: str, capacity: int) -> None:
        self.channel = channel
        self.capacity = capacity
        #: items lost because this listener fell behind
        self.dropped = 0
        self._items: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def put(self, item: Any) -> None:
        if self._closed:
            return
        if len(self._items) >= self.capacity:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Any:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    async def next(self, timeout: float) -> Any:
        """The next item, or ``None`` after ``timeout`` seconds without one."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except (TimeoutError, StopAsyncIteration):
            return None


class Broadcast:
    """Named channels of in-process listeners. See the module docstring."""

    def __init__(self) -> None:
        self._channels: dict[str, set[Listener]] = {}
        self._closed = False

    def publish(self, channel: str, item: Any) -> int:
        """Hand ``item`` to every listener of ``channel``; returns how many there were."""
        listeners = self._channels.get(channel)
        if not listeners:
            return 0
        for listener in listeners:
            listener.put(item)
        return len(listeners)

    def has_listeners(self, channel: str) -> bool:
        return bool(self._channels.get(channel))

    def channels(self, prefix: str = "") -> Iterator[str]:
        """The channels that have listeners, optionally only those starting with ``prefix``."""
        return (c for c, ls in self._channels.items() if ls and c.startswith(prefix))

    @asynccontextmanager
    async def listen(
        self, channel: str, *, capacity: int = DEFAULT_CAPACITY
    ) -> AsyncIterator[Listener]:
        """Listen on ``channel`` for the duration of the ``async with`` block."""
        listener = Listener(channel, capacity)
        if self._closed:
            listener.close()
        self._channels.setdefault(channel, set()).add(listener)
        try:
            yield listener
        finally:
            listener.close()
            listeners = self._channels.get(channel)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._channels[channel]

    def close(self) -> None:
        """End every listener's iteration (the runtime is stopping)."""
        self._closed = True
        for listeners in self._channels.values():
            for listener in listeners:
                listener.close()
