"""webhook-service handlers: subscriptions, and the pump that turns events into deliveries.

Every :data:`PUMP_SECONDS` the actor pumps (a ``Pump`` message, so it runs in the actor's turn):

1. for each tenant with a subscription it claims a batch from the tenant's consumer group
   ``sx.webhooks`` (all topics) in the event bus, writes one delivery per matching enabled
   subscription (idempotent: one per event and subscription), then acks the batch, so an event
   is never lost between the bus and the deliveries, even across a crash;
2. it leases due deliveries of enabled subscriptions (pending, or ``sending`` with a lapsed
   lease; a disabled subscription's wait until it is enabled again) that are the oldest
   unfinished of their subscription and key, and POSTs each from a task of its own (outside the
   turn, never touching the database). Finished attempts come back in batches (``AttemptsDone``):
   one transaction records them and schedules each next attempt (the retry schedule with ±20 %
   jitter, ``Retry-After`` within 1 to 2 times the scheduled wait) or ends the delivery
   (``succeeded`` / ``failed``), then the next due deliveries start at once.

A subscription failing with no success for ``SYNAPSEX_WEBHOOK_DISABLE_AFTER`` is disabled and
``webhook.subscription.disabled`` is published through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog
from tortoise.transactions import in_transaction

from synapsex.actors.domain_events import Outbox
from synapsex.config import load_master_key
from synapsex.contracts.common import Page
from synapsex.contracts.errors import Conflict, ContractError, NotFound
from synapsex.contracts.events import (
    AckEvents,
    ClaimEvents,
    CreateConsumerGroup,
    DeleteConsumerGroup,
    LeaseRef,
    ListEvents,
    topic_matcher,
)
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
from synapsex.runtime import Actor, handler, new_id
from synapsex.runtime.orm import get_or_not_found, numbered_placeholders, paginate

from .egress import AttemptResult, check_url, make_session, post
from .internal import AttemptsDone, Pump
from .models import WebhookDelivery, WebhookOutbox, WebhookSubscription
from .settings import WebhookSettings
from .signing import new_secret, webhook_headers

log = structlog.get_logger("synapsex.webhooks")

#: the consumer group each tenant's webhooks read the event bus through
GROUP = "sx.webhooks"
PUMP_SECONDS = 0.2
CLAIM_BATCH = 100
#: attempts in flight at once from this process
MAX_IN_FLIGHT = 64
#: a ``sending`` delivery whose process died is due again after this long
SENDING_LEASE_MS = 60_000
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


def event_body(event_id: str, topic: str, occurred_at: datetime, payload: Any) -> str:
    """The JSON body POSTed for an event, fixed at creation so every attempt sends (and signs)
    the same bytes."""
    return json.dumps(
        {
            "type": topic,
            "timestamp": occurred_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "data": payload,
            "id": event_id,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


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
    "created_at",
)
#: new deliveries from the stream; one per event and subscription even when a batch comes twice
_INSERT_SQL = (
    f"INSERT INTO webhook_deliveries ({', '.join(_INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_INSERT_COLUMNS))}) "
    "ON CONFLICT (subscription_id, dedupe_key) DO NOTHING"
)
_RECORD_SQL = (
    "UPDATE webhook_deliveries SET status = ?, attempts = ?, attempt_count = ?, "
    "next_attempt_at_ms = ?, lease_until_ms = NULL WHERE id = ?"
)
#: lease the due deliveries of enabled subscriptions (pending, or ``sending`` whose lease
#: lapsed) that are the oldest unfinished of their subscription and key, oldest first
_CLAIM_SQL = (
    "UPDATE webhook_deliveries SET status = 'sending', lease_until_ms = ?, lease_token = ? "
    "WHERE id IN ("
    " SELECT d.id FROM webhook_deliveries d"
    " JOIN webhook_subscriptions s ON s.id = d.subscription_id AND s.enabled"
    " WHERE d.next_attempt_at_ms <= ?"
    " AND (d.status = 'pending' OR (d.status = 'sending' AND d.lease_until_ms <= ?))"
    " AND (d.key IS NULL OR NOT EXISTS ("
    "  SELECT 1 FROM webhook_deliveries e WHERE e.subscription_id = d.subscription_id"
    "  AND e.key = d.key AND e.status IN ('pending', 'sending') AND e.id < d.id))"
    " ORDER BY d.id LIMIT ? {skip_locked}) "
    "RETURNING id, subscription_id, event_id, body, attempts, attempt_count"
)


@dataclass(frozen=True, slots=True)
class _Leased:
    """What an attempt needs of a delivery, as the claim returned it."""

    id: str
    subscription_id: str
    event_id: str
    body: str
    attempts: str
    attempt_count: int


@dataclass(slots=True)
class _Sending:
    """A delivery this process is attempting."""

    row: _Leased
    url: str
    secrets: tuple[str, ...]
    #: whether its subscription was failing when the attempt started
    failing: bool


class WebhookActor(Actor, service=SERVICE, models="synapsex.actors.webhook.models"):
    """Owns ``webhook_subscriptions`` and ``webhook_deliveries``."""

    async def on_start(self) -> None:
        runtime = self.actor_runtime
        self._settings = WebhookSettings.from_environ(runtime.settings.environ)
        self._key = load_master_key(runtime.settings)
        self._session = make_session(
            allow_private=self._settings.allow_private_networks, user_agent=USER_AGENT
        )
        self._outbox = Outbox(self, WebhookOutbox)
        self._outbox.start()
        self._sending: dict[str, _Sending] = {}
        #: attempts finished and not yet recorded
        self._finished: list[tuple[_Sending, AttemptResult, datetime]] = []
        self._results_queued = False
        sqlite = db_is_sqlite(self)
        self._record_sql = _RECORD_SQL if sqlite else numbered_placeholders(_RECORD_SQL)
        self._insert_sql = _INSERT_SQL if sqlite else numbered_placeholders(_INSERT_SQL)
        claim = _CLAIM_SQL.format(skip_locked="" if sqlite else "FOR UPDATE OF d SKIP LOCKED")
        self._claim_sql = claim if sqlite else numbered_placeholders(claim)
        self._attempts: set[asyncio.Task[None]] = set()
        self._pump_queued = False
        self._ticker = asyncio.create_task(self._tick(), name="webhook-pump")
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _task: self._release())

    def _release(self) -> None:
        self._ticker.cancel()
        for attempt in self._attempts:
            attempt.cancel()
        if not self._session.closed:
            asyncio.get_event_loop().create_task(self._session.close())

    async def on_stop(self) -> None:
        self._ticker.cancel()
        for attempt in self._attempts:
            attempt.cancel()
        await self._session.close()

    # ------------------------------------------------------------------ subscriptions

    def _seal(self, secret: str, subscription_id: str) -> str:
        return self._key.seal_text(secret, context=f"webhook-secret:{subscription_id}")

    def _open(self, sealed: str, subscription_id: str) -> str:
        return self._key.open_text(sealed, context=f"webhook-secret:{subscription_id}")

    async def _subscription(self, tenant_id: str, subscription_id: str) -> WebhookSubscription:
        return await get_or_not_found(
            WebhookSubscription.filter(id=subscription_id, tenant_id=tenant_id),
            "webhook subscription",
            id=subscription_id,
        )

    @handler
    async def create(self, msg: CreateWebhookSubscription) -> SubscriptionWithSecret:
        await check_url(msg.url, allow_private=self._settings.allow_private_networks)
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
        return SubscriptionWithSecret(subscription=subscription_view(row), secret=secret)

    async def _ensure_group(self, tenant_id: str) -> None:
        with contextlib.suppress(Conflict):  # the tenant's webhooks already read the bus
            await self.actor_runtime.ask(
                CreateConsumerGroup(
                    tenant_id=tenant_id,
                    name=GROUP,
                    topics=("#",),
                    max_attempts=100,
                    visibility_timeout_seconds=60.0,
                )
            )

    @handler
    async def update(self, msg: UpdateWebhookSubscription) -> WebhookSubscriptionView:
        row = await self._subscription(msg.tenant_id, msg.id)
        if msg.url is not None:
            await check_url(msg.url, allow_private=self._settings.allow_private_networks)
            row.url = msg.url
        if msg.event_types is not None:
            row.event_types = json.dumps(list(msg.event_types))
        if msg.description is not None:
            row.description = msg.description
        if msg.enabled is not None:
            row.enabled = msg.enabled
            row.disabled_reason = None if msg.enabled else "disabled by a user"
            row.failing_since = None
        await row.save()
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

    @handler
    async def get(self, msg: GetWebhookSubscription) -> WebhookSubscriptionView:
        return subscription_view(await self._subscription(msg.tenant_id, msg.id))

    @handler
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

    @handler
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
        self._pump_soon()
        return delivery_view(row)

    @handler
    async def replay_events(self, msg: ReplayWebhookEvents) -> int:
        sub = await self._subscription(msg.tenant_id, msg.subscription_id)
        matches = topic_matcher(json.loads(sub.event_types))
        since = msg.since if msg.since.tzinfo else msg.since.replace(tzinfo=UTC)
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
            self._pump_soon()
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
            "created_at": datetime.now(UTC),
        }

    # ------------------------------------------------------------------ the pump

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(PUMP_SECONDS)
            self._pump_soon()

    def _pump_soon(self) -> None:
        if self._pump_queued:
            return
        try:
            self.actor_runtime.tell_nowait(Pump())
            self._pump_queued = True
        except ContractError:
            pass  # full or stopping: the next tick tries again

    @handler
    async def pump(self, msg: Pump) -> None:
        self._pump_queued = False
        # every tenant with a subscription, enabled or not: a disabled one's events are taken
        # (and skip it) rather than kept in the group and delivered once it is enabled again
        by_tenant: dict[str, list[WebhookSubscription]] = {}
        for sub in await WebhookSubscription.all():
            enabled = by_tenant.setdefault(sub.tenant_id, [])
            if sub.enabled:
                enabled.append(sub)
        await self._record()  # results whose message could not be sent
        more = False
        for tenant_id, subs in by_tenant.items():
            more |= await self._take_events(tenant_id, subs)
        await self._dispatch()
        if more:  # a full batch: there may be more waiting in the bus
            self._pump_soon()

    async def _take_events(self, tenant_id: str, subs: list[WebhookSubscription]) -> bool:
        """Turn a batch of the tenant's events into deliveries; ``True`` if it was full."""
        try:
            claimed = await self.actor_runtime.ask(
                ClaimEvents(tenant_id=tenant_id, group=GROUP, limit=CLAIM_BATCH)
            )
        except NotFound:  # the group was deleted: make it again (events meanwhile are missed)
            await self._ensure_group(tenant_id)
            return False
        if not claimed:
            return False
        matchers = [(sub, topic_matcher(json.loads(sub.event_types))) for sub in subs]
        rows = []
        for delivery in claimed:
            event = delivery.event
            body = None
            for sub, matches in matchers:
                if matches(event.topic):
                    body = body or event_body(
                        event.id, event.topic, event.occurred_at, event.payload
                    )
                    fields = self._new_delivery(
                        tenant_id, sub.id, event.id, event.topic, event.key, body, dedupe=True
                    )
                    rows.append([fields[c] for c in _INSERT_COLUMNS])
        if rows:  # a redelivered batch (crash before the ack) finds its rows already there
            assert self.actor_db is not None
            await self.actor_db.client().execute_many(self._insert_sql, rows)
        await self.actor_runtime.ask(
            AckEvents(
                tenant_id=tenant_id,
                group=GROUP,
                leases=tuple(
                    LeaseRef(event_id=d.event.id, lease_id=d.lease_id or "") for d in claimed
                ),
            )
        )
        return len(claimed) == CLAIM_BATCH

    async def _dispatch(self) -> None:
        """Lease the due deliveries (one statement) and start their attempts."""
        room = MAX_IN_FLIGHT - len(self._sending)
        if room <= 0:
            return
        now = _now_ms()
        assert self.actor_db is not None
        rows = await self.actor_db.client().execute_query_dict(
            self._claim_sql, [now + SENDING_LEASE_MS, new_id("wls"), now, now, room]
        )
        if not rows:
            return
        subs = {
            s.id: s
            for s in await WebhookSubscription.filter(
                id__in=list({r["subscription_id"] for r in rows})
            )
        }
        for r in sorted(rows, key=lambda r: r["id"]):
            sub = subs.get(r["subscription_id"])
            if sub is None:  # deleted meanwhile: its deliveries went with it
                continue
            sending = _Sending(
                row=_Leased(**r),
                url=sub.url,
                secrets=self._secrets_of(sub),
                failing=sub.failing_since is not None,
            )
            self._sending[sending.row.id] = sending
            attempt = asyncio.create_task(self._attempt(sending))
            self._attempts.add(attempt)
            attempt.add_done_callback(self._attempts.discard)

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
        if not self._results_queued:
            try:
                self.actor_runtime.tell_nowait(AttemptsDone())
                self._results_queued = True
            except ContractError:
                pass  # the next pump records them

    @handler
    async def attempts_done(self, msg: AttemptsDone) -> None:
        self._results_queued = False
        await self._record()
        await self._dispatch()  # room was made: start the next due deliveries at once

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
        for sending, result, started in finished:
            self._sending.pop(sending.row.id, None)
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
        async with in_transaction() as conn:
            await conn.execute_many(self._record_sql, updates)
            if recovered:
                await (
                    WebhookSubscription.filter(id__in=list(recovered))
                    .using_db(conn)
                    .update(failing_since=None)
                )
        for subscription_id, (_sending, at) in failures.items():
            await self._note_failure(subscription_id, at)
        if any(u[3] is not None and u[3] <= now for u in updates):
            self._pump_soon()

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
