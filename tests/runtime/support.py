"""Small actors the runtime tests drive. Each test module builds what it needs from these."""

from __future__ import annotations

import asyncio
from typing import Any

from synapsex.contracts import Message
from synapsex.contracts.errors import Conflict
from synapsex.runtime import Actor, Backoff, SupervisorPolicy, current_envelope, handler

NO_BACKOFF = SupervisorPolicy(backoff=Backoff(min_seconds=0.0, max_seconds=0.0, jitter=0.0))


class Ping(Message, service="echo-service"):
    text: str


class Slow(Message, service="echo-service"):
    """Waits until ``release`` (a key into Echo.gates) is set, then answers ``text``."""

    text: str
    gate: str


class Refuse(Message, service="echo-service"):
    reason: str


class Boom(Message, service="echo-service"):
    """Raises RuntimeError while ``Echo.failures_left`` > 0 (then succeeds)."""

    text: str


class Whoami(Message, service="echo-service"):
    """Answers the envelope fields the handler sees."""


class Echo(Actor, service="echo-service"):
    gates: dict[str, asyncio.Event] = {}
    entered: asyncio.Queue[str] | None = None
    log: list[str] = []
    failures_left = 0
    starts = 0

    async def on_start(self) -> None:
        type(self).starts += 1

    @handler
    async def ping(self, msg: Ping) -> str:
        type(self).log.append(msg.text)
        return msg.text

    @handler
    async def slow(self, msg: Slow) -> str:
        if type(self).entered is not None:
            type(self).entered.put_nowait(msg.text)
        type(self).log.append(f"start {msg.text}")
        await type(self).gates.setdefault(msg.gate, asyncio.Event()).wait()
        type(self).log.append(f"end {msg.text}")
        return msg.text

    @handler
    async def refuse(self, msg: Refuse) -> str:
        raise Conflict(msg.reason)

    @handler
    async def boom(self, msg: Boom) -> str:
        cls = type(self)
        if cls.failures_left > 0:
            cls.failures_left -= 1
            raise RuntimeError(f"boom {msg.text}")
        cls.log.append(f"ok {msg.text}")
        return msg.text

    @handler
    async def whoami(self, msg: Whoami) -> dict[str, Any]:
        env = current_envelope.get()
        return {
            "trace_id": env.trace_id,
            "correlation_id": env.correlation_id,
            "deadline": env.deadline,
            "chain": env.chain,
            "sender": env.sender,
        }


def reset_echo() -> None:
    Echo.gates = {}
    Echo.entered = None
    Echo.log = []
    Echo.failures_left = 0
    Echo.starts = 0


class Relay(Message, service="relay-service"):
    """Asks ``inner`` and answers what it got."""

    inner: Any


class RelayActor(Actor, service="relay-service"):
    @handler
    async def relay(self, msg: Relay) -> Any:
        return await self.actor_runtime.ask(msg.inner)


class Bounce(Message, service="echo-service"):
    """Echo asks relay-service to ask echo-service again: a cycle."""


class EchoWithBounce(Actor, service="echo-service"):
    @handler
    async def bounce(self, msg: Bounce) -> Any:
        return await self.actor_runtime.ask(Relay(inner=Ping(text="back")))

    @handler
    async def whoami(self, msg: Whoami) -> dict[str, Any]:
        return await Echo.whoami(self, msg)  # type: ignore[arg-type]
