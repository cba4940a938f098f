"""``LISTEN`` on PostgreSQL: a dedicated connection that hears every process's commits.

The notification is only a wake-up (``"<tenant> <first seq> <last seq>"``); the actor reads the
events themselves from the database. When the connection drops, the listener reconnects with
backoff, and the actor's once-a-second look at the stream heads covers the gap meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger("synapsex.event_bus")

RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0


class NotifyListener:
    def __init__(
        self, credentials: Mapping[str, Any], channel: str, on_payload: Callable[[str], None]
    ) -> None:
        self._credentials = credentials
        self._channel = channel
        self._on_payload = on_payload
        self._task: asyncio.Task[None] | None = None
        #: set while a connection is listening (tests wait on it)
        self.listening = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"listen-{self._channel}")

    def cancel(self) -> None:
        """Stop without waiting (the connection is closed as the task unwinds)."""
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._on_payload(payload)
        except Exception:  # a malformed notice must not kill the listener
            log.exception("bad event notification", channel=self._channel)

    async def _run(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        c = self._credentials
        while True:
            lost = asyncio.Event()
            conn = None
            try:
                conn = await asyncpg.connect(
                    host=c["host"],
                    port=c["port"],
                    user=c["user"],
                    password=c["password"] or None,
                    database=c["database"],
                    timeout=10,
                )
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(self._channel, self._notified)
                self.listening.set()
                log.info("listening for committed events", channel=self._channel)
                delay = RECONNECT_MIN_SECONDS
                await lost.wait()
                log.warning("event notification connection lost", channel=self._channel)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning(
                    "cannot listen for committed events; retrying",
                    channel=self._channel,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=delay,
                )
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 5)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)
