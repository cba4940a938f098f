"""The usage intake: every tenant's ``usage.recorded`` events, read through a consumer group.

For each tenant it serves, billing-service keeps a consumer group ``sx.billing`` (topic
``usage.recorded``) in the event bus, claims batches from it, writes their usage (idempotent:
the key is the payload's ``idempotencyKey`` or the event id), then acks them, so a crash between
the two only means the batch comes again and is recorded once.

Which tenants: only those with usage events, so a tenant without any has no ``sx.billing``
group among its consumer groups. Billing watches every tenant tenant-service lists (new ones are
looked for every second, all of them every :data:`DISCOVERY_SECONDS`) or that it is asked about;
a tenant becomes **active** when one of its usage events is committed in this process, when its
stream is found to hold one (new tenants at once, the others on each full scan, which covers
usage first published from another process), or when ``billing_intake`` already has it.

A group only receives events published after it was made, so when billing makes a tenant's
group it also reads back the usage events already in the tenant's stream (a **backfill**,
idempotent like the rest) and records in ``billing_intake`` that it did. If the group
disappears (a user deleted it), the backfill is marked undone first, then the group is made
again and the stream read back, so nothing published meanwhile is missed (within the event
bus's retention).

Like the webhook intake it runs in a :class:`~synapsex.runtime.Lane`: woken when a tenant's
usage events are committed in this process (the event bus's live channel), and every
:data:`INTAKE_SECONDS` for every active tenant (commits in other processes, retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from synapsex.contracts.billing import USAGE_GROUP, USAGE_TOPIC, RecordUsage
from synapsex.contracts.errors import Conflict, ContractError, InvalidInput, NotFound
from synapsex.contracts.events import (
    AckEvents,
    ClaimEvents,
    CreateConsumerGroup,
    EventView,
    LeaseRef,
    ListEvents,
    NackEvent,
    events_channel,
)
from synapsex.contracts.message import Message
from synapsex.contracts.tenant import ListTenants
from synapsex.runtime import Lane

from .intake import usage_from_event
from .models import IntakeState

if TYPE_CHECKING:
    from .actor import BillingActor

log = structlog.get_logger("synapsex.billing")

INTAKE_SECONDS = 1.0
#: how often every tenant is listed again (new ones are looked for on every sweep)
DISCOVERY_SECONDS = 30.0
CLAIM_BATCH = 100
#: tenants whose events are taken side by side
PARALLEL = 4


def usage_group(tenant_id: str) -> CreateConsumerGroup:
    """The consumer group through which billing-service reads a tenant's usage events."""
    return CreateConsumerGroup(
        tenant_id=tenant_id,
        name=USAGE_GROUP,
        topics=(USAGE_TOPIC,),
        # only unavailable services make an attempt fail: keep trying for a long while
        max_attempts=100,
        visibility_timeout_seconds=60.0,
        max_retry_backoff_seconds=60.0,
    )


class UsageConsumer:
    """See the module docstring. Owned by the actor; runs in its pump handler."""

    def __init__(
        self,
        actor: BillingActor,
        message: Callable[[], Message],
        store: Callable[[list[RecordUsage]], Awaitable[None]],
    ) -> None:
        self._actor = actor
        self._runtime = actor.actor_runtime
        self._lane = Lane(self._runtime, message)
        self._store = store
        #: every tenant known (listed by tenant-service or asked about): their commits are watched
        self._known: set[str] = set()
        #: tenants with usage events: read through their group on every sweep
        self._active: set[str] = set()
        #: tenants whose group is made and backfill done (as far as this process knows)
        self._ready: set[str] = set()
        self._due: set[str] = set()
        self._sweep = True
        self._wakers: dict[str, asyncio.Task[None]] = {}
        self._cursor: str | None = None
        self._full_scan_at = 0.0
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick(), name="billing-intake-tick")
        self._lane.request()

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for task in self._wakers.values():
            task.cancel()
        self._wakers.clear()

    def serve(self, tenant_id: str) -> None:
        """Watch the tenant's commits for usage events (a no-op once it is watched)."""
        self._known.add(tenant_id)
        self._watch(tenant_id)

    async def run(self) -> None:
        """Take what is due (from the actor's pump handler)."""
        await self._lane.run(self._take_due)

    # ------------------------------------------------------------------ waking

    async def _tick(self) -> None:
        for _ in itertools.count():
            await asyncio.sleep(INTAKE_SECONDS)
            self._wake()

    def _wake(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._sweep = True
        else:
            self._due.add(tenant_id)
        self._lane.request()

    def _watch(self, tenant_id: str) -> None:
        if tenant_id not in self._wakers:
            self._wakers[tenant_id] = asyncio.create_task(
                self._wake_on_commits(tenant_id), name=f"billing-wake-{tenant_id}"
            )

    async def _wake_on_commits(self, tenant_id: str) -> None:
        channel = events_channel(tenant_id)
        async with self._runtime.broadcast.listen(channel, capacity=1) as committed:
            async for event in committed:
                if getattr(event, "topic", None) == USAGE_TOPIC:
                    self._active.add(tenant_id)
                    self._wake(tenant_id)

    # ------------------------------------------------------------------ the sweep

    async def _take_due(self) -> None:
        sweep, self._sweep = self._sweep, False
        due, self._due = self._due, set()
        if sweep:
            await self._discover()
        tenants = sorted(self._active if sweep else due)
        slots = asyncio.Semaphore(PARALLEL)

        async def take(tenant_id: str) -> None:
            async with slots:
                try:
                    await self._ensure(tenant_id)
                    self._watch(tenant_id)
                    if await self._take(tenant_id):
                        self._wake(tenant_id)  # a full batch: there may be more
                except ContractError as exc:  # a service is away: the next sweep retries
                    log.warning(
                        "usage intake postponed",
                        tenant_id=tenant_id,
                        error_code=exc.code,
                        error=exc.message,
                    )

        await asyncio.gather(*(take(t) for t in tenants))

    async def _discover(self) -> None:
        """Watch the tenants tenant-service lists (the new ones; every one now and then) and
        find those with usage events: the new ones, and on a full scan every tenant not yet
        read (a first usage event committed in another process is found that way)."""
        full = time.monotonic() >= self._full_scan_at
        after = None if full else self._cursor
        listed: list[str] = []
        try:
            while True:
                page = await self._runtime.ask(ListTenants(first=100, after=after))
                listed += [t.id for t in page.items]
                if page.end_cursor and (self._cursor is None or page.end_cursor > self._cursor):
                    self._cursor = page.end_cursor
                if not page.has_next_page:
                    break
                after = page.end_cursor
        except ContractError as exc:  # tenant-service away (or not run here): tenants asked
            log.debug("tenants not listed", error_code=exc.code)  # about are served anyway
        new = [t for t in listed if t not in self._known]
        for tenant_id in listed:
            self.serve(tenant_id)
        if full:
            self._full_scan_at = time.monotonic() + DISCOVERY_SECONDS
            self._active.update(await IntakeState.all().values_list("tenant_id", flat=True))
            new = sorted(self._known)
        await self._probe([t for t in new if t not in self._active])

    async def _probe(self, tenants: list[str]) -> None:
        """Mark active the tenants whose stream holds a usage event."""
        for tenant_id in tenants:
            try:
                page = await self._runtime.ask(
                    ListEvents(tenant_id=tenant_id, topic=USAGE_TOPIC, first=1)
                )
            except ContractError as exc:  # the event bus is away: the next full scan probes
                log.debug("usage not probed", tenant_id=tenant_id, error_code=exc.code)
                return
            if page.items:
                self._active.add(tenant_id)

    # ------------------------------------------------------------------ groups and backfill

    async def _ensure(self, tenant_id: str) -> None:
        """Make the tenant's group if missing, and read back what came before it."""
        if tenant_id in self._ready:
            return
        state = await IntakeState.filter(tenant_id=tenant_id).first()
        with contextlib.suppress(Conflict):
            await self._runtime.ask(usage_group(tenant_id))
        if state is None or not state.backfilled:
            await self._backfill(tenant_id)
            now = datetime.now(UTC)
            if not await IntakeState.filter(tenant_id=tenant_id).update(
                backfilled=True, updated_at=now
            ):
                await IntakeState.bulk_create(
                    [IntakeState(tenant_id=tenant_id, backfilled=True, updated_at=now)],
                    ignore_conflicts=True,
                )
        self._ready.add(tenant_id)

    async def _lost_group(self, tenant_id: str) -> None:
        """The group is gone: mark the backfill undone before making it again."""
        self._ready.discard(tenant_id)
        await IntakeState.filter(tenant_id=tenant_id).update(
            backfilled=False, updated_at=datetime.now(UTC)
        )
        await self._ensure(tenant_id)

    async def _backfill(self, tenant_id: str) -> None:
        after = None
        while True:
            page = await self._runtime.ask(
                ListEvents(tenant_id=tenant_id, topic=USAGE_TOPIC, first=100, after=after)
            )
            reports, failed = await self._reports(page.items)
            if failed:  # a service is away: try the whole backfill again later
                raise next(iter(failed.values()))
            await self._store(reports)
            if not page.has_next_page:
                return
            after = page.end_cursor

    # ------------------------------------------------------------------ claiming

    async def _take(self, tenant_id: str) -> bool:
        """Record one batch of the tenant's usage events; ``True`` if the batch was full."""
        try:
            claimed = await self._runtime.ask(
                ClaimEvents(tenant_id=tenant_id, group=USAGE_GROUP, limit=CLAIM_BATCH)
            )
        except NotFound:
            await self._lost_group(tenant_id)
            return False
        if not claimed:
            return False
        reports, failed = await self._reports(tuple(d.event for d in claimed))
        await self._store(reports)
        done = [
            LeaseRef(event_id=d.event.id, lease_id=d.lease_id or "")
            for d in claimed
            if d.event.id not in failed
        ]
        if done:
            result = await self._runtime.ask(
                AckEvents(tenant_id=tenant_id, group=USAGE_GROUP, leases=tuple(done))
            )
            if result.stale:  # leased again elsewhere meanwhile: recorded once all the same
                log.info("usage events acked late", tenant_id=tenant_id, stale=len(result.stale))
        for d in claimed:
            if d.event.id in failed:
                with contextlib.suppress(Conflict):
                    await self._runtime.ask(
                        NackEvent(
                            tenant_id=tenant_id,
                            group=USAGE_GROUP,
                            event_id=d.event.id,
                            lease_id=d.lease_id or "",
                            error=failed[d.event.id].message[:2000],
                        )
                    )
        return len(claimed) == CLAIM_BATCH

    async def _reports(
        self, events: tuple[EventView, ...]
    ) -> tuple[list[RecordUsage], dict[str, ContractError]]:
        """The usage the events report (models resolved), and the events that must be tried
        again because a service could not answer. An event that is not valid usage is
        logged and dropped: it would never become valid."""
        reports: list[RecordUsage] = []
        failed: dict[str, ContractError] = {}
        for event in events:
            try:
                report = usage_from_event(event)
                if report is not None:
                    reports.append(await self._actor.resolve(report))
            except InvalidInput as exc:
                log.warning(
                    "usage event not recorded",
                    tenant_id=event.tenant_id,
                    event_id=event.id,
                    field=exc.field,
                    problem=exc.problem,
                )
            except ContractError as exc:
                failed[event.id] = exc
        return reports, failed
