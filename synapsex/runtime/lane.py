"""A lane: one kind of work an actor sends itself, run one at a time, requests coalesced.

An actor that wakes itself (a timer, a finished task, a commit announcement) asks the lane;
the lane tells the actor its message at most once at a time (never a second while one waits in
the mailbox), and the message's handler runs the work through the lane::

    self._intake = Lane(self.actor_runtime, Pump)
    self._intake.request()  # from anywhere in the actor's process; never waits

    @handler(concurrent=True)
    async def pump(self, msg: Pump) -> None:
        await self._intake.run(self._take_events)

A request that arrives while the work runs makes it run once more afterwards, so no request is
lost, and the work never overlaps itself. With ``concurrent=True`` handlers, the actor's
different lanes may overlap one another (each still one at a time).

A request made while the mailbox is full (or the actor is stopping) is dropped: the actor's own
periodic request (its timer) must cover that case.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from synapsex.contracts.errors import ContractError
from synapsex.contracts.message import Message

if TYPE_CHECKING:
    from synapsex.runtime.system import Runtime


class Lane:
    """See the module docstring."""

    def __init__(self, runtime: Runtime, message: Callable[[], Message]) -> None:
        self._runtime = runtime
        self._message = message
        self._queued = False
        self._running = False
        self._again = False

    @property
    def running(self) -> bool:
        return self._running

    def request(self) -> None:
        """Have the work run soon: tell the actor, unless a message is already on its way or
        the work is running (then it runs once more when done)."""
        if self._queued:
            return
        if self._running:
            self._again = True
            return
        try:
            self._runtime.tell_nowait(self._message())
        except ContractError:
            return  # full or stopping: the actor's timer asks again
        self._queued = True

    async def run(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Run ``work`` now, from the lane's handler, unless it is already running (then once
        more after it)."""
        self._queued = False
        if self._running:
            self._again = True
            return
        self._running = True
        try:
            await work()
        finally:
            self._running = False
            if self._again:
                self._again = False
                self.request()
