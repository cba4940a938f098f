"""The runtime: boots services, routes their messages, supervises them, stops them in order.

::

    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo]) as rt:
        assert await rt.ask(Ping(text="hi"), timeout=1.0) == "hi"

States: ``NEW`` → ``STARTING`` → ``RUNNING`` → ``STOPPING`` → ``STOPPED``; a supervisor that gives
up sends it to ``FAILED`` (not ready, stopped in order). A runtime does not start twice. Messages
sent before start or after stop are answered with :class:`Unavailable`.

Waiting rules: ``tell`` waits for room in a full mailbox (backpressure); ``tell_nowait`` never
waits. ``ask`` waits for room only when called from inside a handler; callers outside the runtime
(the gateway) get :class:`Unavailable` at once when the mailbox is full. Every ask has a deadline:
its ``timeout`` (default 5 s), never later than the deadline of the handler that asks.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from synapsex.config.errors import ConfigError
from synapsex.config.settings import Settings
from synapsex.contracts.errors import Conflict, NotFound, Timeout, Unavailable
from synapsex.contracts.message import Message, message_class
from synapsex.runtime.actor import Actor
from synapsex.runtime.broadcast import Broadcast
from synapsex.runtime.cell import ActorState, Cell
from synapsex.runtime.clock import Clock, SystemClock
from synapsex.runtime.deadletters import (
    DeadLetter,
    DeadLetterStore,
    MemoryDeadLetters,
    SqlDeadLetters,
)
from synapsex.runtime.deadlines import Deadlines
from synapsex.runtime.envelope import Envelope, current_envelope
from synapsex.runtime.errors import AskCycle
from synapsex.runtime.metrics import ActorStatistics, render_prometheus
from synapsex.runtime.persistence import ServiceDatabase
from synapsex.runtime.registry import load_services
from synapsex.runtime.spans import SpanBuffer, tracing_enabled
from synapsex.runtime.supervisor import Supervisor, SupervisorPolicy

log = structlog.get_logger("synapsex.runtime")

DEFAULT_ASK_TIMEOUT = 5.0
DEFAULT_DRAIN_TIMEOUT = 10.0


class RuntimeState(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class PendingMigrations(Exception):
    """The database has migrations that were not applied (and applying was not allowed)."""

    def __init__(self, pending: dict[str, list[str]]) -> None:
        names = "; ".join(f"{svc}: {', '.join(m)}" for svc, m in pending.items())
        super().__init__(f"pending migrations ({names}); run `synapsex migrate` first")
        self.pending = pending


PendingMigrations.__module__ = "synapsex.runtime"


class Runtime:
    """Runs a set of actors. Use ``async with`` (or ``start()`` / ``stop()``)."""

    def __init__(
        self,
        actors: Sequence[type[Actor]],
        *,
        settings: Settings | None = None,
        policy: SupervisorPolicy | None = None,
        clock: Clock | None = None,
        ask_timeout: float = DEFAULT_ASK_TIMEOUT,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        migrate: bool | None = None,
        spans: SpanBuffer | None = None,
    ) -> None:
        """``migrate``: ``True`` applies pending migrations, ``False`` refuses to start with
        any, ``None`` applies them on SQLite and refuses on PostgreSQL. ``spans``: where traced
        messages are recorded (default: a buffer of 10,000, on unless ``SYNAPSEX_TRACING`` is
        false)."""
        names = [a.actor_spec.service for a in actors]
        if len(set(names)) != len(names):
            raise ValueError(f"a service appears twice: {names}")
        self.settings = settings or Settings.from_env()
        self.policy = policy or SupervisorPolicy()
        self.clock: Clock = clock or SystemClock()
        self.ask_timeout = ask_timeout
        self.drain_timeout = drain_timeout
        self._migrate = migrate
        self._actors = list(actors)
        self._cells: dict[str, Cell] = {}
        self._supervisor: Supervisor | None = None
        self._databases: list[ServiceDatabase] = []
        self.state = RuntimeState.NEW
        self.failure: str | None = None
        self._accepting = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: Deadlines | None = None
        self._stopped: asyncio.Event | None = None
        self._stop_task: asyncio.Task[None] | None = None
        #: live in-process streams (subscriptions) beside the mailboxes
        self.broadcast = Broadcast()
        #: spans of traced messages, waiting for the observability-service to store them
        self.spans = (
            spans
            if spans is not None
            else SpanBuffer(enabled=tracing_enabled(self.settings.environ))
        )

    @classmethod
    def embedded(
        cls,
        *,
        data_dir: Path | str,
        actors: Sequence[type[Actor]] | None = None,
        services: Sequence[str] | None = None,
        environ: dict[str, str] | None = None,
        **options: Any,
    ) -> Runtime:
        """A runtime for tests and embedding: SQLite files in ``data_dir`` (unless ``environ``
        gives database URLs), migrations applied, in the caller's event loop.

        ``actors`` and ``services`` choose what runs; with neither, every registered service.
        """
        chosen = list(actors or [])
        if services is not None or actors is None:
            chosen += load_services(list(services) if services is not None else None)
        env = dict(environ or {})
        env.setdefault("SYNAPSEX_DATA_DIR", str(data_dir))
        options.setdefault("migrate", True)
        return cls(chosen, settings=Settings.from_env(env).with_data_dir(data_dir), **options)

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ lifecycle

    @property
    def services(self) -> list[str]:
        return [a.actor_spec.service for a in self._actors]

    def databases(self) -> list[ServiceDatabase]:
        """The databases of the services that have models (not yet opened)."""
        return [
            ServiceDatabase(
                a.actor_spec.service,
                self.settings.database(a.actor_spec.service),
                a.actor_spec.models,
                a.actor_spec.migrations,
            )
            for a in self._actors
            if a.actor_spec.models
        ]

    async def start(self) -> None:
        """Open databases, apply or check migrations, start every actor in order.

        Raises :class:`ConfigError` (bad URL, unreachable database, a setting an actor's
        ``on_start`` refused), :class:`PendingMigrations`,
        or ``RuntimeError`` naming an actor whose ``on_start`` failed; nothing is left running.
        """
        if self.state is not RuntimeState.NEW:
            raise RuntimeError(f"a runtime starts once (it is {self.state.value})")
        self.state = RuntimeState.STARTING
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        try:
            await self._open_databases()
            self._make_cells()
            assert self._supervisor is not None
            self._accepting = True
            await self._supervisor.start()
            broken = [c for c in self._cells.values() if c.state is not ActorState.RUNNING]
            for cell in broken:  # a bad setting is the user's to fix: say which one
                if isinstance(cell.start_error, ConfigError):
                    raise cell.start_error
            if broken:
                raise RuntimeError(
                    f"actors failed to start: {', '.join(c.service for c in broken)}"
                )
        except BaseException:
            await self._shutdown(RuntimeState.STOPPED)
            raise
        self.state = RuntimeState.RUNNING
        log.info("runtime started", services=self.services)

    async def _open_databases(self) -> None:
        dbs = self.databases()
        self._databases = dbs
        results = await asyncio.gather(*(db.open() for db in dbs), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        pending: dict[str, list[str]] = {}
        for db in dbs:
            names = await db.pending_migrations()
            if not names:
                continue
            apply = self._migrate if self._migrate is not None else db.config.is_sqlite
            if not apply:
                pending[db.service] = names
                continue
            await db.migrate()
        if pending:
            raise PendingMigrations(pending)
        for db in dbs:
            await SqlDeadLetters(db).ensure_table()

    def _make_cells(self) -> None:
        by_service = {db.service: db for db in self._databases}
        cells = []
        for actor_cls in self._actors:
            db = by_service.get(actor_cls.actor_spec.service)
            store: DeadLetterStore = SqlDeadLetters(db) if db else MemoryDeadLetters()
            cells.append(Cell(actor_cls, self, db, store))
        self._cells = {c.service: c for c in cells}
        self._supervisor = Supervisor(cells, self.policy, self.clock, self._escalate)

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Stop intake, drain mailboxes up to ``drain_timeout``, stop actors in reverse start
        order, keep what was not handled as dead letters (tells) or answer it ``Unavailable``
        (asks), close the databases. Safe to call more than once; concurrent calls wait for the
        first."""
        if self.state in (RuntimeState.NEW, RuntimeState.STOPPED):
            self.state = RuntimeState.STOPPED
            return
        if self._stop_task is None:
            final = RuntimeState.FAILED if self.failure else RuntimeState.STOPPED
            self._stop_task = asyncio.ensure_future(self._shutdown(final, drain_timeout))
        await asyncio.shield(self._stop_task)

    async def _shutdown(self, final: RuntimeState, drain_timeout: float | None = None) -> None:
        self.state = RuntimeState.STOPPING
        self._accepting = False
        self.broadcast.close()
        supervisor = self._supervisor
        if supervisor is not None:
            timeout = self.drain_timeout if drain_timeout is None else drain_timeout
            await supervisor.stop(timeout)
            for cell in self._cells.values():
                cell.mailbox.close("stopped")
                if cell.interrupted is not None and not cell.interrupted.is_ask:
                    await supervisor.dead_letter(cell, cell.interrupted, "interrupted by shutdown")
                while (env := cell.mailbox.get_nowait()) is not None:
                    await supervisor.fail_undelivered(cell, env, "not handled before shutdown")
            await supervisor.settle()
        for db in self._databases:
            await db.aclose()
        self.state = final
        if self._stopped is not None:
            self._stopped.set()
        log.info("runtime stopped", state=final.value, failure=self.failure)

    async def _escalate(self, reason: str) -> None:
        self.failure = reason
        await self.stop()

    async def wait_stopped(self) -> None:
        """Wait until the runtime has stopped (after ``stop()`` or an escalation)."""
        if self._stopped is None:
            return
        await self._stopped.wait()

    @property
    def ready(self) -> bool:
        return self.state is RuntimeState.RUNNING and not self.not_ready()

    def not_ready(self) -> list[str]:
        """Services that are not running (restarting, stopped or failed)."""
        return [s for s, c in self._cells.items() if c.state is not ActorState.RUNNING]

    # ------------------------------------------------------------------ messaging

    def _cell_for(self, message: Message, parent: Envelope | None) -> Cell:
        cell = self._cells.get(message.service)
        if cell is None:
            raise Unavailable(f"{message.service} is not running here", service=message.service)
        if parent is None and not self._accepting:
            raise Unavailable(f"the runtime is {self.state.value}", service=message.service)
        return cell

    async def ask(
        self,
        message: Message,
        *,
        timeout: float | None = None,
        wait_for_room: bool | None = None,
        trace_id: str | None = None,
    ) -> Any:
        """Send ``message`` to its service and wait for the reply.

        Raises the contract error the handler raised, :class:`ServiceFailure` when it crashed,
        :class:`Timeout` past the deadline (a late reply is dropped), :class:`Unavailable` when the
        service is not running or (for callers outside the runtime) its mailbox is full, and
        :class:`AskCycle` when the service already waits higher up in this call chain.
        Cancelling the caller withdraws the ask: the actor skips it if it has not started it.
        """
        parent = current_envelope.get()
        if not isinstance(parent, Envelope):
            parent = None
        cell = self._cell_for(message, parent)
        service = cell.service
        loop = self._loop or asyncio.get_running_loop()
        deadline = loop.time() + (self.ask_timeout if timeout is None else timeout)
        if parent is not None:
            if service == parent.service or service in parent.chain:
                raise AskCycle((*parent.chain, parent.service, service))
            if parent.deadline is not None and parent.deadline < deadline:
                deadline = parent.deadline
        reply: asyncio.Future[Any] = loop.create_future()
        envelope = Envelope(
            message,
            service=service,
            reply=reply,
            deadline=deadline,
            parent=parent,
            sender=parent.service if parent is not None else None,
            trace_id=trace_id,
        )
        if wait_for_room is None:
            wait_for_room = parent is not None
        if wait_for_room and len(cell.mailbox) >= cell.mailbox.capacity:
            try:
                await asyncio.wait_for(cell.mailbox.put(envelope), deadline - loop.time())
            except TimeoutError:
                raise Timeout(
                    f"{service} had no room before the deadline", service=service
                ) from None
        else:
            cell.mailbox.put_nowait(envelope)
        deadlines = self._deadlines
        if deadlines is None:
            deadlines = self._deadlines = Deadlines(loop)
        bucket = deadlines.add(deadline, reply, service, type(message).__name__)
        try:
            return await reply
        finally:
            deadlines.discard(bucket, reply)

    async def tell(self, message: Message, *, trace_id: str | None = None) -> None:
        """Send ``message`` without waiting for a reply; waits for room in a full mailbox."""
        cell, envelope = self._tell_envelope(message, trace_id)
        await cell.mailbox.put(envelope)

    def tell_nowait(self, message: Message, *, trace_id: str | None = None) -> None:
        """Send ``message`` without waiting; :class:`Unavailable` when the mailbox is full."""
        cell, envelope = self._tell_envelope(message, trace_id)
        cell.mailbox.put_nowait(envelope)

    def _tell_envelope(self, message: Message, trace_id: str | None) -> tuple[Cell, Envelope]:
        parent = current_envelope.get()
        if not isinstance(parent, Envelope):
            parent = None
        cell = self._cell_for(message, parent)
        envelope = Envelope(
            message,
            service=cell.service,
            reply=None,
            deadline=None,
            parent=parent,
            sender=parent.service if parent is not None else None,
            trace_id=trace_id,
        )
        envelope.chain = ()  # nobody waits on a tell, so it cannot close a cycle
        return cell, envelope

    # ------------------------------------------------------------------ dead letters

    def _cell(self, service: str) -> Cell:
        cell = self._cells.get(service)
        if cell is None:
            raise NotFound(f"no service {service!r} in this runtime", service=service)
        return cell

    async def dead_letters(self, service: str, *, limit: int = 100) -> list[DeadLetter]:
        """The dead letters of ``service``, oldest first."""
        return await self._cell(service).dead_letters.list(limit)

    async def dead_letter(self, service: str, letter_id: str) -> DeadLetter:
        """One dead letter; :class:`NotFound` when there is none with that id."""
        letter = await self._cell(service).dead_letters.get(letter_id)
        if letter is None:
            raise NotFound(f"no dead letter {letter_id!r} in {service}", id=letter_id)
        return letter

    async def redrive(self, service: str, letter_id: str) -> None:
        """Send a dead letter's message again (as a tell) and remove it from the dead letters.

        Raises :class:`Conflict` for a message whose secret fields were redacted.
        """
        cell = self._cell(service)
        letter = await self.dead_letter(service, letter_id)
        if letter.redacted:
            raise Conflict(f"dead letter {letter_id} has redacted secret fields", id=letter_id)
        message = message_class(letter.message_type)(**letter.payload)
        envelope = Envelope(
            message,
            service=service,
            reply=None,
            deadline=None,
            parent=None,
            sender="redrive",
            trace_id=letter.trace_id,
            correlation_id=letter.correlation_id,
        )
        await cell.mailbox.put(envelope)
        await cell.dead_letters.delete(letter_id)
        log.info("dead letter redriven", service=service, dead_letter_id=letter_id)

    async def discard_dead_letter(self, service: str, letter_id: str) -> None:
        """Delete a dead letter for good."""
        if not await self._cell(service).dead_letters.delete(letter_id):
            raise NotFound(f"no dead letter {letter_id!r} in {service}", id=letter_id)

    # ------------------------------------------------------------------ observability

    def statistics(self) -> list[ActorStatistics]:
        """A snapshot of every actor, in start order."""
        return [c.statistics() for c in self._cells.values()]

    def metrics_text(self) -> str:
        """Per-actor metrics and the span buffer's counters in the Prometheus text format."""
        return render_prometheus(self.statistics()) + self.spans.render_prometheus()
