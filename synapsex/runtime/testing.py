"""The test kit: a fake clock, waiting on conditions, raw SQL on a service's database.

Use it in your own tests as we do in ours::

    from synapsex.runtime.testing import FakeClock, wait_until

    clock = FakeClock()
    async with Runtime.embedded(data_dir=tmp_path, actors=[Flaky], clock=clock) as rt:
        ...
        await clock.advance(1.0)              # wakes sleepers whose time has come
        await wait_until(lambda: rt.ready)    # polls the condition, fails after a deadline
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synapsex.runtime.system import Runtime

DEFAULT_DEADLINE = 5.0


class FakeClock:
    """A clock that moves only when told. ``sleep`` waits for :meth:`advance`.

    ``random`` returns ``jitter_value`` (default 0.5: no jitter) so backoff delays are exact.
    """

    def __init__(self, start: float = 1000.0, jitter_value: float = 0.5) -> None:
        self.now = start
        self.jitter_value = jitter_value
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.sleeps: list[float] = []  # every requested delay, in order

    def monotonic(self) -> float:
        return self.now

    def random(self) -> float:
        return self.jitter_value

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), fut))
        await fut

    @property
    def sleeping(self) -> int:
        """How many sleeps are waiting."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        self.now += seconds
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
        for _ in range(5):  # let the woken tasks run
            await asyncio.sleep(0)


async def wait_until(
    condition: Callable[[], Any | Awaitable[Any]],
    *,
    deadline: float = DEFAULT_DEADLINE,
    message: str | None = None,
) -> Any:
    """Poll ``condition`` (sync or async) until it is truthy; return its value.

    Raises ``AssertionError`` after ``deadline`` seconds with ``message`` (or the condition's
    source). Between polls it yields to the loop for a millisecond: this is waiting on a
    condition with a deadline, not sleeping as synchronisation.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            what = message or _describe(condition)
            raise AssertionError(f"condition not met within {deadline}s: {what}")
        await asyncio.sleep(0.001)


def _describe(fn: Callable[..., Any]) -> str:
    try:
        return inspect.getsource(fn).strip()
    except (OSError, TypeError):
        return repr(fn)


@asynccontextmanager
async def raw_sql(
    rt: Runtime, service: str
) -> AsyncIterator[Callable[..., Awaitable[list[dict[str, Any]]]]]:
    """A connection of its own to ``service``'s database, to look at or change rows behind
    the actor's back; yields ``run(sql, *values)`` (``?`` placeholders on both engines), which
    returns the rows as dicts."""
    (db,) = [d for d in rt.databases() if d.service == service]
    await db.open()

    async def run(sql: str, *values: Any) -> list[dict[str, Any]]:
        if not db.config.is_sqlite:
            from synapsex.runtime.orm import numbered_placeholders

            sql = numbered_placeholders(sql)
        return await db.client().execute_query_dict(sql, list(values))

    try:
        yield run
    finally:
        await db.aclose()
