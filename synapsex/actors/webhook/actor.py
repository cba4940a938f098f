"""webhook-service handlers: subscriptions, and the pump that turns events into deliveries.

Every :data:`PUMP_SECONDS` the actor pumps (a ``Pump`` message, so it runs in the actor's turn):

1. for each tenant with a subscription it claims a batch from the tenant's consumer group
   ``sx.webhooks`` (all topics) in the event bus, writes one delivery per matching enabled
   subscription (idempotent: one per event and subscription), then acks the batch, so an event
   is never lost between the bus and the deliveries, even across a crash;
2. it leases due deliveries of enabled subscriptions (pending, or ``sending`` with a lapsed
   lease; a disabled subscription's wait until it is enabled again) that are the oldest
   unfinished of their subscription and key, and POSTs each from a task of its own (outside the
   turn, never touching the database); the result comes back as an ``AttemptDone`` message that
   records the attempt and schedules the next one (the retry schedule with ±20 % jitter,
   ``Retry-After`` within 1 to 2 times the scheduled wait) or ends it (``succeeded`` / ``failed``).

A subscription failing with no success for ``SYNAPSEX_WEBHOOK_DISABLE_AFTER`` is disabled and
``webhook.subscription.disabled`` is published through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog
from tortoise.expressions import Q, Subquery
from tortoise.transactions import in_transaction

from synapsex.actors.domain_events import Outbox
from synapsex.config import load_master_key
from synapsex.contracts.common import Page
from synapsex.contracts.errors import Conflict, ContractError, NotFound
from synapsex.contracts.events import (
    AckEvents,
    ClaimEvents,
    CreateConsumerGroup,
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
from synapsex.runtime.orm import get_or_not_found, paginate

from .egress import check_url, make_session, post
from .internal import AttemptDone, Pump
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


@dataclass(slots=True)
class _Sending:
    """A delivery this process is attempting."""

    row: WebhookDelivery
    url: str
    secrets: tuple[str, ...]


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
        for tenant_id, subs in by_tenant.items():
            await self._take_events(tenant_id, subs)
        await self._dispatch()

    async def _take_events(self, tenant_id: str, subs: list[WebhookSubscription]) -> None:
        try:
            claimed = await self.actor_runtime.ask(
                ClaimEvents(tenant_id=tenant_id, group=GROUP, limit=CLAIM_BATCH)
            )
        except NotFound:  # the group was deleted: make it again (events meanwhile are missed)
            await self._ensure_group(tenant_id)
            return
        if not claimed:
            return
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
                    rows.append(
                        WebhookDelivery(
                            **self._new_delivery(
                                tenant_id,
                                sub.id,
                                event.id,
                                event.topic,
                                event.key,
                                body,
                                dedupe=True,
                            )
                        )
                    )
        if rows:  # a redelivered batch (crash before the ack) finds its rows already there
            await WebhookDelivery.bulk_create(rows, ignore_conflicts=True)
        await self.actor_runtime.ask(
            AckEvents(
                tenant_id=tenant_id,
                group=GROUP,
                leases=tuple(
                    LeaseRef(event_id=d.event.id, lease_id=d.lease_id or "") for d in claimed
                ),
            )
        )

    async def _dispatch(self) -> None:
        room = MAX_IN_FLIGHT - len(self._sending)
        if room <= 0:
            return
        now = _now_ms()
        enabled = Subquery(WebhookSubscription.filter(enabled=True).values("id"))
        due = (  # a disabled subscription's deliveries wait until it is enabled again
            await WebhookDelivery.filter(next_attempt_at_ms__lte=now, subscription_id__in=enabled)
            .filter(Q(status="pending") | Q(status="sending", lease_until_ms__lte=now))
            .exclude(id__in=list(self._sending))
            .order_by("created_at", "id")
            .limit(room * 2)
        )
        due = await self._heads_only(due)
        if not due:
            return
        due = due[:room]
        token = new_id("wls")
        await (
            WebhookDelivery.filter(id__in=[d.id for d in due])
            .filter(Q(status="pending") | Q(status="sending", lease_until_ms__lte=now))
            .update(status="sending", lease_until_ms=now + SENDING_LEASE_MS, lease_token=token)
        )
        mine = await WebhookDelivery.filter(id__in=[d.id for d in due], lease_token=token)
        subs = {
            s.id: s
            for s in await WebhookSubscription.filter(
                id__in=list({d.subscription_id for d in mine})
            )
        }
        for row in mine:
            sub = subs.get(row.subscription_id)
            if sub is None:
                continue
            sending = _Sending(row=row, url=sub.url, secrets=self._secrets_of(sub))
            self._sending[row.id] = sending
            attempt = asyncio.create_task(self._attempt(sending))
            self._attempts.add(attempt)
            attempt.add_done_callback(self._attempts.discard)

    async def _heads_only(self, due: Sequence[WebhookDelivery]) -> list[WebhookDelivery]:
        """Keep, of each subscription's events sharing a key, only the oldest unfinished."""
        keyed = [d for d in due if d.key is not None]
        if not keyed:
            return list(due)
        unfinished = (
            await WebhookDelivery.filter(
                subscription_id__in=list({d.subscription_id for d in keyed}),
                key__in=list({d.key for d in keyed}),
                status__in=("pending", "sending"),
            )
            .order_by("created_at", "id")
            .values("id", "subscription_id", "key")
        )
        heads: dict[tuple[str, str], str] = {}
        for u in unfinished:
            heads.setdefault((u["subscription_id"], u["key"]), u["id"])
        return [d for d in due if d.key is None or heads.get((d.subscription_id, d.key)) == d.id]

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
        """One POST, outside the actor's turn; the result goes back as a message."""
        row = sending.row
        body = row.body.encode()
        headers = webhook_headers(sending.secrets, row.event_id, int(time.time()), body, USER_AGENT)
        started = datetime.now(UTC)
        result = await post(self._session, sending.url, body, headers)
        try:
            self.actor_runtime.tell_nowait(
                AttemptDone(
                    delivery_id=row.id,
                    at=started,
                    status_code=result.status,
                    duration_ms=result.duration_ms,
                    error=result.error,
                    body_excerpt=result.body_excerpt,
                    retry_after_seconds=result.retry_after_seconds,
                    ok=result.ok,
                )
            )
        except ContractError:  # the lease lapses and the delivery is attempted again
            self._sending.pop(row.id, None)

    @handler
    async def attempt_done(self, msg: AttemptDone) -> None:
        sending = self._sending.pop(msg.delivery_id, None)
        if sending is None:
            return
        row = sending.row
        attempts = json.loads(row.attempts)
        attempts.append(
            {
                "at": msg.at.isoformat(),
                "statusCode": msg.status_code,
                "durationMs": round(msg.duration_ms, 2),
                "error": msg.error,
                "responseBodyExcerpt": msg.body_excerpt,
            }
        )
        count = row.attempt_count + 1
        schedule = self._settings.retry_schedule
        if msg.ok:
            status, next_at = "succeeded", None
        elif count >= len(schedule):
            status, next_at = "failed", None
        else:
            wait = schedule[count] * random.uniform(1 - JITTER, 1 + JITTER)
            if msg.retry_after_seconds is not None:
                wait = min(max(msg.retry_after_seconds, schedule[count]), 2 * schedule[count])
            status, next_at = "pending", _now_ms() + int(wait * 1000)
        await WebhookDelivery.filter(id=row.id).update(
            status=status,
            attempts=json.dumps(attempts, separators=(",", ":")),
            attempt_count=count,
            next_attempt_at_ms=next_at,
            lease_until_ms=None,
        )
        await self._note_outcome(row.subscription_id, msg.ok, msg.at)
        if status == "pending" and next_at is not None and next_at <= _now_ms():
            self._pump_soon()

    async def _note_outcome(self, subscription_id: str, ok: bool, at: datetime) -> None:
        """Track how long a subscription has failed; disable it past the limit."""
        if ok:
            await (
                WebhookSubscription.filter(id=subscription_id)
                .exclude(failing_since=None)
                .update(failing_since=None)
            )
            return
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
