"""Supervision with OTP's vocabulary, plus exponential backoff with jitter between restarts.

* Strategies: ``one_for_one`` restarts the crashed child; ``one_for_all`` stops the others
  (reverse start order) and restarts all; ``rest_for_one`` restarts the crashed child and
  those started after it.
* Restart types: ``permanent`` children always restart, ``transient`` ones only after a crash,
  ``temporary`` ones never.
* Intensity: more than ``intensity`` restarts within ``period`` seconds and the supervisor gives
  up and escalates (the runtime reports not ready and stops in order).
* Backoff: the n-th restart within the period waits ``min(max, min * 2**(n-1))``, scaled by a
  random factor in ``[1 - jitter, 1 + jitter]``.

What happens to the message that crashed a child: an ask was already answered with
``ServiceFailure``, so it goes to the dead letters at once; a tell is retried ``max_retries``
times (at the front of the mailbox) and then dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog

from synapsex.contracts.errors import Unavailable
from synapsex.runtime.cell import ActorState, Cell, Crash
from synapsex.runtime.clock import Clock
from synapsex.runtime.deadletters import dead_letter_from
from synapsex.runtime.envelope import Envelope

log = structlog.get_logger("synapsex.runtime")

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
STRATEGIES: tuple[str, ...] = ("one_for_one", "one_for_all", "rest_for_one")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Delay between restarts: exponential from ``min_seconds`` to ``max_seconds``, jittered."""

    min_seconds: float = 0.05
    max_seconds: float = 2.0
    jitter: float = 0.2

    def delay(self, nth: int, random: float) -> float:
        """The delay before the ``nth`` restart within the period (1-based)."""
        base = min(self.max_seconds, self.min_seconds * 2 ** max(0, nth - 1))
        return max(0.0, base * (1 + self.jitter * (2 * random - 1)))


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorPolicy:
    strategy: Strategy = "one_for_one"
    intensity: int = 3
    period: float = 5.0
    backoff: Backoff = Backoff()

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
        if self.intensity < 0 or self.period <= 0:
            raise ValueError("intensity must be >= 0 and period > 0")


class Supervisor:
    """Starts its cells in order, restarts them per its policy, stops them in reverse order."""

    def __init__(
        self,
        cells: Sequence[Cell],
        policy: SupervisorPolicy,
        clock: Clock,
        on_give_up: Callable[[str], Awaitable[None]],
    ) -> None:
        self.cells = list(cells)
        self.policy = policy
        self.clock = clock
        self._on_give_up = on_give_up
        self._restart_times: list[float] = []
        self._lock = asyncio.Lock()
        self._stopping = False
        self._gave_up = False
        self._escalation: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._restarts: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------------ start / stop

    async def start(self) -> None:
        """Start every cell in order, each after the previous one's ``on_start`` returned."""
        for cell in self.cells:
            await self._start_cell(cell)

    async def _start_cell(self, cell: Cell) -> None:
        started = cell.start()
        assert cell.task is not None
        cell.task.add_done_callback(lambda task, cell=cell: self._child_exited(cell, task))
        with contextlib.suppress(Exception):
            await started  # a failing on_start surfaces as a crash in _child_exited

    async def stop(self, drain_timeout: float) -> None:
        """Let every actor drain its mailbox (they keep running, so they may still ask each
        other) for up to ``drain_timeout`` seconds, then stop them one by one in reverse start
        order; an actor still busy past the deadline is cancelled."""
        self._stopping = True
        for task in list(self._restarts):
            task.cancel()
        deadline = self.clock.monotonic() + drain_timeout
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), drain_timeout)
        for cell in reversed(self.cells):
            cell.request_stop()
            remaining = max(0.0, deadline - self.clock.monotonic())
            if not await cell.wait_stopped(remaining):
                log.warning("drain timed out; stopping", service=cell.service)
                await cell.kill()
            if cell.state is not ActorState.FAILED:
                cell.state = ActorState.STOPPED

    async def _drained(self) -> None:
        # Polls: shutdown is rare, and a poll keeps the hot path free of notifications.
        while not all(cell.is_idle for cell in self.cells):  # noqa: ASYNC110
            await asyncio.sleep(0.005)

    # ------------------------------------------------------------------ failures

    def _child_exited(self, cell: Cell, task: asyncio.Task[None]) -> None:
        if task is not cell.task:
            return
        error = None if task.cancelled() else task.exception()
        if self._stopping or (cell.state is ActorState.STOPPING and error is None):
            return
        if cell.state is ActorState.RESTARTING and error is None:
            return  # stopped by us for a sibling's restart
        crashed = error is not None
        if isinstance(error, Crash) and error.envelope is not None:
            envelope = error.envelope
            if not envelope.is_ask and envelope.attempt <= cell.spec.max_retries:
                envelope.attempt += 1  # back to the front, before the restarted actor reads
                cell.mailbox.put_retry(envelope)
            else:
                self._spawn(self.dead_letter(cell, envelope, error.error))
        restart = cell.spec.restart
        if restart == "temporary" or (restart == "transient" and not crashed):
            cell.state = ActorState.FAILED if crashed else ActorState.STOPPED
            log.info("actor not restarted", service=cell.service, restart=restart)
            self._spawn(self._retire(cell))
            return
        cell.state = ActorState.RESTARTING
        restart_task = self._spawn(self._restart(cell))
        self._restarts.add(restart_task)
        restart_task.add_done_callback(self._restarts.discard)

    async def dead_letter(self, cell: Cell, envelope: Envelope, error: BaseException | str) -> None:
        letter = dead_letter_from(envelope, error)
        try:
            await cell.dead_letters.add(letter)
        except Exception:
            log.exception("could not store dead letter", service=cell.service, letter=letter.id)
            return
        log.warning(
            "message dead-lettered",
            service=cell.service,
            dead_letter_id=letter.id,
            message_type=letter.message_type,
            error=letter.error,
        )

    async def _retire(self, cell: Cell) -> None:
        """A child that will not run again: refuse new messages, answer or keep queued ones."""
        cell.mailbox.close("stopped")
        while (envelope := cell.mailbox.get_nowait()) is not None:
            await self.fail_undelivered(cell, envelope, "not handled: the actor stopped")

    async def fail_undelivered(self, cell: Cell, envelope: Envelope, reason: str) -> None:
        """Answer a waiting asker with ``Unavailable``, or keep a tell as a dead letter."""
        reply = envelope.reply
        if reply is not None:
            if not reply.done():
                reply.set_exception(Unavailable(f"{cell.service}: {reason}", service=cell.service))
        else:
            await self.dead_letter(cell, envelope, reason)

    async def _restart(self, failed: Cell) -> None:
        async with self._lock:
            if self._stopping or failed.state is not ActorState.RESTARTING:
                return
            now = self.clock.monotonic()
            window = [t for t in self._restart_times if now - t < self.policy.period]
            window.append(now)
            self._restart_times = window
            if len(window) > self.policy.intensity:
                await self._give_up(failed)
                return
            affected = self._affected(failed)
            for cell in reversed(affected):
                if cell is not failed and cell.state is ActorState.RUNNING:
                    cell.state = ActorState.RESTARTING
                    cell.request_stop()
                    cell.state = ActorState.RESTARTING
                    await cell.wait_stopped()
            delay = self.policy.backoff.delay(len(window), self.clock.random())
            log.warning(
                "restarting",
                service=failed.service,
                strategy=self.policy.strategy,
                restarts=[c.service for c in affected],
                delay_seconds=round(delay, 3),
            )
            await self.clock.sleep(delay)
            for cell in affected:
                if self._stopping:
                    return
                cell.counters.restarts += 1
                await self._start_cell(cell)

    def _affected(self, failed: Cell) -> list[Cell]:
        if self.policy.strategy == "one_for_all":
            return list(self.cells)
        if self.policy.strategy == "rest_for_one":
            return self.cells[self.cells.index(failed) :]
        return [failed]

    async def _give_up(self, failed: Cell) -> None:
        self._gave_up = True
        failed.state = ActorState.FAILED
        reason = (
            f"{failed.service} restarted more than {self.policy.intensity} times "
            f"in {self.policy.period:g}s"
        )
        log.critical("supervisor gave up", service=failed.service, reason=reason)
        # Not in self._tasks: escalation stops the runtime, which settles those tasks.
        self._escalation = asyncio.ensure_future(self._on_give_up(reason))

    @property
    def gave_up(self) -> bool:
        return self._gave_up

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def settle(self) -> None:
        """Wait for the supervisor's own background work (restarts, dead letters) to finish."""
        current = asyncio.current_task()
        while pending := {t for t in self._tasks if t is not current}:
            await asyncio.wait(pending)
