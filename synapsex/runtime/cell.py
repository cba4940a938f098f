"""A supervised child: one actor class, its mailbox, its counters and the task running it.

The cell outlives actor instances: a restart creates a new instance that reads the same
mailbox. The loop is turn-based: the next message starts only when the handler returns, except
that concurrent handlers (read-only ones, or writes the database keeps consistent) may overlap up
to the actor's ``concurrency``; any other handler waits for them and runs alone.

How a handler's outcome is answered:

* a return value is the ask's reply (a tell's is dropped);
* a :class:`ContractError` is the ask's answer (a tell's is logged) and the actor keeps running;
* any other exception answers the ask with :class:`ServiceFailure` and ends the loop with
  :class:`Crash`, which the supervisor handles (dead letter or retry, then restart).

Each handled message is timed; a traced one (see :mod:`synapsex.runtime.spans`) also becomes a
span, status ``ERROR`` with the error's code when the handler raised (``INTERNAL`` for a crash,
``UNAVAILABLE`` when a stop cut it short), appended without waiting.
"""

from __future__ import annotations

import asyncio
import enum
import time
from typing import TYPE_CHECKING, Any

import structlog

from synapsex.contracts.errors import ContractError, ServiceFailure, Unavailable
from synapsex.runtime.actor import Actor, ActorSpec
from synapsex.runtime.envelope import Envelope, current_envelope
from synapsex.runtime.mailbox import Mailbox
from synapsex.runtime.metrics import ActorStatistics, Counters
from synapsex.runtime.spans import SpanRecord, message_attributes

if TYPE_CHECKING:
    from synapsex.runtime.deadletters import DeadLetterStore
    from synapsex.runtime.persistence import ServiceDatabase
    from synapsex.runtime.system import Runtime

log = structlog.get_logger("synapsex.runtime")


class ActorState(enum.Enum):
    """Where a child is in its life."""

    NEW = "new"  # created, never started
    STARTING = "starting"  # on_start running
    RUNNING = "running"  # taking messages
    RESTARTING = "restarting"  # crashed (or stopped for a sibling), waiting to start again
    STOPPING = "stopping"  # finishing its current message (and, when draining, its mailbox)
    STOPPED = "stopped"  # ended normally; will not start again unless told
    FAILED = "failed"  # crashed and not restarted (temporary child, or supervisor gave up)


class Crash(Exception):
    """The loop ended because a handler (or ``on_start``) raised unexpectedly."""

    def __init__(self, envelope: Envelope | None, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.envelope = envelope
        self.error = error


class Cell:
    """One supervised actor. Only the supervisor and the runtime use it."""

    def __init__(
        self,
        actor_cls: type[Actor],
        runtime: Runtime,
        db: ServiceDatabase | None,
        dead_letters: DeadLetterStore,
    ) -> None:
        self.actor_cls = actor_cls
        self.spec: ActorSpec = actor_cls.actor_spec
        self.service = self.spec.service
        self.runtime = runtime
        #: where the spans of traced messages go (see :mod:`synapsex.runtime.spans`)
        self.spans = runtime.spans
        self.db = db
        self.dead_letters = dead_letters
        self.mailbox = Mailbox(self.service, self.spec.mailbox_capacity)
        self.counters = Counters()
        self.state = ActorState.NEW
        self.task: asyncio.Task[None] | None = None
        self.started: asyncio.Future[None] | None = None
        #: what the last ``on_start`` raised, if it failed
        self.start_error: Exception | None = None
        self.interrupted: Envelope | None = None  # the message a hard stop cut short
        self._idle = False
        self._stop_after_current = False
        self._cancel_is_stop = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._inflight_crash: Crash | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> asyncio.Future[None]:
        """Start a new instance; the returned future resolves once ``on_start`` returned.

        If ``on_start`` raises, the future carries that error and the task ends with
        :class:`Crash` (the supervisor sees it like any crash).
        """
        loop = asyncio.get_running_loop()
        self.started = loop.create_future()
        self._stop_after_current = self._cancel_is_stop = False
        self.state = ActorState.STARTING
        self.task = loop.create_task(self._run(), name=f"actor:{self.service}")
        return self.started

    @property
    def is_idle(self) -> bool:
        """Nothing to do: not running, or waiting on an empty mailbox with nothing in flight."""
        if self.task is None or self.task.done():
            return True
        return self._idle and not self._inflight and len(self.mailbox) == 0

    def request_stop(self) -> None:
        """Ask the loop to end after the current message (at once when it is idle). What is
        still queued stays in the mailbox (the supervisor drains mailboxes before stopping)."""
        if self.task is None or self.task.done():
            return
        self.state = ActorState.STOPPING
        self._stop_after_current = True
        if self._idle:
            self._cancel_is_stop = True
            self.task.cancel()

    async def wait_stopped(self, timeout: float | None = None) -> bool:
        """Wait for the task to end; returns ``False`` on timeout (the task keeps running)."""
        task = self.task
        if task is None or task.done():
            return True
        done, _ = await asyncio.wait({task}, timeout=timeout)
        return bool(done)

    async def kill(self) -> None:
        """Cancel the task now (after a drain timed out); the cut message is kept in
        ``interrupted`` for the runtime to dead-letter."""
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    def statistics(self) -> ActorStatistics:
        c = self.counters
        return ActorStatistics(
            service=self.service,
            state=self.state.value,
            mailbox_depth=len(self.mailbox),
            mailbox_capacity=self.mailbox.capacity,
            handled=c.handled,
            errors=c.errors,
            failed=c.failed,
            expired=c.expired,
            restarts=c.restarts,
            handling_seconds=round(c.handling_seconds, 6),
        )

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        if self.db is not None:
            self.db.activate()
        started = self.started
        assert started is not None
        try:
            instance = self.actor_cls(self.runtime, self.db)
            await instance.on_start()
        except Exception as exc:
            log.exception("actor failed to start", service=self.service)
            self.start_error = exc
            if not started.done():
                started.set_exception(exc)
                started.exception()  # retrieved: the supervisor reads the task's Crash
            raise Crash(None, exc) from exc
        self.state = ActorState.RUNNING
        started.set_result(None)
        log.debug("actor started", service=self.service)
        try:
            await self._loop(instance)
        except asyncio.CancelledError:
            if not self._cancel_is_stop:
                raise
        finally:
            await self._wait_inflight()
        await self._on_stop(instance)

    async def _loop(self, instance: Actor) -> None:
        mailbox = self.mailbox
        methods = {t: getattr(instance, h.name) for t, h in self.actor_cls.actor_handlers.items()}
        overlapping = {t for t, h in self.actor_cls.actor_handlers.items() if h.concurrent}
        concurrent = self.spec.concurrency > 1 and bool(overlapping)
        slots = asyncio.Semaphore(self.spec.concurrency) if concurrent else None
        while not self._stop_after_current and not instance._actor_stop_requested:
            if self._inflight_crash is not None:
                raise self._inflight_crash
            envelope = mailbox.get_nowait()
            if envelope is None:
                self._idle = True
                try:
                    envelope = await mailbox.get()
                except asyncio.CancelledError:
                    if self._inflight_crash is not None and not self._cancel_is_stop:
                        raise self._inflight_crash from None
                    raise
                finally:
                    self._idle = False
            method = methods.get(type(envelope.message))
            if slots is not None and type(envelope.message) in overlapping:
                await slots.acquire()
                task = asyncio.create_task(self._handle_concurrently(method, envelope, slots))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                continue
            if self._inflight:
                await self._wait_inflight()
                if self._inflight_crash is not None:
                    mailbox.put_retry(envelope)  # not started: it loses nothing
                    raise self._inflight_crash
            await self._handle(method, envelope)

    async def _handle_concurrently(
        self, method: Any, envelope: Envelope, slots: asyncio.Semaphore
    ) -> None:
        try:
            await self._handle(method, envelope)
        except Crash as crash:
            self._inflight_crash = crash
            if self._idle and self.task is not None:
                self.task.cancel()  # wake the loop so it re-raises the crash
        finally:
            slots.release()

    async def _wait_inflight(self) -> None:
        if self._inflight:
            await asyncio.wait(set(self._inflight))

    async def _handle(self, method: Any, envelope: Envelope) -> None:
        reply = envelope.reply
        counters = self.counters
        if reply is not None and reply.done():
            counters.expired += 1  # the asker timed out or went away: nobody to answer
            return
        token = current_envelope.set(envelope)
        started = time.perf_counter()
        error_code: str | None = None
        done = True  # handled for good (answered or refused); else it is retried or kept
        try:
            if method is None:
                raise LookupError(f"{self.service} has no handler for {type(envelope.message)}")
            result = await method(envelope.message)
        except ContractError as exc:
            error_code = exc.code
            counters.handled += 1
            counters.errors += 1
            if reply is None:
                log.warning("tell refused", error_code=exc.code, error=exc.message)
            elif not reply.done():
                reply.set_exception(exc)
        except asyncio.CancelledError:
            error_code = Unavailable.code
            done = False
            self.interrupted = envelope
            if reply is not None and not reply.done():
                reply.set_exception(Unavailable(f"{self.service} stopped", service=self.service))
            raise
        except Exception as exc:
            error_code = ServiceFailure.code
            done = False
            counters.failed += 1
            log.exception("handler failed", error=f"{type(exc).__name__}: {exc}")
            if reply is not None and not reply.done():
                reply.set_exception(
                    ServiceFailure(
                        f"{self.service} failed to handle {type(envelope.message).__name__}",
                        reference=envelope.message_id,
                    )
                )
            raise Crash(envelope, exc) from exc
        else:
            counters.handled += 1
            if reply is not None and not reply.done():
                reply.set_result(result)
        finally:
            elapsed = time.perf_counter() - started
            counters.handling_seconds += elapsed
            current_envelope.reset(token)
            if envelope.traced and self.spans.traces(self.service):
                self._record_span(envelope, elapsed, error_code)
            if done:
                envelope.release()

    def _record_span(self, envelope: Envelope, elapsed: float, error_code: str | None) -> None:
        """Hand the span of a handled message to its request (or the buffer); never waits."""
        duration_us = int(elapsed * 1_000_000)
        span = SpanRecord(
            envelope.trace_id or envelope.trace(),
            envelope.span_id or envelope.span(),
            envelope.parent_span_id,
            self.service,
            envelope.message_type,
            time.time_ns() // 1000 - duration_us,
            duration_us,
            error_code,
            message_attributes("ask" if envelope.reply is not None else "tell", envelope.attempt),
        )
        scope = envelope.scope
        if scope is None:
            self.spans.offer(span)
        else:
            scope.record(span)

    async def _on_stop(self, instance: Actor) -> None:
        try:
            await instance.on_stop()
        except Exception:
            log.exception("on_stop failed", service=self.service)
