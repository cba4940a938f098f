"""A real webhook receiver for tests: an aiohttp server on 127.0.0.1 that records every request
and answers what the test scripted, and checks signatures with the ``standardwebhooks``
reference library (so a receiver using it is known to accept our deliveries).

::

    async with Receiver() as receiver:
        receiver.script("/hook", 500, Answer(429, {"Retry-After": "1"}))  # then 200s
        url = receiver.url("/hook")
        ...
        first, second, third = await receiver.wait_for(3, path="/hook")
        payload = third.verify(secret)

Answers are chosen per request: the path's scripted queue first (each answer used once), then
the path's ``rule`` (a function of the request), else ``200``. Waiting is on the requests
themselves, with a deadline; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook

DEADLINE = 10.0


@dataclass(frozen=True)
class Answer:
    """What the receiver answers one request."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = "ok"

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


OK = Answer()


@dataclass
class Received:
    """One request the receiver got, and how it answered."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    #: ``time.time()`` and ``time.monotonic()`` when the request arrived
    at: float
    mono: float
    #: 1 for the first request with this ``webhook-id`` at this path, 2 for the next, …
    attempt: int
    answer: Answer = OK

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def timestamp(self) -> int:
        return int(self.headers["webhook-timestamp"])

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    def verify(self, secret: str) -> Any:
        """The payload, if the signature verifies with ``secret``; raises
        ``WebhookVerificationError`` otherwise."""
        return Webhook(secret).verify(self.body, self.headers)


Rule = Callable[[Received], Answer | int]


class Receiver:
    """See the module docstring. Use as ``async with Receiver() as receiver``."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.rules: dict[str, Rule] = {}
        self._scripts: dict[str, deque[Answer]] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # ------------------------------------------------------------------ scripting

    def script(self, path: str, *answers: Answer | int) -> None:
        """Answer the next requests at ``path`` with ``answers`` in turn (then the rule, or 200)."""
        self._scripts.setdefault(path, deque()).extend(_answer(a) for a in answers)

    def always(self, path: str, answer: Answer | int) -> None:
        """Answer every request at ``path`` (after any script) with ``answer``."""
        fixed = _answer(answer)
        self.rules[path] = lambda _request: fixed

    # ------------------------------------------------------------------ reading

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(
        self,
        count: int,
        *,
        path: str | None = None,
        where: Callable[[Received], bool] = lambda _r: True,
        deadline: float = DEADLINE,
    ) -> list[Received]:
        """The first ``count`` requests (at ``path``, matching ``where``), once they came;
        ``AssertionError`` after ``deadline`` seconds."""

        def matching() -> list[Received]:
            return [r for r in self.requests if (path is None or r.path == path) and where(r)]

        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: len(matching()) >= count), deadline
                )
            except TimeoutError:
                raise AssertionError(
                    f"{count} request(s) at {path or 'any path'} not received within "
                    f"{deadline}s; got {[(r.path, r.answer.status) for r in self.requests]}"
                ) from None
        return matching()[:count]

    # ------------------------------------------------------------------ serving

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        msg_id = headers.get("webhook-id")
        previous = sum(
            1
            for r in self.requests
            if r.path == request.path and r.headers.get("webhook-id") == msg_id
        )
        received = Received(
            path=request.path,
            headers=headers,
            body=body,
            at=time.time(),
            mono=time.monotonic(),
            attempt=previous + 1,
        )
        received.answer = self._choose(received)
        async with self._changed:
            self.requests.append(received)
            self._changed.notify_all()
        answer = received.answer
        return web.Response(status=answer.status, headers=dict(answer.headers), text=answer.body)

    def _choose(self, received: Received) -> Answer:
        queue = self._scripts.get(received.path)
        if queue:
            return queue.popleft()
        rule = self.rules.get(received.path)
        return OK if rule is None else _answer(rule(received))


def _answer(value: Answer | int) -> Answer:
    return value if isinstance(value, Answer) else Answer(value, body=f"answered {value}")


__all__ = ["OK", "Answer", "Received", "Receiver"]
