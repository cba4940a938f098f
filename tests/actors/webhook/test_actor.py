"""webhook-service on both engines, with the event bus and a real receiver on 127.0.0.1: signed
deliveries retried on a (short) schedule, ``Retry-After``, per-key order, secret rotation,
auto-disable, replays, URL refusals, tenant isolation, deletion and a restart mid-schedule.

Every wait is on a condition with a deadline: a request reaching the receiver, or a delivery or
subscription reaching a state. "Nothing was sent" is shown with a witness: a second, healthy
subscription of the same tenant whose delivery of a later event proves that the pump has been
through the point where the first one would have been sent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from synapsex.actors.webhook import actor as webhook_actor
from synapsex.actors.webhook.egress import ALLOW_PRIVATE_ENV
from synapsex.actors.webhook.settings import DISABLE_AFTER_ENV, RETRY_SCHEDULE_ENV
from synapsex.actors.webhook.signing import new_secret
from synapsex.contracts.billing import USAGE_TOPIC
from synapsex.contracts.errors import InvalidInput, NotFound
from synapsex.contracts.events import EventView, GetConsumerGroup, ListEvents, PublishEvent
from synapsex.contracts.webhooks import (
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
    WebhookDeliveryView,
)
from synapsex.runtime import Runtime
from synapsex.runtime.testing import raw_sql, wait_until

from .receiver import Answer, Received, Receiver

pytestmark = pytest.mark.usefixtures("db_environ")

SERVICES = ["event-bus-service", "webhook-service"]
A = "ten_a"
B = "ten_b"
#: four attempts: at once, then three retries about 0.2 s apart (±20 % jitter)
FAST = "0,0.2,0.2,0.2"
ATTEMPTS = 4
JITTER = 0.2
#: how long a test waits for a delivery to settle
DEADLINE = 10.0


def embedded(tmp_path, db_environ, **environ: str) -> Runtime:
    env = {ALLOW_PRIVATE_ENV: "true", RETRY_SCHEDULE_ENV: FAST, **db_environ, **environ}
    return Runtime.embedded(data_dir=tmp_path, services=SERVICES, environ=env)


@pytest.fixture
async def receiver():
    async with Receiver() as r:
        yield r


async def subscribe(
    rt: Runtime, url: str, *event_types: str, tenant: str = A
) -> SubscriptionWithSecret:
    return await rt.ask(
        CreateWebhookSubscription(
            tenant_id=tenant, url=url, event_types=event_types or ("orders.#",)
        )
    )


async def publish(
    rt: Runtime, topic: str, payload: object = None, *, key: str | None = None, tenant: str = A
) -> EventView:
    return await rt.ask(
        PublishEvent(tenant_id=tenant, source="test", topic=topic, payload=payload, key=key)
    )


async def deliveries(
    rt: Runtime, subscription_id: str, tenant: str = A
) -> list[WebhookDeliveryView]:
    page = await rt.ask(
        ListWebhookDeliveries(tenant_id=tenant, subscription_id=subscription_id, first=100)
    )
    return list(page.items)


async def settled(
    rt: Runtime,
    subscription_id: str,
    event_id: str,
    status: str,
    *,
    count: int = 1,
    tenant: str = A,
) -> list[WebhookDeliveryView]:
    """Wait until ``count`` deliveries of the event to the subscription have ``status``."""

    async def done() -> list[WebhookDeliveryView] | None:
        found = [
            d
            for d in await deliveries(rt, subscription_id, tenant)
            if d.event_id == event_id and d.status == status
        ]
        return found if len(found) >= count else None

    return await wait_until(
        done, deadline=DEADLINE, message=f"{count} delivery of {event_id} {status}"
    )


def codes(view: WebhookDeliveryView) -> list[int | None]:
    return [a.status_code for a in view.attempts]


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- delivery


async def test_a_failing_receiver_gets_signed_retries_of_the_same_body_until_it_answers_2xx(
    tmp_path, db_environ, receiver
):
    receiver.script("/hook", 500, 503)  # then 200
    async with embedded(tmp_path, db_environ) as rt:
        created = await subscribe(rt, receiver.url("/hook"))
        payload = {"order": 7, "name": "Zoë", "lines": [1, 2]}
        event = await publish(rt, "orders.created", payload)

        requests = await receiver.wait_for(3, path="/hook")
        (view,) = await settled(rt, created.subscription.id, event.id, "succeeded")

    expected_ts = event.occurred_at.astimezone(UTC).replace(
        microsecond=event.occurred_at.microsecond // 1000 * 1000
    )
    for r in requests:
        assert r.verify(created.secret) == r.json  # the reference library accepts it
        assert r.webhook_id == event.id  # stable across retries
        assert r.body == requests[0].body  # the same bytes every attempt
        assert len(r.signatures) == 1
        assert r.signatures[0].startswith("v1,")
        assert abs(r.timestamp - r.at) <= 2  # the attempt's own time, not the event's
        assert r.headers["content-type"] == "application/json"
        assert r.headers["user-agent"].startswith("SynapseX-Webhooks")
    body = requests[0].json
    assert list(body) == ["type", "timestamp", "data", "id"]
    assert body["type"] == "orders.created"
    assert body["data"] == payload
    assert body["id"] == event.id
    assert body["timestamp"].endswith("Z")
    assert datetime.fromisoformat(body["timestamp"]) == expected_ts
    assert [r.timestamp for r in requests] == sorted(r.timestamp for r in requests)
    with pytest.raises(WebhookVerificationError):
        requests[0].verify(new_secret())

    assert view.subscription_id == created.subscription.id
    assert view.topic == "orders.created"
    assert view.status == "succeeded"
    assert view.next_attempt_at is None
    assert codes(view) == [500, 503, 200]
    assert [a.response_body_excerpt for a in view.attempts] == [
        "answered 500",
        "answered 503",
        "ok",
    ]
    assert all(a.error is None and a.duration_ms >= 0 for a in view.attempts)
    assert [a.at for a in view.attempts] == sorted(a.at for a in view.attempts)


async def test_after_the_last_scheduled_attempt_a_delivery_is_failed(
    tmp_path, db_environ, receiver
):
    receiver.always("/down", 500)
    refused = f"http://127.0.0.1:{closed_port()}/hook"
    async with embedded(tmp_path, db_environ) as rt:
        down = await subscribe(rt, receiver.url("/down"))
        unreachable = await subscribe(rt, refused)
        event = await publish(rt, "orders.created", {"n": 1})

        (failed,) = await settled(rt, down.subscription.id, event.id, "failed")
        (gone,) = await settled(rt, unreachable.subscription.id, event.id, "failed")
        sent = receiver.at("/down")

    # a failed delivery is never attempted again: what was sent is the whole schedule
    assert len(sent) == ATTEMPTS
    assert codes(failed) == [500] * ATTEMPTS
    assert failed.next_attempt_at is None
    gaps = [b.mono - a.mono for a, b in itertools.pairwise(sent)]
    assert all(gap >= 0.2 * (1 - JITTER) - 0.01 for gap in gaps), gaps
    assert {r.webhook_id for r in sent} == {event.id}

    assert codes(gone) == [None] * ATTEMPTS  # no answer: no status, and an error saying why
    assert all(a.error and "cannot connect" in a.error for a in gone.attempts), gone.attempts
    assert all("/hook" not in (a.error or "") for a in gone.attempts)  # never the URL's path


async def test_retry_after_is_honoured_within_one_to_two_scheduled_waits(
    tmp_path, db_environ, receiver
):
    wait = 0.6
    receiver.script(
        "/hook",
        Answer(429, {"Retry-After": "1"}),  # 1 s: within [0.6, 1.2], honoured as asked
        Answer(503, {"Retry-After": "3600"}),  # an hour: capped at twice the schedule
        Answer(429, {"Retry-After": "0"}),  # at once: never before the scheduled wait
    )
    schedule = f"0,{wait},{wait},{wait}"
    async with embedded(tmp_path, db_environ, **{RETRY_SCHEDULE_ENV: schedule}) as rt:
        created = await subscribe(rt, receiver.url("/hook"))
        event = await publish(rt, "orders.created", {"n": 1})

        requests = await receiver.wait_for(4, path="/hook", deadline=15)
        (view,) = await settled(rt, created.subscription.id, event.id, "succeeded")

    assert codes(view) == [429, 503, 429, 200]
    first, second, third, fourth = requests
    slack = 0.5  # the pump runs every 0.2 s
    asked = second.mono - first.mono
    capped = third.mono - second.mono
    not_sooner = fourth.mono - third.mono
    # without Retry-After a wait is 0.6 s ± 20 %, so 1 s is only reached by honouring it
    assert 1.0 - 0.01 <= asked <= 2 * wait + slack, asked
    assert 2 * wait - 0.01 <= capped <= 2 * wait + slack, capped
    assert wait - 0.01 <= not_sooner <= 2 * wait + slack, not_sooner
    # attempts a second or more apart are signed with their own, later, timestamps
    assert first.timestamp < second.timestamp < third.timestamp <= fourth.timestamp
    for r in requests:
        assert r.webhook_id == event.id
        assert r.body == first.body
        r.verify(created.secret)


async def test_events_sharing_a_key_go_out_in_order_while_other_keys_go_on(
    tmp_path, db_environ, receiver
):
    def n(r: Received) -> int:
        return r.json["data"]["n"]

    def rule(r: Received) -> int:
        if n(r) == 1:
            return 500 if r.attempt <= 2 else 200  # key k's head fails twice, then succeeds
        if n(r) == 4:
            return 500  # key j's head never succeeds
        return 200

    receiver.rules["/hook"] = rule
    async with embedded(tmp_path, db_environ) as rt:
        created = await subscribe(rt, receiver.url("/hook"))
        head = await publish(rt, "orders.created", {"n": 1}, key="k")
        follower = await publish(rt, "orders.paid", {"n": 2}, key="k")
        other = await publish(rt, "orders.created", {"n": 3}, key="other")
        stuck = await publish(rt, "orders.created", {"n": 4}, key="j")
        after_stuck = await publish(rt, "orders.paid", {"n": 5}, key="j")

        await settled(rt, created.subscription.id, follower.id, "succeeded")
        await settled(rt, created.subscription.id, after_stuck.id, "succeeded")
        await settled(rt, created.subscription.id, head.id, "succeeded")
        await settled(rt, created.subscription.id, other.id, "succeeded")
        await settled(rt, created.subscription.id, stuck.id, "failed")

    def of(event: EventView) -> list[Received]:
        return [r for r in receiver.at("/hook") if r.webhook_id == event.id]

    head_ok = of(head)[-1]
    assert [r.answer.status for r in of(head)] == [500, 500, 200]
    assert [r.answer.status for r in of(follower)] == [200]  # sent once, when its turn came
    assert of(follower)[0].mono > head_ok.mono
    assert of(other)[0].mono < head_ok.mono  # another key did not wait for k
    # a head that fails for good lets the next event of its key go
    assert len(of(stuck)) == ATTEMPTS
    assert of(after_stuck)[0].mono > of(stuck)[-1].mono


async def test_events_of_other_topics_are_not_delivered(tmp_path, db_environ, receiver):
    async with embedded(tmp_path, db_environ) as rt:
        orders = await subscribe(rt, receiver.url("/orders"), "orders.*")
        billing = await subscribe(rt, receiver.url("/billing"), "billing.#", "audit.note")
        first = await publish(rt, "orders.created")
        skipped = await publish(rt, "orders.eu.created")  # '*' is one segment
        invoice = await publish(rt, "billing.invoice.paid")
        note = await publish(rt, "audit.note")
        last = await publish(rt, "orders.paid")

        await receiver.wait_for(2, path="/orders")
        await receiver.wait_for(2, path="/billing")
        await settled(rt, billing.subscription.id, note.id, "succeeded")
        # the last event is through the pump, so everything before it was considered
        await settled(rt, orders.subscription.id, last.id, "succeeded")

        assert [d.event_id for d in await deliveries(rt, orders.subscription.id)] == [
            first.id,
            last.id,
        ]
        assert [d.event_id for d in await deliveries(rt, billing.subscription.id)] == [
            invoice.id,
            note.id,
        ]
    assert skipped.id not in {r.webhook_id for r in receiver.requests}


async def test_delivered_webhooks_are_reported_as_usage_but_usage_deliveries_are_not(
    tmp_path, db_environ, receiver
):
    """Each recording of results publishes, per tenant, one ``usage.recorded`` of kind
    ``WEBHOOK_DELIVERY`` counting the deliveries that succeeded; deliveries of usage events
    themselves are not counted (else every usage event would make another)."""
    async with embedded(tmp_path, db_environ) as rt:
        everything = await subscribe(rt, receiver.url("/all"), "#")
        sent = [await publish(rt, "orders.created", {"n": i}) for i in range(3)]
        for event in sent:
            await settled(rt, everything.subscription.id, event.id, "succeeded")

        async def usage() -> list[EventView]:
            page = await rt.ask(ListEvents(tenant_id=A, topic=USAGE_TOPIC, first=100))
            return list(page.items)

        async def counted() -> int | None:
            total = sum(e.payload["quantity"] for e in await usage())
            return total if total >= len(sent) else None

        assert await wait_until(counted, deadline=DEADLINE) == len(sent)
        reports = await usage()
        assert {e.payload["kind"] for e in reports} == {"WEBHOOK_DELIVERY"}
        assert {e.source for e in reports} == {"webhook-service"}
        # the usage events are delivered too (the subscription takes '#'), and counted never:
        # once they succeeded and the outbox is empty (all it staged is published), the total
        # is what it was
        for report in reports:
            await settled(rt, everything.subscription.id, report.id, "succeeded")
        async with raw_sql(rt, "webhook-service") as run:

            async def outbox_empty() -> bool:
                return not await run("SELECT id FROM webhook_outbox")

            await wait_until(outbox_empty, deadline=DEADLINE)
        assert sum(e.payload["quantity"] for e in await usage()) == len(sent)
        assert len(await usage()) == len(reports)


# ---------------------------------------------------------------------------- secrets


async def test_during_a_rotation_deliveries_carry_both_signatures(tmp_path, db_environ, receiver):
    async with embedded(tmp_path, db_environ) as rt:
        created = await subscribe(rt, receiver.url("/hook"))
        sub_id, first_secret = created.subscription.id, created.secret
        assert first_secret.startswith("whsec_")
        assert created.subscription.secret_rotated_at is None

        await publish(rt, "orders.created", {"n": 1})
        (before,) = await receiver.wait_for(1)

        rotated = await rt.ask(RotateWebhookSecret(tenant_id=A, id=sub_id))
        second_secret = rotated.secret
        assert second_secret.startswith("whsec_")
        assert second_secret != first_secret
        assert rotated.subscription.secret_rotated_at is not None
        await publish(rt, "orders.created", {"n": 2})
        during = (await receiver.wait_for(2))[1]

        third_secret = (await rt.ask(RotateWebhookSecret(tenant_id=A, id=sub_id))).secret
        await publish(rt, "orders.created", {"n": 3})
        after = (await receiver.wait_for(3))[2]

    assert len(before.signatures) == 1
    before.verify(first_secret)

    # both secrets verify the same request; the current one's signature comes first
    assert len(during.signatures) == 2
    during.verify(second_secret)
    during.verify(first_secret)
    signed_at = datetime.fromtimestamp(during.timestamp, UTC)
    current = Webhook(second_secret).sign(during.webhook_id, signed_at, during.body.decode())
    assert during.signatures[0] == current
    with pytest.raises(WebhookVerificationError):
        during.verify(new_secret())

    # a second rotation keeps only the secret just replaced
    assert len(after.signatures) == 2
    after.verify(third_secret)
    after.verify(second_secret)
    with pytest.raises(WebhookVerificationError):
        after.verify(first_secret)


async def test_once_the_overlap_is_over_only_the_new_secret_signs(tmp_path, db_environ, receiver):
    async with embedded(tmp_path, db_environ) as rt:
        created = await subscribe(rt, receiver.url("/hook"))
        sub_id = created.subscription.id
        rotated = await rt.ask(RotateWebhookSecret(tenant_id=A, id=sub_id))
        await publish(rt, "orders.created", {"n": 1})
        (during,) = await receiver.wait_for(1)
        async with raw_sql(rt, "webhook-service") as run:  # 24 h later, as far as it knows
            await run(
                "UPDATE webhook_subscriptions SET previous_secret_until = ? WHERE id = ?",
                datetime.now(UTC) - timedelta(seconds=1),
                sub_id,
            )
        await publish(rt, "orders.created", {"n": 2})
        after = (await receiver.wait_for(2))[1]
    assert len(during.signatures) == 2
    assert len(after.signatures) == 1
    after.verify(rotated.secret)
    with pytest.raises(WebhookVerificationError):
        after.verify(created.secret)


async def test_secrets_are_shown_by_create_and_rotate_only_and_stored_sealed(
    tmp_path, db_environ, receiver
):
    async with embedded(tmp_path, db_environ) as rt:
        created = await subscribe(rt, receiver.url("/hook"))
        rotated = await rt.ask(RotateWebhookSecret(tenant_id=A, id=created.subscription.id))
        shown = [
            await rt.ask(GetWebhookSubscription(tenant_id=A, id=created.subscription.id)),
            await rt.ask(ListWebhookSubscriptions(tenant_id=A)),
            await rt.ask(UpdateWebhookSubscription(tenant_id=A, id=created.subscription.id)),
        ]
        (db,) = [d for d in rt.databases() if d.service == "webhook-service"]
        await db.open()
        try:
            rows = await db.client().execute_query_dict("SELECT * FROM webhook_subscriptions")
        finally:
            await db.aclose()

    assert len(rows) == 1
    stored = json.dumps(rows, default=str)
    for secret in (created.secret, rotated.secret):
        assert secret not in stored
        assert secret.removeprefix("whsec_") not in stored
        for view in shown:
            assert secret not in repr(view)
    assert rows[0]["secret_sealed"].startswith("v1.")
    assert rows[0]["previous_secret_sealed"].startswith("v1.")


# ---------------------------------------------------------------------------- disabling


async def test_a_subscription_failing_past_the_limit_is_disabled_announced_and_left_alone(
    tmp_path, db_environ, receiver
):
    receiver.always("/failing", 500)
    environ = {DISABLE_AFTER_ENV: "1s", RETRY_SCHEDULE_ENV: "0,0.5,0.5,0.5,0.5,0.5"}
    async with embedded(tmp_path, db_environ, **environ) as rt:
        failing = await subscribe(rt, receiver.url("/failing"))
        witness = await subscribe(rt, receiver.url("/witness"))
        sub_id = failing.subscription.id
        first = await publish(rt, "orders.created", {"n": 1})

        async def disabled():
            view = await rt.ask(GetWebhookSubscription(tenant_id=A, id=sub_id))
            return None if view.enabled else view

        view = await wait_until(disabled, deadline=DEADLINE)
        assert view.disabled_reason
        assert "disable-after" in view.disabled_reason

        async def announced():
            page = await rt.ask(ListEvents(tenant_id=A, topic="webhook.subscription.disabled"))
            return page.items

        (event,) = await wait_until(announced, deadline=DEADLINE)
        assert event.payload == {
            "subscriptionId": sub_id,
            "url": receiver.url("/failing"),
            "reason": view.disabled_reason,
        }
        assert event.key == sub_id
        assert event.source == "webhook-service"

        # its delivery in progress is held, not sent: once it is due and a later event has
        # gone to the witness, the pump has passed it by
        (held,) = await deliveries(rt, sub_id)
        assert held.status == "pending"
        assert held.next_attempt_at is not None
        assert len(held.attempts) < 6  # disabled before its schedule ran out
        due = held.next_attempt_at
        await wait_until(lambda: datetime.now(UTC) > due, deadline=DEADLINE)
        second = await publish(rt, "orders.paid", {"n": 2})
        await settled(rt, witness.subscription.id, second.id, "succeeded")
        # ... and new events make no deliveries for it
        assert [d.event_id for d in await deliveries(rt, sub_id)] == [first.id]
        (still,) = await deliveries(rt, sub_id)
        assert still.status == "pending"
        assert still.attempts == held.attempts
        assert len(receiver.at("/failing")) == len(held.attempts)

        # enabled again, its held delivery goes out at once; it fails, but the failure clock
        # started again, so the subscription stays enabled (it would be past the limit else)
        enabled = await rt.ask(UpdateWebhookSubscription(tenant_id=A, id=sub_id, enabled=True))
        assert enabled.enabled
        assert enabled.disabled_reason is None

        async def resumed():
            (view,) = await deliveries(rt, sub_id)
            return len(view.attempts) > len(held.attempts)

        await wait_until(resumed, deadline=DEADLINE)
        assert (await rt.ask(GetWebhookSubscription(tenant_id=A, id=sub_id))).enabled
        receiver.always("/failing", 200)  # fixed before the next retry, 0.4 to 0.6 s later
        (done,) = await settled(rt, sub_id, first.id, "succeeded")
        assert codes(done) == [500] * (len(held.attempts) + 1) + [200]
        third = await publish(rt, "orders.shipped", {"n": 3})
        await settled(rt, sub_id, third.id, "succeeded")
    assert second.id not in {r.webhook_id for r in receiver.at("/failing")}


async def pump_passes(rt: Runtime, probe_sub: str) -> None:
    """Return once every tenant's events published before the call have been taken from the
    bus: two probes of tenant B, one after the other, each delivered. (Pumps run one at a
    time and take every tenant's events; the pump that takes the second probe began after the
    one that took the first had finished, so after this call began.)"""
    for _ in range(2):
        probe = await publish(rt, "probe.sent", tenant=B)
        await settled(rt, probe_sub, probe.id, "succeeded", tenant=B)


async def test_a_subscription_disabled_by_a_user_gets_nothing_until_enabled(
    tmp_path, db_environ, receiver
):
    """Also when it is the tenant's only subscription: the events published meanwhile are not
    kept for it (a replay recovers them)."""
    async with embedded(tmp_path, db_environ) as rt:
        probes = await subscribe(rt, receiver.url("/probe"), "probe.#", tenant=B)
        created = await subscribe(rt, receiver.url("/hook"))
        sub_id = created.subscription.id
        view = await rt.ask(UpdateWebhookSubscription(tenant_id=A, id=sub_id, enabled=False))
        assert not view.enabled
        assert view.disabled_reason == "disabled by a user"
        meanwhile = await publish(rt, "orders.created", {"n": 1})
        await pump_passes(rt, probes.subscription.id)

        view = await rt.ask(UpdateWebhookSubscription(tenant_id=A, id=sub_id, enabled=True))
        assert view.enabled
        assert view.disabled_reason is None
        later = await publish(rt, "orders.created", {"n": 2})
        await settled(rt, sub_id, later.id, "succeeded")
        assert [d.event_id for d in await deliveries(rt, sub_id)] == [later.id]
        since = meanwhile.occurred_at
        assert (
            await rt.ask(ReplayWebhookEvents(tenant_id=A, subscription_id=sub_id, since=since)) == 2
        )
        await settled(rt, sub_id, meanwhile.id, "succeeded")
    assert [r.webhook_id for r in receiver.at("/hook")][:1] == [later.id]


async def test_a_delivery_in_progress_is_held_while_its_subscription_is_disabled(
    tmp_path, db_environ, receiver
):
    receiver.always("/hook", 503)
    async with embedded(tmp_path, db_environ, **{RETRY_SCHEDULE_ENV: "0,0.5,0.5"}) as rt:
        probes = await subscribe(rt, receiver.url("/probe"), "probe.#", tenant=B)
        created = await subscribe(rt, receiver.url("/hook"))
        sub_id = created.subscription.id
        event = await publish(rt, "orders.created")
        (first,) = await receiver.wait_for(1, path="/hook")
        await rt.ask(UpdateWebhookSubscription(tenant_id=A, id=sub_id, enabled=False))

        async def retry_due():
            views = await deliveries(rt, sub_id)
            due = views[0].next_attempt_at if views[0].attempts else None
            return due is not None and datetime.now(UTC) > due

        await wait_until(retry_due, deadline=DEADLINE)
        await pump_passes(rt, probes.subscription.id)  # ... and dispatched the due ones
        (held,) = await deliveries(rt, sub_id)
        assert held.status == "pending"
        assert codes(held) == [503]
        assert receiver.at("/hook") == [first]

        receiver.always("/hook", 200)
        await rt.ask(UpdateWebhookSubscription(tenant_id=A, id=sub_id, enabled=True))
        (done,) = await settled(rt, sub_id, event.id, "succeeded")
    assert codes(done) == [503, 200]


# ---------------------------------------------------------------------------- replays


async def test_replaying_a_delivery_makes_a_new_one_with_the_same_event_id(
    tmp_path, db_environ, receiver
):
    receiver.script("/hook", 500)  # the original fails for good (one attempt); then 200
    async with embedded(tmp_path, db_environ, **{RETRY_SCHEDULE_ENV: "0"}) as rt:
        created = await subscribe(rt, receiver.url("/hook"))
        sub_id = created.subscription.id
        event = await publish(rt, "orders.created", {"n": 1})
        (original,) = await settled(rt, sub_id, event.id, "failed")

        replay = await rt.ask(ReplayWebhookDelivery(tenant_id=A, id=original.id))
        assert replay.id != original.id
        assert replay.event_id == event.id
        assert replay.subscription_id == sub_id
        assert replay.status == "pending"
        assert replay.attempts == ()
        (done,) = await settled(rt, sub_id, event.id, "succeeded")
        views = await deliveries(rt, sub_id)

        with pytest.raises(NotFound):
            await rt.ask(ReplayWebhookDelivery(tenant_id=A, id="whd_nope"))

    assert done.id == replay.id
    assert codes(done) == [200]
    assert [v.id for v in views] == [original.id, replay.id]
    assert codes(views[0]) == [500]  # the original is left as it was
    sent = receiver.at("/hook")
    assert len(sent) == 2
    assert {r.webhook_id for r in sent} == {event.id}
    assert sent[-1].body == sent[0].body
    assert sent[-1].verify(created.secret)["id"] == event.id


async def test_replaying_events_since_a_time_redelivers_the_matching_ones(
    tmp_path, db_environ, receiver
):
    async with embedded(tmp_path, db_environ) as rt:
        created = await subscribe(rt, receiver.url("/hook"), "orders.#")
        sub_id = created.subscription.id
        old = await publish(rt, "orders.created", {"n": 1})
        await settled(rt, sub_id, old.id, "succeeded")  # so the next ones occur later
        paid = await publish(rt, "orders.paid", {"n": 2})
        await publish(rt, "billing.invoiced", {"n": 3})  # not a topic it subscribes to
        shipped = await publish(rt, "orders.shipped", {"n": 4}, key="o-1")
        await publish(rt, "orders.created", {"n": 5}, tenant=B)  # another tenant's
        await settled(rt, sub_id, shipped.id, "succeeded")

        since = paid.occurred_at
        assert (
            await rt.ask(ReplayWebhookEvents(tenant_id=A, subscription_id=sub_id, since=since)) == 2
        )
        await settled(rt, sub_id, paid.id, "succeeded", count=2)
        await settled(rt, sub_id, shipped.id, "succeeded", count=2)
        # a time without an offset is UTC
        naive = since.astimezone(UTC).replace(tzinfo=None)
        made = await rt.ask(ReplayWebhookEvents(tenant_id=A, subscription_id=sub_id, since=naive))
        assert made == 2
        await settled(rt, sub_id, shipped.id, "succeeded", count=3)
        future = datetime(2999, 1, 1, tzinfo=UTC)
        assert (
            await rt.ask(ReplayWebhookEvents(tenant_id=A, subscription_id=sub_id, since=future))
            == 0
        )
        views = await deliveries(rt, sub_id)

    assert [v.event_id for v in views] == [old.id, paid.id, shipped.id] + [paid.id, shipped.id] * 2
    sent = [r.webhook_id for r in receiver.at("/hook")]
    assert sent.count(old.id) == 1
    assert sent.count(paid.id) == sent.count(shipped.id) == 3
    assert len(sent) == 7


# ---------------------------------------------------------------------------- URLs


PRIVATE_URLS = [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("https://172.16.0.1/hook", "private"),
    ("http://192.168.1.10/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://100.64.0.1/hook", "CGNAT"),
    ("http://[::1]:8080/hook", "loopback"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[::ffff:127.0.0.1]/hook", "IPv4-mapped form of 127.0.0.1"),
    ("http://localhost:8080/hook", "loopback"),
]
PUBLIC_URL = "https://93.184.216.34/hook"  # an IP literal: no DNS needed


async def test_without_the_switch_urls_reaching_private_networks_are_refused(tmp_path, db_environ):
    environ = {**db_environ, ALLOW_PRIVATE_ENV: "false"}
    async with Runtime.embedded(data_dir=tmp_path, services=SERVICES, environ=environ) as rt:
        for url, named in PRIVATE_URLS:
            with pytest.raises(InvalidInput) as info:
                await subscribe(rt, url)
            assert info.value.field == "url", url
            assert named in info.value.problem, (url, info.value.problem)
        for url in ("ftp://93.184.216.34/hook", "file:///etc/passwd", "http://u:p@8.8.8.8/"):
            with pytest.raises(InvalidInput) as info:
                await subscribe(rt, url)
            assert info.value.field == "url", url
        assert (await rt.ask(ListWebhookSubscriptions(tenant_id=A))).items == ()

        # a public address is fine, and cannot be changed to a private one
        created = await subscribe(rt, PUBLIC_URL)
        for url in ("http://10.0.0.1/", "http://[::1]/", "http://localhost/"):
            with pytest.raises(InvalidInput) as info:
                await rt.ask(
                    UpdateWebhookSubscription(tenant_id=A, id=created.subscription.id, url=url)
                )
            assert info.value.field == "url"
        view = await rt.ask(GetWebhookSubscription(tenant_id=A, id=created.subscription.id))
        assert view.url == PUBLIC_URL


async def test_with_the_switch_only_the_scheme_and_shape_are_checked(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        for url in ("ftp://127.0.0.1/hook", "gopher://localhost/", "http:///nohost"):
            with pytest.raises(InvalidInput) as info:
                await subscribe(rt, url)
            assert info.value.field == "url", url
        assert (await subscribe(rt, "http://[::1]:9/x")).subscription.url == "http://[::1]:9/x"


# ---------------------------------------------------------------------------- tenants


async def test_another_tenants_subscriptions_and_deliveries_do_not_exist(
    tmp_path, db_environ, receiver
):
    async with embedded(tmp_path, db_environ) as rt:
        # (orders.#, not #: each tenant's own usage.recorded of its deliveries would come too)
        mine = await subscribe(rt, receiver.url("/a"), "orders.#")
        theirs = await subscribe(rt, receiver.url("/b"), "orders.#", tenant=B)
        sub_id = mine.subscription.id
        b_event = await publish(rt, "orders.created", {"tenant": "b"}, tenant=B)
        a_event = await publish(rt, "orders.created", {"tenant": "a"})
        await settled(rt, sub_id, a_event.id, "succeeded")
        (delivery,) = await deliveries(rt, sub_id)

        asks = [
            GetWebhookSubscription(tenant_id=B, id=sub_id),
            UpdateWebhookSubscription(tenant_id=B, id=sub_id, url=receiver.url("/stolen")),
            RotateWebhookSecret(tenant_id=B, id=sub_id),
            DeleteWebhookSubscription(tenant_id=B, id=sub_id),
            ListWebhookDeliveries(tenant_id=B, subscription_id=sub_id),
            ReplayWebhookDelivery(tenant_id=B, id=delivery.id),
            ReplayWebhookEvents(tenant_id=B, subscription_id=sub_id, since=datetime(2000, 1, 1)),
        ]
        for msg in asks:
            with pytest.raises(NotFound):
                await rt.ask(msg)
        listed = await rt.ask(ListWebhookSubscriptions(tenant_id=B))
        assert [s.id for s in listed.items] == [theirs.subscription.id]

        # untouched: same URL, same (single) secret, one delivery
        view = await rt.ask(GetWebhookSubscription(tenant_id=A, id=sub_id))
        assert view.url == receiver.url("/a")
        assert view.secret_rotated_at is None
        again = await publish(rt, "orders.paid", {"tenant": "a"})
        await settled(rt, sub_id, again.id, "succeeded")
        await settled(rt, theirs.subscription.id, b_event.id, "succeeded", tenant=B)
        assert [d.event_id for d in await deliveries(rt, sub_id)] == [a_event.id, again.id]

    to_a = receiver.at("/a")
    assert [r.webhook_id for r in to_a] == [a_event.id, again.id]
    assert all(r.json["data"] == {"tenant": "a"} for r in to_a)
    assert len(to_a[-1].signatures) == 1
    to_a[-1].verify(mine.secret)
    assert [r.webhook_id for r in receiver.at("/b")] == [b_event.id]
    assert receiver.at("/stolen") == []


# ---------------------------------------------------------------------------- changes


async def test_updates_take_effect_on_the_next_deliveries(tmp_path, db_environ, receiver):
    async with embedded(tmp_path, db_environ) as rt:
        created = await subscribe(rt, receiver.url("/old"), "orders.#")
        sub_id = created.subscription.id
        view = await rt.ask(
            UpdateWebhookSubscription(
                tenant_id=A,
                id=sub_id,
                url=receiver.url("/new"),
                event_types=("billing.#",),
                description="billing only",
            )
        )
        assert view.url == receiver.url("/new")
        assert view.event_types == ("billing.#",)
        assert view.description == "billing only"
        skipped = await publish(rt, "orders.created")
        invoice = await publish(rt, "billing.invoiced")
        await settled(rt, sub_id, invoice.id, "succeeded")
        assert [d.event_id for d in await deliveries(rt, sub_id)] == [invoice.id]
    assert [r.webhook_id for r in receiver.requests] == [invoice.id]
    assert skipped.id != invoice.id


async def test_deleting_a_subscription_stops_its_deliveries(tmp_path, db_environ, receiver):
    async with embedded(tmp_path, db_environ) as rt:
        doomed = await subscribe(rt, receiver.url("/doomed"))
        witness = await subscribe(rt, receiver.url("/witness"))
        sub_id = doomed.subscription.id
        before = await publish(rt, "orders.created", {"n": 1})
        await settled(rt, sub_id, before.id, "succeeded")

        last = await rt.ask(DeleteWebhookSubscription(tenant_id=A, id=sub_id))
        assert last.id == sub_id
        for msg in (
            GetWebhookSubscription(tenant_id=A, id=sub_id),
            ListWebhookDeliveries(tenant_id=A, subscription_id=sub_id),
            DeleteWebhookSubscription(tenant_id=A, id=sub_id),
        ):
            with pytest.raises(NotFound):
                await rt.ask(msg)
        after = await publish(rt, "orders.created", {"n": 2})
        await settled(rt, witness.subscription.id, after.id, "succeeded")
        listed = await rt.ask(ListWebhookSubscriptions(tenant_id=A))
        assert [s.id for s in listed.items] == [witness.subscription.id]
    assert [r.webhook_id for r in receiver.at("/doomed")] == [before.id]


async def test_the_tenants_last_subscription_takes_its_consumer_group_along(
    tmp_path, db_environ, receiver
):
    """Nobody would read (so ack, so prune) the tenant's events any more."""
    async with embedded(tmp_path, db_environ) as rt:
        first = await subscribe(rt, receiver.url("/a"))
        second = await subscribe(rt, receiver.url("/b"))
        await rt.ask(DeleteWebhookSubscription(tenant_id=A, id=first.subscription.id))
        assert (await rt.ask(GetConsumerGroup(tenant_id=A, name="sx.webhooks"))).name
        await rt.ask(DeleteWebhookSubscription(tenant_id=A, id=second.subscription.id))
        with pytest.raises(NotFound):
            await rt.ask(GetConsumerGroup(tenant_id=A, name="sx.webhooks"))
        again = await subscribe(rt, receiver.url("/c"))  # the group comes back with it
        event = await publish(rt, "orders.created")
        await settled(rt, again.subscription.id, event.id, "succeeded")


# ---------------------------------------------------------------------------- restart


async def test_a_delivery_resumes_its_schedule_after_a_restart(tmp_path, db_environ, receiver):
    receiver.script("/hook", 500)  # the first attempt fails, the retry succeeds
    environ = {RETRY_SCHEDULE_ENV: "0,1,1"}
    async with embedded(tmp_path, db_environ, **environ) as rt:
        created = await subscribe(rt, receiver.url("/hook"))
        sub_id = created.subscription.id
        event = await publish(rt, "orders.created", {"n": 1})

        async def first_attempt_recorded():
            views = await deliveries(rt, sub_id)
            return views and len(views[0].attempts) == 1

        await wait_until(first_attempt_recorded, deadline=DEADLINE)
    stopped = time.monotonic()
    assert len(receiver.requests) == 1, "the retry came before the stop: the test proves nothing"

    async with embedded(tmp_path, db_environ, **environ) as rt:
        (view,) = await settled(rt, sub_id, event.id, "succeeded")
    first, retry = receiver.at("/hook")
    assert retry.mono > stopped
    assert codes(view) == [500, 200]
    assert retry.webhook_id == first.webhook_id == event.id
    assert retry.body == first.body
    retry.verify(created.secret)


# ---------------------------------------------------------------------------- intake and leases


async def test_an_event_is_taken_when_it_is_committed_not_at_the_next_sweep(
    tmp_path, db_environ, receiver, monkeypatch
):
    # the periodic sweep is an hour away: only the commit announcement can bring the event in
    monkeypatch.setattr(webhook_actor, "INTAKE_SECONDS", 3600.0)
    async with embedded(tmp_path, db_environ) as rt:
        created = await subscribe(rt, receiver.url("/hook"))
        sub_id = created.subscription.id
        # the first may come in with the intake the new subscription asks for; once it is
        # delivered, that intake is over, and only the second's commit can bring it in
        first = await publish(rt, "orders.created", {"n": 1})
        await settled(rt, sub_id, first.id, "succeeded")
        second = await publish(rt, "orders.created", {"n": 2})
        (view,) = await settled(rt, sub_id, second.id, "succeeded")
    assert codes(view) == [200]
    assert [r.webhook_id for r in receiver.at("/hook")] == [first.id, second.id]


async def test_a_delivery_whose_process_died_mid_attempt_is_sent_again_after_its_lease(
    tmp_path, db_environ, receiver
):
    async with embedded(tmp_path, db_environ) as rt:
        created = await subscribe(rt, receiver.url("/hook"))
        sub_id = created.subscription.id
        now_ms = int(time.time() * 1000)
        body = json.dumps({"type": "orders.created", "data": {"n": 1}, "id": "evt_lapsed"})
        columns = (
            "id, tenant_id, subscription_id, event_id, dedupe_key, topic, key, body, status, "
            "attempts, attempt_count, next_attempt_at_ms, lease_until_ms, lease_token, created_at"
        )
        insert = f"INSERT INTO webhook_deliveries ({columns}) VALUES ({', '.join('?' * 15)})"
        async with raw_sql(rt, "webhook-service") as run:
            for delivery_id, event_id, lease_until in [
                ("whd_lapsed", "evt_lapsed", now_ms - 1),  # its process died a while ago
                ("whd_live", "evt_live", now_ms + 3_600_000),  # another process is sending it
            ]:
                await run(
                    insert,
                    *(delivery_id, A, sub_id, event_id, event_id, "orders.created", None, body),
                    *("sending", "[]", 0, now_ms - 1, lease_until, "wls_gone"),
                    datetime.now(UTC),
                )
        (view,) = await settled(rt, sub_id, "evt_lapsed", "succeeded")
        live = [d for d in await deliveries(rt, sub_id) if d.event_id == "evt_live"]
    assert codes(view) == [200]
    assert [r.webhook_id for r in receiver.at("/hook")] == ["evt_lapsed"]
    assert [d.status for d in live] == ["sending"]


async def test_deliveries_go_on_while_a_new_subscriptions_host_is_being_resolved(
    tmp_path, db_environ, receiver, monkeypatch
):
    loop = asyncio.get_running_loop()
    real, answer = loop.getaddrinfo, asyncio.Event()
    looking_up = asyncio.Event()

    async def slow_dns(host, port, **kwargs):
        if host == "slow.example":  # a lookup that takes as long as the test wants
            looking_up.set()
            await answer.wait()
            return await real("127.0.0.1", port, **kwargs)
        return await real(host, port, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", slow_dns)
    async with embedded(tmp_path, db_environ) as rt:
        created = await subscribe(rt, receiver.url("/hook"))
        slow = asyncio.create_task(subscribe(rt, "http://slow.example/hook", tenant=B))
        await wait_until(looking_up.is_set, deadline=DEADLINE, message="the lookup started")
        event = await publish(rt, "orders.created", {"n": 1})
        await settled(rt, created.subscription.id, event.id, "succeeded")
        assert not slow.done()
        answer.set()
        assert (await slow).subscription.url == "http://slow.example/hook"
