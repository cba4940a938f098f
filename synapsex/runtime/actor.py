"""The :class:`Actor` base class and the :func:`handler` decorator.

::

    class Echo(Actor, service="echo-service"):
        @handler
        async def ping(self, msg: Ping) -> str:
            return msg.text

A subclass names its service and, when it owns tables, its Tortoise models module
(``models="synapsex.actors.tenant.models"``; migrations default to the sibling ``migrations``
package). Handlers are found by the type annotation of their message parameter. Framework
attributes carry the ``actor_`` prefix so a service's own names never collide with them.

Lifecycle hooks, both run in the actor's own task with its database context active:

* ``on_start()`` runs before the first message; if it raises, the start counts as a crash.
* ``on_stop()`` runs after the last message of a graceful stop; what it raises is logged.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from synapsex.contracts.message import Message
from synapsex.runtime.mailbox import DEFAULT_CAPACITY

if TYPE_CHECKING:
    from synapsex.runtime.persistence import ServiceDatabase
    from synapsex.runtime.system import Runtime

RestartType = Literal["permanent", "transient", "temporary"]
HandlerFn = Callable[[Any, Any], Awaitable[Any]]
F = TypeVar("F", bound=HandlerFn)


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    name: str
    message_type: type[Message]
    #: may overlap with the actor's other concurrent handlers (see :func:`handler`)
    concurrent: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorSpec:
    """How the runtime runs one actor class."""

    service: str
    #: the Tortoise models module; ``None`` means the actor needs no database
    models: str | None
    migrations: str | None
    #: how many read-only handlers may run at once (1 = strictly one message at a time)
    concurrency: int
    mailbox_capacity: int
    restart: RestartType
    #: how often a ``tell`` that crashed the actor is retried before it is dead-lettered
    max_retries: int


def handler(fn: F | None = None, *, read_only: bool = False, concurrent: bool = False) -> Any:
    """Mark a method as the handler of the message type its parameter is annotated with.

    When the actor declares ``concurrency`` above 1, handlers marked ``read_only=True`` or
    ``concurrent=True`` run side by side (up to that many at once); any other handler waits until
    they are done and runs alone. ``read_only`` is for handlers that change nothing.
    ``concurrent`` is for writes whose consistency the database guarantees by itself (one
    conditional statement, row locks, ``SKIP LOCKED``), never the actor's turn: they must not
    read-then-write the actor's own state.
    """

    def mark(f: F) -> F:
        f._sx_handler = read_only or concurrent  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


class Actor:
    """Base class of every service actor. See the module docstring."""

    actor_spec: ClassVar[ActorSpec]
    actor_handlers: ClassVar[dict[type[Message], HandlerInfo]]

    #: the runtime this instance runs in (set before ``on_start``)
    actor_runtime: Runtime
    #: the service's database; ``None`` when the actor has no models
    actor_db: ServiceDatabase | None

    def __init_subclass__(
        cls,
        *,
        service: str | None = None,
        models: str | None = None,
        migrations: str | None = None,
        concurrency: int = 1,
        mailbox_capacity: int = DEFAULT_CAPACITY,
        restart: RestartType = "permanent",
        max_retries: int = 1,
        **kw: Any,
    ) -> None:
        super().__init_subclass__(**kw)
        if service is None:
            raise TypeError(f"{cls.__qualname__} needs service=: class X(Actor, service=...)")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if models and migrations is None:
            migrations = models.rpartition(".")[0] + ".migrations"
        cls.actor_spec = ActorSpec(
            service=service,
            models=models,
            migrations=migrations,
            concurrency=concurrency,
            mailbox_capacity=mailbox_capacity,
            restart=restart,
            max_retries=max_retries,
        )
        cls.actor_handlers = _collect_handlers(cls)

    def __init__(self, runtime: Runtime, db: ServiceDatabase | None) -> None:
        self.actor_runtime = runtime
        self.actor_db = db
        self._actor_stop_requested = False

    async def on_start(self) -> None:
        """Hook: prepare state before the first message (runs in the actor's task)."""

    async def on_stop(self) -> None:
        """Hook: release what ``on_start`` took (runs in the actor's task)."""

    def actor_stop(self) -> None:
        """Ask for a normal exit after the current message (``transient`` children stay down)."""
        self._actor_stop_requested = True


def _collect_handlers(cls: type) -> dict[type[Message], HandlerInfo]:
    found: dict[type[Message], HandlerInfo] = {}
    for klass in reversed(cls.__mro__):
        for name, fn in vars(klass).items():
            concurrent = getattr(fn, "_sx_handler", None)
            if concurrent is None:
                continue
            try:
                hints = typing.get_type_hints(fn)
            except NameError as exc:
                raise TypeError(
                    f"{cls.__qualname__}.{name}: cannot resolve its annotations ({exc}); "
                    "define message types at module level"
                ) from None
            params = [p for p in hints if p != "return"]
            if len(params) != 1 or not (
                isinstance(hints[params[0]], type) and issubclass(hints[params[0]], Message)
            ):
                raise TypeError(
                    f"{cls.__qualname__}.{name}: a handler takes one annotated Message parameter"
                )
            msg_type = hints[params[0]]
            if msg_type.service != cls.actor_spec.service:  # type: ignore[attr-defined]
                raise TypeError(
                    f"{cls.__qualname__}.{name} handles {msg_type.__name__}, which belongs to "
                    f"{msg_type.service}, not {cls.actor_spec.service}"  # type: ignore[attr-defined]
                )
            found[msg_type] = HandlerInfo(name=name, message_type=msg_type, concurrent=concurrent)
    return found
