"""webhook-service handlers: subscriptions, and the two lanes that deliver events.

**Intake** (``Pump``): for each tenant with a subscription the actor claims a batch from the
tenant's consumer group ``sx.webhooks`` (all topics) in the event bus, writes one delivery per
matching enabled subscription (idempotent: one per event and subscription), then acks the batch,
so an event is never lost between the bus and the deliveries, even across a crash. It runs when
the tenant's events are committed (the actor listens on the event bus's live channel of each
tenant it serves, in this process) and every :data:`INTAKE_SECONDS` as a fallback. A fresh
delivery without a key is written already leased (``sending``) and its POST starts at once,
while there is room in flight; the others wait for dispatch.

**Dispatch** (``Dispatch``): finished attempts come back in batches: one transaction records
them and schedules each next attempt (the retry schedule with ±20 % jitter, ``Retry-After``
within 1 to 2 times the scheduled wait) or ends the delivery (``succeeded`` / ``failed``). Then
it leases due deliveries of enabled subscriptions (pending, or ``sending`` with a lapsed lease;
a disabled subscription's wait until it is enabled again) that are the oldest unfinished of
their subscription and key, and POSTs each from a task of its own (outside the turn, never
touching the database). It runs when attempts finish and every :data:`DISPATCH_SECONDS` (for
retries coming due).

The lanes are ``concurrent`` handlers: intake and dispatch overlap (on PostgreSQL each on a
connection of its own), each one at a time (:class:`~synapsex.runtime.Lane`); every other
handler runs alone. At most :data:`MAX_IN_FLIGHT` attempts are in flight per process.

A subscription failing with no success for ``SYNAPSEX_WEBHOOK_DISABLE_AFTER`` is disabled and
``webhook.subscription.disabled`` is published through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog
from cachetools import LRUCache
from tortoise.transactions import in_transaction

from synapsex.actors.domain_events import Outbox
from synapsex.actors.outbound import check_url
from synapsex.config import SealError, load_master_key
from synapsex.contracts.billing import USAGE_TOPIC
from synapsex.contracts.common import Page, as_utc
from synapsex.contracts.errors import Conflict, ContractError, NotFound
from synapsex.contracts.events import (
    AckEvents,
    ClaimEvents,
    CreateConsumerGroup,
    DeleteConsumerGroup,
    DeliveryView,
    LeaseRef,
    ListEvents,
    events_channel,
    topic_matcher,
)
from synapsex.contracts.keys import ResealProgress, ResealWebhookSecrets
from synapsex.contracts.webhooks import (
    ROTATION_OVERLAP_SECONDS,
    SERVICE,
    CreateWebhookSubscription,
    DeleteWebhookSubscription,
    GetWebhookSubscription,
    ListWebhookDeliveries,
    ListWebhookSubscriptions,
    ReplayWebhookDelivery,
    ReplayWebhookEvents,
    RotateWebhookSecret,
    SubscriptionWithSecret,
    UpdateWebhookSubscription,
    WebhookAttemptView,
    WebhookDeliveryView,
    WebhookSubscriptionView,
)
from synapsex.runtime import Actor, Lane, handler, new_id
from synapsex.runtime.orm import (
    execute_many,
    get_or_not_found,
    insert_rows,
    numbered_placeholders,
    paginate,
)

from .egress import AttemptResult, make_session, post
from .internal import Dispatch, Pump, Record
from .models import WebhookDelivery, WebhookOutbox, WebhookSubscription
from .settings import WebhookSettings
from .signing import new_secret, webhook_headers

log = structlog.get_logger("synapsex.webhooks")

#: the consumer group each tenant's webhooks read the event bus through
GROUP = "sx.webhooks"
#: how often dispatch looks for deliveries coming due (retries)
DISPATCH_SECONDS = 0.2
#: how often intake claims from the bus without being woken by a commit
INTAKE_SECONDS = 1.0
CLAIM_BATCH = 100
#: batches a tenant's intake claims, writes and acks side by side
INTAKE_PARALLEL = 2
#: attempts in flight at once from this process (and its HTTP connections)
MAX_IN_FLIGHT = 256
#: decrypted signing secrets kept in memory, by sealed value
SECRET_CACHE_SIZE = 10_000
#: a ``sending`` delivery whose process died is due again after this long
SENDING_LEASE_MS = 60_000
#: how often dispatch looks for such lapsed leases
LAPSED_CHECK_SECONDS = 1.0
JITTER = 0.2

try:
    USER_AGENT = f"SynapseX-Webhooks/{version('synapsex')}"
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    USER_AGENT = "SynapseX-Webhooks"


def db_is_sqlite(actor: Actor) -> bool:
    return actor.actor_db is not None and actor.actor_db.config.is_sqlite


def _now_ms() -> int:
    return int(time.time() * 1000)


def _at_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def subscription_view(row: WebhookSubscription) -> WebhookSubscriptionView:
    return WebhookSubscriptionView(
        id=row.id,
        tenant_id=row.tenant_id,
        url=row.url,
        event_types=tuple(json.loads(row.event_types)),
        description=row.description,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        secret_rotated_at=row.secret_rotated_at,
    )


def delivery_view(row: WebhookDelivery) -> WebhookDeliveryView:
    return WebhookDeliveryView(
        id=row.id,
        subscription_id=row.subscription_id,
        event_id=row.event_id,
        topic=row.topic,
        status=row.status,  # type: ignore[arg-type]
        attempts=tuple(
            WebhookAttemptView(
                at=datetime.fromisoformat(a["at"]),
                status_code=a["statusCode"],
                duration_ms=a["durationMs"],
                error=a["error"],
                response_body_excerpt=a["responseBodyExcerpt"],
            )
            for a in json.loads(row.attempts)
        ),
        next_attempt_at=_at_ms(row.next_attempt_at_ms),
        created_at=row.created_at,
    )


def intake_group(tenant_id: str) -> CreateConsumerGroup:
    """The consumer group through which webhook-service reads a tenant's events."""
    return CreateConsumerGroup(
        tenant_id=tenant_id,
        name=GROUP,
        topics=("#",),
        max_attempts=100,
        visibility_timeout_seconds=60.0,
    )


def event_body(event_id: str, topic: str, occurred_at: datetime, payload: Any) -> str:
    """The JSON body POSTed for an event, fixed at creation so every attempt sends (and signs)
    the same bytes."""
    return json.dumps(
        {
            "type": topic,
            "timestamp": _timestamp(occurred_at),
            "data": payload,
            "id": event_id,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def event_body_of_json(event_id: str, topic: str, occurred_at: datetime, payload_json: str) -> str:
    """:func:`event_body` for a payload given as the event bus stores it (compact JSON text,
    as ``json.dumps`` writes it here), put in as it is: the same bytes, without decoding and
    encoding the payload again."""
    return (
        f'{{"type":{json.dumps(topic, ensure_ascii=False)},'
        f'"timestamp":"{_timestamp(occurred_at)}",'
        f'"data":{payload_json},'
        f'"id":{json.dumps(event_id, ensure_ascii=False)}}}'
    )


def _timestamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_INSERT_COLUMNS = (
    "id",
    "tenant_id",
    "subscription_id",
    "event_id",
    "dedupe_key",
    "topic",
    "key",
    "body",
    "status",
    "attempts",
    "attempt_count",
    "next_attempt_at_ms",
    "lease_until_ms",
    "lease_token",
    "created_at",
)
#: new deliveries from the stream: one per event and subscription even when a batch comes twice
_ONE_PER_EVENT = "ON CONFLICT (subscription_id, dedupe_key) DO NOTHING"
_RECORD_SQL = (
    "UPDATE webhook_deliveries SET status = ?, attempts = ?, attempt_count = ?, "
    "next_attempt_at_ms = ?, lease_until_ms = NULL WHERE id = ?"
)
#: lease the due pending deliveries of enabled subscriptions that are the oldest unfinished
#: of their subscription and key, longest due first (in the order of the status and due-time
#: index, so a long backlog costs no sort)
_CLAIM_SQL = (
    "UPDATE webhook_deliveries SET status = 'sending', lease_until_ms = ?, lease_token = ? "
    "WHERE {id_in}("
    " SELECT d.id FROM webhook_deliveries d"
    " JOIN webhook_subscriptions s ON s.id = d.subscription_id AND s.enabled"
    " WHERE d.status = 'pending' AND d.next_attempt_at_ms <= ?"
    " AND (d.key IS NULL OR NOT EXISTS ("
    "  SELECT 1 FROM webhook_deliveries e WHERE e.subscription_id = d.subscription_id"
    "  AND e.key = d.key AND e.status IN ('pending', 'sending') AND e.id < d.id))"
    " ORDER BY d.next_attempt_at_ms LIMIT ? {skip_locked}){close} "
    "RETURNING id, subscription_id, event_id, topic, body, attempts, attempt_count"
)
#: deliveries whose process died mid-attempt: ``sending`` past the lease, due again at once
_LAPSED_SQL = (
    "UPDATE webhook_deliveries SET status = 'pending', lease_until_ms = NULL, "
    "lease_token = NULL WHERE status = 'sending' AND lease_until_ms <= ?"
)


@dataclass(frozen=True, slots=True)
class _Leased:
    """What an attempt needs of a delivery, as the claim returned it."""

    id: str
    subscription_id: str
    event_id: str
    topic: str
    body: str
    attempts: str
    attempt_count: int


@dataclass(slots=True)
class _Sending:
    """A delivery this process is attempting."""

    row: _Leased
    tenant_id: str
    url: str
    secrets: tuple[str, ...]
    #: whether its subscription was failing when the attempt started
    failing: bool


class WebhookActor(Actor, service=SERVICE, models="synapsex.actors.webhook.models", concurrency=6):
    """Owns ``webhook_subscriptions`` and ``webhook_deliveries``."""

    async def on_start(self) -> None:
        runtime = self.actor_runtime
        self._settings = WebhookSettings.from_environ(runtime.settings.environ)
        self._key = load_master_key(runtime.settings)
        self._secrets: LRUCache[str, str] = LRUCache(SECRET_CACHE_SIZE)
        self._session = make_session(
            allow_private=self._settings.allow_private_networks,
            user_agent=USER_AGENT,
            connections=MAX_IN_FLIGHT,
        )
        self._outbox = Outbox(self, WebhookOutbox)
        self._outbox.start()
        self._intake = Lane(runtime, Pump)
        self._dispatcher = Lane(runtime, Dispatch)
        self._recorder = Lane(runtime, Record)
        self._sending: dict[str, _Sending] = {}
        #: room in flight that a dispatch waiting on its claim has set aside
        self._reserved = 0
        #: attempts finished and not yet recorded
        self._finished: list[tuple[_Sending, AttemptResult, datetime]] = []
        #: per tenant served, the task that wakes intake when its events are committed
        self._wakers: dict[str, asyncio.Task[None]] = {}
        #: tenants whose events intake takes next; all of them on a sweep
        self._due: set[str] = set()
        self._sweep = True
        #: tenants whose last batch was full
        self._busy: set[str] = set()
        sqlite = db_is_sqlite(self)
        self._record_sql = _RECORD_SQL if sqlite else numbered_placeholders(_RECORD_SQL)
        if sqlite:
            claim = _CLAIM_SQL.format(id_in="id IN ", skip_locked="", close="")
        else:  # the ids first, then each row by its key (``IN`` would hash-join the table)
            claim = _CLAIM_SQL.format(
                id_in="id = ANY(ARRAY", skip_locked="FOR UPDATE OF d SKIP LOCKED", close=")"
            )
        self._claim_sql = claim if sqlite else numbered_placeholders(claim)
        self._lapsed_sql = _LAPSED_SQL if sqlite else numbered_placeholders(_LAPSED_SQL)
        self._lapsed_due = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._usage_flush: asyncio.Task[None] | None = None
        self._usage_again = False
        self._ticker = asyncio.create_task(self._tick(), name="webhook-tick")
        self._wake()  # events and deliveries may be waiting from before a restart
        self._dispatcher.request()
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _task: self._release())

    def _cancel_tasks(self) -> None:
        self._ticker.cancel()
        for task in (*self._tasks, *self._wakers.values()):
            task.cancel()
        self._wakers.clear()

    def _release(self) -> None:
        self._cancel_tasks()
        if not self._session.closed:
            asyncio.get_event_loop().create_task(self._session.close())

    async def on_stop(self) -> None:
        self._cancel_tasks()
        await self._session.close()

    # ------------------------------------------------------------------ subscriptions

    def _seal(self, secret: str, subscription_id: str) -> str:
        return self._key.seal_text(secret, context=f"webhook-secret:{subscription_id}")

    def _open(self, sealed: str, subscription_id: str) -> str:
        secret = self._secrets.get(sealed)
        if secret is None:  # a sealed value is unique (random nonce): it names one secret
            secret = self._key.open_text(sealed, context=f"webhook-secret:{subscription_id}")
            self._secrets[sealed] = secret
        return secret

    async def _subscription(self, tenant_id: str, subscription_id: str) -> WebhookSubscription:
        return await get_or_not_found(
            WebhookSubscription.filter(id=subscription_id, tenant_id=tenant_id),
            "webhook subscription",
            id=subscription_id,
        )

    @handler(concurrent=True)  # the URL's DNS lookup may take seconds: deliveries go on
    async def create(self, msg: CreateWebhookSubscription) -> SubscriptionWithSecret:
        await check_url(
            msg.url, allow_private=self._settings.allow_private_networks, who="webhooks"
        )
        await self._ensure_group(msg.tenant_id)
        subscription_id = new_id("whs")
        secret = new_secret()
        row = await WebhookSubscription.create(
            id=subscription_id,
            tenant_id=msg.tenant_id,
            url=msg.url,
            event_types=json.dumps(list(msg.event_types)),
            description=msg.description,
            enabled=True,
            secret_sealed=self._seal(secret, subscription_id),
            created_at=datetime.now(UTC),
        )
        self._watch(msg.tenant_id)
        self._wake(msg.tenant_id)  # the tenant's events may already be waiting in the group
        return SubscriptionWithSecret(subscription=subscription_view(row), secret=secret)

    async def _ensure_group(self, tenant_id: str) -> None:
        with contextlib.suppress(Conflict):  # the tenant's webhooks already read the bus
            await self.actor_runtime.ask(intake_group(tenant_id))

    @handler(concurrent=True)
    async def update(self, msg: UpdateWebhookSubscription) -> WebhookSubscriptionView:
        if msg.url is not None:
            await check_url(
                msg.url, allow_private=self._settings.allow_private_networks, who="webhooks"
            )
        row = await self._subscription(msg.tenant_id, msg.id)
        changed: dict[str, Any] = {}
        if msg.url is not None:
            changed["url"] = msg.url
        if msg.event_types is not None:
            changed["event_types"] = json.dumps(list(msg.event_types))
        if msg.description is not None:
            changed["description"] = msg.description
        if msg.enabled is not None:
            changed["enabled"] = msg.enabled
            changed["disabled_reason"] = None if msg.enabled else "disabled by a user"
            changed["failing_since"] = None
        if changed:  # only these columns: deliveries being recorded meanwhile may set others
            row.update_from_dict(changed)
            await row.save(update_fields=list(changed))
        return subscription_view(row)

    @handler
    async def delete(self, msg: DeleteWebhookSubscription) -> WebhookSubscriptionView:
        row = await self._subscription(msg.tenant_id, msg.id)
        async with in_transaction() as conn:
            await WebhookDelivery.filter(subscription_id=row.id).using_db(conn).delete()
            await row.delete(using_db=conn)
        if not await WebhookSubscription.filter(tenant_id=msg.tenant_id).exists():
            # nobody reads the tenant's group any more: unread events would never be acked,
            # so never pruned (a new subscription makes the group again)
            with contextlib.suppress(NotFound):
                await self.actor_runtime.ask(
                    DeleteConsumerGroup(tenant_id=msg.tenant_id, name=GROUP)
                )
        return subscription_view(row)

    @handler
    async def rotate(self, msg: RotateWebhookSecret) -> SubscriptionWithSecret:
        row = await self._subscription(msg.tenant_id, msg.id)
        now = datetime.now(UTC)
        secret = new_secret()
        row.previous_secret_sealed = row.secret_sealed
        row.previous_secret_until = now + timedelta(seconds=ROTATION_OVERLAP_SECONDS)
        row.secret_sealed = self._seal(secret, row.id)
        row.secret_rotated_at = now
        await row.save()
        return SubscriptionWithSecret(subscription=subscription_view(row), secret=secret)

    @handler(concurrent=True)  # one conditional update per subscription
    async def reseal(self, msg: ResealWebhookSecrets) -> ResealProgress:
        """Master key rotation: seal a batch of subscriptions' secrets again under the current
        key. A row is written only if its sealed secrets are still the ones read, so a secret
        rotated meanwhile is never overwritten (it is counted and left to the next pass)."""
        query = WebhookSubscription.all().order_by("id").limit(msg.limit)
        if msg.after is not None:
            query = query.filter(id__gt=msg.after)
        rows = await query
        examined = resealed = changed = unreadable = 0
        for row in rows:
            context = f"webhook-secret:{row.id}"
            fresh: dict[str, str] = {}
            for column in ("secret_sealed", "previous_secret_sealed"):
                token = getattr(row, column)
                if token is None:
                    continue
                examined += 1
                try:
                    new = self._key.reseal(token, context=context)
                except SealError as exc:
                    unreadable += 1
                    log.error(
                        "webhook secret does not open", subscription_id=row.id, reason=exc.reason
                    )
                    continue
                if new is not None:
                    fresh[column] = new
            if not fresh:
                continue
            done = await WebhookSubscription.filter(
                id=row.id,
                secret_sealed=row.secret_sealed,
                previous_secret_sealed=row.previous_secret_sealed,
            ).update(**fresh)
            resealed += len(fresh) if done else 0
            changed += 0 if done else 1
        return ResealProgress(
            service=SERVICE,
            key_id=self._key.key_id,
            examined=examined,
            resealed=resealed,
            changed_meanwhile=changed,
            unreadable=unreadable,
            next_after=rows[-1].id if len(rows) == msg.limit else None,
        )

    @handler(read_only=True)
    async def get(self, msg: GetWebhookSubscription) -> WebhookSubscriptionView:
        return subscription_view(await self._subscription(msg.tenant_id, msg.id))

    @handler(read_only=True)
    async def list_subscriptions(
        self, msg: ListWebhookSubscriptions
    ) -> Page[WebhookSubscriptionView]:
        return await paginate(
            WebhookSubscription.filter(tenant_id=msg.tenant_id),
            first=msg.first,
            after=msg.after,
            view=subscription_view,
        )

    # ------------------------------------------------------------------ deliveries

    @handler(read_only=True)
    async def deliveries(self, msg: ListWebhookDeliveries) -> Page[WebhookDeliveryView]:
        await self._subscription(msg.tenant_id, msg.subscription_id)
        query = WebhookDelivery.filter(subscription_id=msg.subscription_id)
        if msg.status is not None:
            query = query.filter(status=msg.status)
        return await paginate(query, first=msg.first, after=msg.after, view=delivery_view)

    @handler
    async def replay(self, msg: ReplayWebhookDelivery) -> WebhookDeliveryView:
        original = await get_or_not_found(
            WebhookDelivery.filter(id=msg.id, tenant_id=msg.tenant_id),
            "webhook delivery",
            id=msg.id,
        )
        await self._subscription(msg.tenant_id, original.subscription_id)
        row = await WebhookDelivery.create(
            **self._new_delivery(
                original.tenant_id,
                original.subscription_id,
                original.event_id,
                original.topic,
                original.key,
                original.body,
                dedupe=False,
            )
        )
        self._dispatcher.request()
        return delivery_view(row)

    @handler
    async def replay_events(self, msg: ReplayWebhookEvents) -> int:
        sub = await self._subscription(msg.tenant_id, msg.subscription_id)
        matches = topic_matcher(json.loads(sub.event_types))
        since = as_utc(msg.since)
        rows: list[dict[str, Any]] = []
        after = None
        while True:
            page = await self.actor_runtime.ask(
                ListEvents(tenant_id=msg.tenant_id, first=100, after=after)
            )
            for event in page.items:
                if event.occurred_at >= since and matches(event.topic):
                    body = event_body(event.id, event.topic, event.occurred_at, event.payload)
                    rows.append(
                        self._new_delivery(
                            msg.tenant_id,
                            sub.id,
                            event.id,
                            event.topic,
                            event.key,
                            body,
                            dedupe=False,
                        )
                    )
            if not page.has_next_page:
                break
            after = page.end_cursor
        if rows:
            await WebhookDelivery.bulk_create([WebhookDelivery(**r) for r in rows])
            self._dispatcher.request()
        return len(rows)

    def _new_delivery(
        self,
        tenant_id: str,
        subscription_id: str,
        event_id: str,
        topic: str,
        key: str | None,
        body: str,
        *,
        dedupe: bool,
    ) -> dict[str, Any]:
        first_wait = self._settings.retry_schedule[0] if self._settings.retry_schedule else 0
        return {
            "id": new_id("whd"),
            "tenant_id": tenant_id,
            "subscription_id": subscription_id,
            "event_id": event_id,
            "dedupe_key": event_id if dedupe else None,
            "topic": topic,
            "key": key,
            "body": body,
            "status": "pending",
            "attempts": "[]",
            "attempt_count": 0,
            "next_attempt_at_ms": _now_ms() + int(first_wait * 1000),
            "lease_until_ms": None,
            "lease_token": None,
            "created_at": datetime.now(UTC),
        }

    # ------------------------------------------------------------------ the lanes

    async def _tick(self) -> None:
        every = max(1, round(INTAKE_SECONDS / DISPATCH_SECONDS))
        for tick in itertools.count(1):
            await asyncio.sleep(DISPATCH_SECONDS)
            self._dispatcher.request()
            if tick % every == 0:
                self._wake()

    def _wake(self, tenant_id: str | None = None) -> None:
        """Have intake run soon: for one tenant, or (``None``) for every tenant served."""
        if tenant_id is None:
            self._sweep = True
        else:
            self._due.add(tenant_id)
        self._intake.request()

    def _watch(self, tenant_id: str) -> None:
        """Wake intake for the tenant whenever its events are committed (as announced in this
        process, by the event bus's live channel)."""
        if tenant_id not in self._wakers:
            self._wakers[tenant_id] = asyncio.create_task(
                self._wake_on_commits(tenant_id), name=f"webhook-wake-{tenant_id}"
            )

    async def _wake_on_commits(self, tenant_id: str) -> None:
        channel = events_channel(tenant_id)
        async with self.actor_runtime.broadcast.listen(channel, capacity=1) as committed:
            async for _event in committed:
                self._wake(tenant_id)

    @handler(concurrent=True)
    async def pump(self, msg: Pump) -> None:
        await self._intake.run(self._take_due)

    @handler(concurrent=True)
    async def dispatch(self, msg: Dispatch) -> None:
        await self._dispatcher.run(self._dispatch)

    @handler(concurrent=True)
    async def record(self, msg: Record) -> None:
        await self._recorder.run(self._record)

    async def _take_due(self) -> None:
        """Take the events of the tenants woken since the last run (all of them on a sweep):
        one batch each, or :data:`INTAKE_PARALLEL` side by side for a tenant whose last batch
        was full; at most :data:`INTAKE_PARALLEL` batches at once in all."""
        sweep, self._sweep = self._sweep, False
        due, self._due = self._due, set()
        if not (sweep or due):
            return
        query = WebhookSubscription.all()
        if not sweep:
            query = query.filter(tenant_id__in=list(due))
        # every tenant with a subscription, enabled or not: a disabled one's events are taken
        # (and skip it) rather than kept in the group and delivered once it is enabled again
        by_tenant: dict[str, list[WebhookSubscription]] = {}
        for sub in await query:
            enabled = by_tenant.setdefault(sub.tenant_id, [])
            if sub.enabled:
                enabled.append(sub)
        if sweep:
            for tenant_id in set(self._wakers) - set(by_tenant):
                self._wakers.pop(tenant_id).cancel()
        slots = asyncio.Semaphore(INTAKE_PARALLEL)
        busy, self._busy = self._busy, set()

        async def take(tenant_id: str, subs: list[WebhookSubscription]) -> None:
            async with slots:
                if await self._take_events(tenant_id, subs):
                    self._busy.add(tenant_id)  # a full batch: there may be more in the bus
                    self._wake(tenant_id)

        takes = []
        for tenant_id, subs in by_tenant.items():
            self._watch(tenant_id)
            for _ in range(INTAKE_PARALLEL if tenant_id in busy else 1):
                takes.append(take(tenant_id, subs))
        await asyncio.gather(*takes)

    async def _take_events(self, tenant_id: str, subs: list[WebhookSubscription]) -> bool:
        """Turn a batch of the tenant's events into deliveries, and start those that may go at
        once; ``True`` if the batch was full."""
        try:
            claimed = await self.actor_runtime.ask(
                ClaimEvents(tenant_id=tenant_id, group=GROUP, limit=CLAIM_BATCH, raw_payloads=True)
            )
        except NotFound:  # the group was deleted: make it again (events meanwhile are missed)
            await self._ensure_group(tenant_id)
            return False
        if not claimed:
            return False
        rows, fresh = self._rows_for(tenant_id, subs, claimed)
        try:
            if rows:  # a redelivered batch (crash before the ack) finds its rows already there
                assert self.actor_db is not None
                await insert_rows(
                    self.actor_db.client(),
                    "webhook_deliveries",
                    _INSERT_COLUMNS,
                    rows,
                    on_conflict=_ONE_PER_EVENT,
                )
        except BaseException:
            for sending in fresh:
                self._sending.pop(sending.row.id, None)
            raise
        for sending in fresh:
            self._start(sending)
        # the deliveries are written: the ack need not hold up the next batch (the events stay
        # leased meanwhile; an ack lost to a crash gets them claimed again, and their rows,
        # already there, are not written twice)
        ack = AckEvents(
            tenant_id=tenant_id,
            group=GROUP,
            leases=tuple(LeaseRef(event_id=d.event.id, lease_id=d.lease_id or "") for d in claimed),
        )
        self._track(asyncio.create_task(self._ack(ack)))
        return len(claimed) == CLAIM_BATCH

    async def _ack(self, ack: AckEvents) -> None:
        try:
            await self.actor_runtime.ask(ack)
        except ContractError as exc:  # the leases lapse and the events come again: no loss
            log.warning("could not ack webhook intake", error_code=exc.code, error=exc.message)

    def _rows_for(
        self, tenant_id: str, subs: list[WebhookSubscription], claimed: tuple[DeliveryView, ...]
    ) -> tuple[list[list[Any]], list[_Sending]]:
        """The delivery rows for claimed events, and the attempts to start as they are written.

        A delivery may be written already leased and go at once when its event is claimed for
        the first time (so no earlier claim wrote its row: the insert will happen), it has no
        key (nothing to wait for), its first attempt is due now and there is room in flight.
        Those attempts are counted in flight here, before the insert, so a dispatch meanwhile
        sees the room they take."""
        matchers = [(sub, topic_matcher(json.loads(sub.event_types))) for sub in subs]
        now = _now_ms()
        token = new_id("wls")
        go_now = self._settings.retry_schedule[0] == 0
        rows: list[list[Any]] = []
        fresh: list[_Sending] = []
        for delivery in claimed:
            event = delivery.event
            body = None
            for sub, matches in matchers:
                if not matches(event.topic):
                    continue
                body = body or event_body_of_json(
                    event.id, event.topic, event.occurred_at, event.payload_json or "null"
                )
                fields = self._new_delivery(
                    tenant_id, sub.id, event.id, event.topic, event.key, body, dedupe=True
                )
                if go_now and delivery.attempt == 1 and event.key is None and self._room() > 0:
                    fields.update(
                        status="sending", lease_until_ms=now + SENDING_LEASE_MS, lease_token=token
                    )
                    sending = self._sending_for(sub, {**fields, "subscription_id": sub.id})
                    self._sending[sending.row.id] = sending
                    fresh.append(sending)
                rows.append([fields[c] for c in _INSERT_COLUMNS])
        return rows, fresh

    def _sending_for(self, sub: WebhookSubscription, row: dict[str, Any]) -> _Sending:
        return _Sending(
            row=_Leased(**{f: row[f] for f in _Leased.__slots__}),
            tenant_id=sub.tenant_id,
            url=sub.url,
            secrets=self._secrets_of(sub),
            failing=sub.failing_since is not None,
        )

    def _room(self) -> int:
        """Attempts this process may still start."""
        return MAX_IN_FLIGHT - len(self._sending) - self._reserved

    def _start(self, sending: _Sending) -> None:
        self._sending[sending.row.id] = sending
        self._track(asyncio.create_task(self._attempt(sending)))

    def _track(self, task: asyncio.Task[None]) -> None:
        """Keep a background task of the actor (an attempt, an ack) until it ends; it is
        cancelled when the actor stops."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self) -> None:
        """Lease the due deliveries (one statement) and start their attempts; once a second,
        first make the lapsed ``sending`` deliveries pending again."""
        assert self.actor_db is not None
        if time.monotonic() >= self._lapsed_due:
            self._lapsed_due = time.monotonic() + LAPSED_CHECK_SECONDS
            await self.actor_db.client().execute_query(self._lapsed_sql, [_now_ms()])
        room = self._room()
        if room <= 0:
            return
        self._reserved += room  # intake meanwhile must not take it
        try:
            now = _now_ms()
            rows = await self.actor_db.client().execute_query_dict(
                self._claim_sql, [now + SENDING_LEASE_MS, new_id("wls"), now, room]
            )
            if not rows:
                return
            ids = list({r["subscription_id"] for r in rows})
            subs = {s.id: s for s in await WebhookSubscription.filter(id__in=ids)}
        finally:
            self._reserved -= room
        for r in sorted(rows, key=lambda r: r["id"]):
            sub = subs.get(r["subscription_id"])
            if sub is not None:  # else deleted meanwhile: its deliveries went with it
                self._start(self._sending_for(sub, r))

    def _secrets_of(self, sub: WebhookSubscription) -> tuple[str, ...]:
        secrets = [self._open(sub.secret_sealed, sub.id)]
        if (
            sub.previous_secret_sealed
            and sub.previous_secret_until is not None
            and sub.previous_secret_until > datetime.now(UTC)
        ):
            secrets.append(self._open(sub.previous_secret_sealed, sub.id))
        return tuple(secrets)

    async def _attempt(self, sending: _Sending) -> None:
        """One POST, outside the actor's turn; the result is handed back in a batch."""
        row = sending.row
        body = row.body.encode()
        headers = webhook_headers(sending.secrets, row.event_id, int(time.time()), body, USER_AGENT)
        started = datetime.now(UTC)
        result = await post(self._session, sending.url, body, headers)
        self._finished.append((sending, result, started))
        self._sending.pop(row.id, None)
        self._recorder.request()
        self._dispatcher.request()  # its room is free: start the next due delivery in it

    async def _record(self) -> None:
        """Record every finished attempt in one transaction; schedule retries or end them."""
        finished, self._finished = self._finished, []
        if not finished:
            return
        schedule = self._settings.retry_schedule
        now = _now_ms()
        updates: list[list[Any]] = []
        recovered: set[str] = set()
        failures: dict[str, tuple[_Sending, datetime]] = {}
        delivered: Counter[str] = Counter()  # by tenant: what billing meters
        for sending, result, started in finished:
            row = sending.row
            attempts = json.loads(row.attempts)
            attempts.append(
                {
                    "at": started.isoformat(),
                    "statusCode": result.status,
                    "durationMs": round(result.duration_ms, 2),
                    "error": result.error,
                    "responseBodyExcerpt": result.body_excerpt,
                }
            )
            count = row.attempt_count + 1
            if result.ok:
                status, next_at = "succeeded", None
                if sending.failing:
                    recovered.add(row.subscription_id)
                if row.topic != USAGE_TOPIC:  # metering those would meter itself, forever
                    delivered[sending.tenant_id] += 1
            elif count >= len(schedule):
                status, next_at = "failed", None
            else:
                wait = schedule[count] * random.uniform(1 - JITTER, 1 + JITTER)
                if result.retry_after_seconds is not None:
                    wait = min(
                        max(result.retry_after_seconds, schedule[count]), 2 * schedule[count]
                    )
                status, next_at = "pending", now + int(wait * 1000)
            if not result.ok:
                failures.setdefault(row.subscription_id, (sending, started))
            attempts_json = json.dumps(attempts, separators=(",", ":"))
            updates.append([status, attempts_json, count, next_at, row.id])
        if recovered or delivered:  # the results with what they change, in one transaction
            async with in_transaction() as conn:
                await conn.execute_many(self._record_sql, updates)
                if recovered:
                    await (
                        WebhookSubscription.filter(id__in=list(recovered))
                        .using_db(conn)
                        .update(failing_since=None)
                    )
                await self._stage_usage(conn, delivered, now)
            if delivered:
                self._publish_usage()
        else:
            assert self.actor_db is not None
            await execute_many(self.actor_db.client(), self._record_sql, updates)
        for subscription_id, (_sending, at) in failures.items():
            await self._note_failure(subscription_id, at)
        if any(u[3] is not None and u[3] <= now for u in updates):
            self._dispatcher.request()

    def _publish_usage(self) -> None:
        """Publish the staged usage in the background (the next results need not wait): one
        flush at a time, and once more if asked meanwhile (a flush takes all that is staged)."""
        if self._usage_flush is not None and not self._usage_flush.done():
            self._usage_again = True
            return
        self._usage_flush = asyncio.create_task(self._flush_usage())
        self._track(self._usage_flush)

    async def _flush_usage(self) -> None:
        while True:
            self._usage_again = False
            await self._outbox.flush()
            if not self._usage_again:
                return

    async def _stage_usage(self, conn: Any, delivered: Counter[str], now_ms: int) -> None:
        """Stage each tenant's delivered webhooks of one recording as one ``usage.recorded``
        (``WEBHOOK_DELIVERY``), with the results it counts: counted exactly once."""
        batch = new_id("whu")
        for tenant_id, count in delivered.items():
            await self._outbox.stage(
                conn,
                tenant_id,
                USAGE_TOPIC,
                {
                    "kind": "WEBHOOK_DELIVERY",
                    "quantity": count,
                    "at": datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(),
                    "idempotencyKey": f"{batch}:{tenant_id}",
                },
            )

    async def _note_failure(self, subscription_id: str, at: datetime) -> None:
        """Track how long a subscription has failed; disable it past the limit."""
        sub = await WebhookSubscription.filter(id=subscription_id).first()
        if sub is None or not sub.enabled:
            return
        if sub.failing_since is None:
            await WebhookSubscription.filter(id=sub.id, failing_since=None).update(failing_since=at)
            return
        if (at - sub.failing_since).total_seconds() < self._settings.disable_after_seconds:
            return
        reason = "every delivery failed for longer than the disable-after limit"
        async with in_transaction() as conn:
            changed = (
                await WebhookSubscription.filter(id=sub.id, enabled=True)
                .using_db(conn)
                .update(enabled=False, disabled_reason=reason)
            )
            if changed:
                await self._outbox.stage(
                    conn,
                    sub.tenant_id,
                    "webhook.subscription.disabled",
                    {"subscriptionId": sub.id, "url": sub.url, "reason": reason},
                    key=sub.id,
                )
        if changed:
            log.warning("webhook subscription disabled", subscription_id=sub.id)
            await self._outbox.flush()
