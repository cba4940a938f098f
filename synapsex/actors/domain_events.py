"""Domain events through a transactional outbox: a change and its event commit together.

A service that publishes domain events keeps an outbox table in its own database (a model that
subclasses :class:`OutboxEvent`, e.g. ``tenant_outbox``). A handler stages the event in the same
transaction as the change, then flushes::

    async with in_transaction() as conn:
        tenant = await Tenant.create(..., using_db=conn)
        await self.outbox.stage(conn, tenant.id, "tenant.created", {...}, key=tenant.id)
    await self.outbox.flush()

``flush`` hands the staged events to the event-bus-service in order and returns once they are
durable there, so the handler's reply never runs ahead of its event. If the event bus cannot take
them (stopped, restarting, or not part of this runtime), they stay in the outbox, durable with the
change, and are relayed later: by the next flush, and by a retry with backoff while any are left
(also once after the actor starts, for what a crash left behind). Each is published with its
outbox id as idempotency key, so an event relayed twice (a crash after publishing but before the
row was deleted, or two processes relaying the same rows) is published once.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import structlog
from tortoise import fields
from tortoise.models import Model

from synapsex.contracts.errors import ContractError
from synapsex.contracts.events import MAX_BATCH, EventDraft, PublishEvents
from synapsex.contracts.events import SERVICE as EVENT_BUS
from synapsex.runtime import Actor, current_envelope, new_id

log = structlog.get_logger("synapsex.outbox")

#: the first retry after a failed flush waits this long, doubling up to the maximum
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0


class OutboxEvent(Model):
    """An event staged by a service, waiting to be handed to the event bus."""

    id = fields.CharField(primary_key=True, max_length=40)
    tenant_id = fields.CharField(max_length=40)
    topic = fields.CharField(max_length=200)
    #: JSON text
    payload = fields.TextField()
    key = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField()

    class Meta:
        abstract = True


class Outbox:
    """One actor's outbox (see the module docstring)."""

    def __init__(self, actor: Actor, model: type[OutboxEvent]) -> None:
        self._actor = actor
        self._model = model
        self._retry: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Call from ``on_start``: relay what a previous instance left staged, soon; the
        relay ends with the actor's task (a graceful stop, a crash or a kill)."""
        self.retry_later()
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _task: self.cancel())

    async def stage(
        self,
        conn: Any,
        tenant_id: str,
        topic: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
    ) -> None:
        """Stage an event in the caller's transaction ``conn`` (committed with the change)."""
        await self._model.create(
            id=new_id("obx"),
            tenant_id=tenant_id,
            topic=topic,
            payload=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
            key=key,
            created_at=datetime.now(UTC),
            using_db=conn,
        )

    async def flush(self) -> bool:
        """Publish what is staged, oldest first; ``True`` when the outbox is empty after it.
        A failure is logged and retried later, never raised: the change it belongs to has
        committed, and its events are safe in the outbox."""
        if EVENT_BUS not in self._actor.actor_runtime.services:
            return False  # relayed by a runtime that has the event bus
        if await self._publish_staged():
            return True
        self.retry_later()
        return False

    async def _publish_staged(self) -> bool:
        runtime = self._actor.actor_runtime
        while True:
            rows = await self._model.all().order_by("id").limit(MAX_BATCH)
            if not rows:
                return True
            try:
                for tenant_id, batch in groupby(rows, key=lambda r: r.tenant_id):
                    staged = list(batch)
                    await runtime.ask(
                        PublishEvents(
                            tenant_id=tenant_id,
                            source=self._actor.actor_spec.service,
                            events=tuple(_draft(row) for row in staged),
                        )
                    )
                    await self._model.filter(id__in=[row.id for row in staged]).delete()
            except ContractError as exc:
                log.warning(
                    "domain events kept in the outbox; will retry",
                    service=self._actor.actor_spec.service,
                    staged=len(rows),
                    error=f"{exc.code}: {exc.message}",
                )
                return False
            if len(rows) < MAX_BATCH:
                return True

    def retry_later(self, delay: float = RETRY_FIRST_SECONDS) -> None:
        """Flush after ``delay``, then again with doubling waits until the outbox is empty;
        runs outside any message's turn (flushes are safe to overlap: see the module doc)."""
        if EVENT_BUS not in self._actor.actor_runtime.services:
            return
        if self._retry is not None and not self._retry.done():
            return
        # a context of its own: not the asking message's envelope (its deadline passes)
        context = contextvars.copy_context()
        context.run(current_envelope.set, None)
        self._retry = asyncio.get_running_loop().create_task(
            self._retrying(delay), name=f"{self._actor.actor_spec.service}-outbox", context=context
        )

    async def _retrying(self, delay: float) -> None:
        while True:
            await asyncio.sleep(delay)
            try:
                if await self._publish_staged():
                    return
            except Exception:  # the database is failing too: keep trying, never crash
                log.exception("outbox relay failed", service=self._actor.actor_spec.service)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    def cancel(self) -> None:
        """Stop retrying (the next instance relays at its start)."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None


def _draft(row: OutboxEvent) -> EventDraft:
    return EventDraft(
        topic=row.topic, payload=json.loads(row.payload), key=row.key, idempotency_key=row.id
    )
