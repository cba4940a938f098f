"""Webhooks through the gateway, with every service running and a real receiver on 127.0.0.1:
subscriptions (the secret shown once, by create and rotate), deliveries with their attempts,
replays, roles, the audit trail (which never holds a secret), tenant isolation and URL refusals.

The gateway here is the shared one's twin with the private-network switch on (the receiver is on
loopback) and a short retry schedule; the URL refusal test builds one with the switch off.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from synapsex.actors.webhook.egress import ALLOW_PRIVATE_ENV
from synapsex.actors.webhook.settings import RETRY_SCHEDULE_ENV
from synapsex.runtime import new_id
from synapsex.runtime.testing import wait_until
from tests.actors.webhook.receiver import Receiver

from .conftest import CORE_SERVICES, Caller, Gateway, running_gateway
from .events_support import publish

# the services these tests need
GATEWAY_SERVICES = [*CORE_SERVICES, "webhook-service", "secrets-service"]

#: how long a test waits for a delivery to settle
DEADLINE = 10.0
PUBLIC_URL = "https://93.184.216.34/hook"  # an IP literal: allowed without DNS, never called

SUBSCRIPTION = "id url eventTypes description enabled disabledReason createdAt secretRotatedAt"
ATTEMPT = "at statusCode durationMs error responseBodyExcerpt"
DELIVERY = (
    f"id subscriptionId eventId topic status attempts {{ {ATTEMPT} }} nextAttemptAt createdAt"
)

CREATE = f"""mutation ($input: CreateWebhookSubscriptionInput!) {{
  createWebhookSubscription(input: $input) {{ secret subscription {{ {SUBSCRIPTION} }} }}
}}"""
UPDATE = f"""mutation ($input: UpdateWebhookSubscriptionInput!) {{
  updateWebhookSubscription(input: $input) {{ {SUBSCRIPTION} }}
}}"""
DELETE = f"""mutation ($id: ID!) {{
  deleteWebhookSubscription(input: {{id: $id}}) {{ {SUBSCRIPTION} }}
}}"""
ROTATE = f"""mutation ($id: ID!) {{
  rotateWebhookSecret(input: {{id: $id}}) {{ secret subscription {{ {SUBSCRIPTION} }} }}
}}"""
REPLAY = f"""mutation ($id: ID!) {{ replayWebhookDelivery(input: {{id: $id}}) {{ {DELIVERY} }} }}"""
REPLAY_EVENTS = """mutation ($id: ID!, $since: DateTime!) {
  replayWebhookEvents(input: {subscriptionId: $id, since: $since}) {
    deliveries subscription { id }
  }
}"""
GET = f"query ($id: ID!) {{ webhookSubscription(id: $id) {{ {SUBSCRIPTION} }} }}"
LIST = f"""query ($first: Int!, $after: String) {{
  webhookSubscriptions(first: $first, after: $after) {{
    edges {{ cursor node {{ {SUBSCRIPTION} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
DELIVERIES = f"""query ($id: ID!, $status: WebhookDeliveryStatus) {{
  webhookDeliveries(subscriptionId: $id, status: $status, first: 100) {{
    edges {{ node {{ {DELIVERY} }} }}
  }}
}}"""
AUDIT = """{ auditRecords(first: 100) { edges { node {
  action resourceType resourceId outcome errorCode actor { memberId keyId }
} } } }"""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
async def gateway(tmp_path, db_environ, aiohttp_client, receiver) -> AsyncIterator[Gateway]:
    """The whole platform with the private-network switch on and four attempts ~0.2 s apart;
    started after (so stopped before) the receiver."""
    environ = {**db_environ, ALLOW_PRIVATE_ENV: "true", RETRY_SCHEDULE_ENV: "0,0.2,0.2,0.2"}
    async with running_gateway(tmp_path, environ, aiohttp_client) as gateway:
        yield gateway


async def create(caller: Caller, url: str, *event_types: str, **fields: Any) -> dict:
    """Create a subscription as ``caller``; returns ``{secret, subscription}``."""
    variables = {"input": {"url": url, "eventTypes": list(event_types or ["orders.#"]), **fields}}
    return (await caller.data(CREATE, variables))["createWebhookSubscription"]


async def deliveries(caller: Caller, sub_id: str, status: str | None = None) -> list[dict]:
    data = await caller.data(DELIVERIES, {"id": sub_id, "status": status})
    return [edge["node"] for edge in data["webhookDeliveries"]["edges"]]


async def settled(
    caller: Caller, sub_id: str, event_id: str, status: str = "SUCCEEDED", count: int = 1
) -> list[dict]:
    """Wait until ``count`` deliveries of the event to the subscription have ``status``."""

    async def done() -> list[dict] | None:
        found = [d for d in await deliveries(caller, sub_id, status) if d["eventId"] == event_id]
        return found if len(found) >= count else None

    return await wait_until(done, deadline=DEADLINE, message=f"{event_id} {status} x{count}")


async def subscriptions(caller: Caller) -> list[dict]:
    data = await caller.data(LIST, {"first": 100})
    return [edge["node"] for edge in data["webhookSubscriptions"]["edges"]]


def code(error: dict) -> str:
    return error["extensions"]["code"]


# ---------------------------------------------------------------------------- subscriptions


async def test_a_subscription_is_created_with_its_secret_shown_once(gateway, receiver):
    created = await create(gateway.acme, receiver.url(), "orders.#", "billing.*", description="o")

    secret, sub = created["secret"], created["subscription"]
    assert secret.startswith("whsec_")
    assert sub["url"] == receiver.url()
    assert sub["eventTypes"] == ["orders.#", "billing.*"]
    assert sub["description"] == "o"
    assert sub["enabled"] is True
    assert sub["disabledReason"] is None
    assert sub["secretRotatedAt"] is None
    assert sub["createdAt"]

    listed = await gateway.acme.gql(LIST, {"first": 100})
    got = await gateway.acme.gql(GET, {"id": sub["id"]})
    assert [e["node"] for e in listed["data"]["webhookSubscriptions"]["edges"]] == [sub]
    assert got["data"]["webhookSubscription"] == sub
    assert secret not in json.dumps(listed) + json.dumps(got)
    # a subscription has no field holding it
    error = await gateway.acme.error("{ webhookSubscriptions { edges { node { secret } } } }")
    assert "secret" in error["message"]


async def test_subscriptions_are_listed_oldest_first_in_pages(gateway, receiver):
    ids = [
        (await create(gateway.acme, receiver.url(f"/{i}")))["subscription"]["id"] for i in range(3)
    ]

    first = (await gateway.acme.data(LIST, {"first": 2}))["webhookSubscriptions"]
    assert [e["node"]["id"] for e in first["edges"]] == ids[:2]
    assert first["pageInfo"]["hasNextPage"] is True
    after = first["pageInfo"]["endCursor"]
    rest = (await gateway.acme.data(LIST, {"first": 2, "after": after}))["webhookSubscriptions"]
    assert [e["node"]["id"] for e in rest["edges"]] == ids[2:]
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_a_subscription_is_updated_rotated_and_deleted(gateway, receiver):
    created = await create(gateway.acme, receiver.url("/a"))
    sub_id = created["subscription"]["id"]

    changed = (
        await gateway.acme.data(
            UPDATE,
            {
                "input": {
                    "id": sub_id,
                    "url": receiver.url("/b"),
                    "eventTypes": ["billing.#"],
                    "description": "billing",
                    "enabled": False,
                }
            },
        )
    )["updateWebhookSubscription"]
    assert changed["url"] == receiver.url("/b")
    assert changed["eventTypes"] == ["billing.#"]
    assert changed["description"] == "billing"
    assert changed["enabled"] is False
    assert changed["disabledReason"] == "disabled by a user"
    enabled = (await gateway.acme.data(UPDATE, {"input": {"id": sub_id, "enabled": True}}))[
        "updateWebhookSubscription"
    ]
    assert enabled["enabled"] is True
    assert enabled["disabledReason"] is None
    assert enabled["url"] == receiver.url("/b")  # omitted: unchanged

    rotated = (await gateway.acme.data(ROTATE, {"id": sub_id}))["rotateWebhookSecret"]
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != created["secret"]
    assert rotated["subscription"]["secretRotatedAt"] is not None

    deleted = (await gateway.acme.data(DELETE, {"id": sub_id}))["deleteWebhookSubscription"]
    assert deleted["id"] == sub_id
    assert code(await gateway.acme.error(GET, {"id": sub_id})) == "NOT_FOUND"
    assert await subscriptions(gateway.acme) == []


async def test_invalid_input_names_the_field(gateway, receiver):
    for url in ("ftp://127.0.0.1/hook", "not a url", "http://u:p@127.0.0.1/"):
        error = await gateway.acme.error(CREATE, {"input": {"url": url, "eventTypes": ["a.b"]}})
        assert code(error) == "INVALID_INPUT", (url, error)
        assert error["extensions"]["field"] == "url", (url, error)
    error = await gateway.acme.error(
        CREATE, {"input": {"url": receiver.url(), "eventTypes": ["orders..x"]}}
    )
    assert code(error) == "INVALID_INPUT"
    assert error["extensions"]["field"].startswith("eventTypes")
    assert await subscriptions(gateway.acme) == []


async def test_without_the_switch_a_private_address_is_invalid_input_naming_url(
    tmp_path, db_environ, aiohttp_client
):
    environ = {**db_environ}  # the private-network switch is off by default
    async with running_gateway(tmp_path, environ, aiohttp_client) as strict:
        for url, named in [
            ("http://127.0.0.1:8080/hook", "loopback"),
            ("http://10.0.0.7/hook", "private"),
            ("http://169.254.169.254/latest/meta-data/", "metadata"),
            ("http://[::1]/hook", "loopback"),
            ("http://localhost/hook", "loopback"),
        ]:
            error = await strict.acme.error(CREATE, {"input": {"url": url, "eventTypes": ["#"]}})
            assert code(error) == "INVALID_INPUT", (url, error)
            assert error["extensions"]["field"] == "url", (url, error)
            assert named in error["message"], (url, error)

        sub = (await create(strict.acme, PUBLIC_URL))["subscription"]
        error = await strict.acme.error(
            UPDATE, {"input": {"id": sub["id"], "url": "http://192.168.0.1/"}}
        )
        assert code(error) == "INVALID_INPUT"
        assert error["extensions"]["field"] == "url"
        assert [s["url"] for s in await subscriptions(strict.acme)] == [PUBLIC_URL]


# ---------------------------------------------------------------------------- deliveries


async def test_deliveries_are_listed_with_each_attempt_and_signed(gateway, receiver):
    receiver.script("/hook", 500)  # then 200
    created = await create(gateway.acme, receiver.url("/hook"))
    sub_id, secret = created["subscription"]["id"], created["secret"]
    event = await publish(gateway.acme, "orders.created", {"order": 1})

    (delivery,) = await settled(gateway.acme, sub_id, event["id"])
    assert delivery["subscriptionId"] == sub_id
    assert delivery["topic"] == "orders.created"
    assert delivery["status"] == "SUCCEEDED"
    assert delivery["nextAttemptAt"] is None
    attempts = delivery["attempts"]
    assert [a["statusCode"] for a in attempts] == [500, 200]
    assert [a["responseBodyExcerpt"] for a in attempts] == ["answered 500", "ok"]
    assert all(a["error"] is None and a["durationMs"] >= 0 and a["at"] for a in attempts)
    assert await deliveries(gateway.acme, sub_id, "FAILED") == []
    assert await deliveries(gateway.acme, sub_id, "PENDING") == []

    requests = await receiver.wait_for(2, path="/hook")
    for r in requests:
        assert r.webhook_id == event["id"]
        assert r.verify(secret) == {
            "type": "orders.created",
            "timestamp": r.json["timestamp"],
            "data": {"order": 1},
            "id": event["id"],
        }

    # after a rotation both the new and the previous secret verify a delivery
    new_secret = (await gateway.acme.data(ROTATE, {"id": sub_id}))["rotateWebhookSecret"]["secret"]
    second = await publish(gateway.acme, "orders.paid")
    await settled(gateway.acme, sub_id, second["id"])
    (during,) = await receiver.wait_for(1, where=lambda r: r.webhook_id == second["id"])
    assert len(during.signatures) == 2
    during.verify(new_secret)
    during.verify(secret)


async def test_a_delivery_and_the_events_since_a_time_are_replayed(gateway, receiver):
    created = await create(gateway.acme, receiver.url("/hook"))
    sub_id = created["subscription"]["id"]
    first = await publish(gateway.acme, "orders.created", {"n": 1})
    (original,) = await settled(gateway.acme, sub_id, first["id"])
    second = await publish(gateway.acme, "orders.paid", {"n": 2})  # occurs after the first
    await publish(gateway.acme, "billing.invoiced")  # not subscribed to
    await settled(gateway.acme, sub_id, second["id"])

    replay = (await gateway.acme.data(REPLAY, {"id": original["id"]}))["replayWebhookDelivery"]
    assert replay["id"] != original["id"]
    assert replay["eventId"] == first["id"]
    assert replay["subscriptionId"] == sub_id
    assert replay["status"] in ("PENDING", "SENDING")
    assert replay["attempts"] == []
    await settled(gateway.acme, sub_id, first["id"], count=2)

    since = await gateway.acme.data(REPLAY_EVENTS, {"id": sub_id, "since": second["occurredAt"]})
    assert since["replayWebhookEvents"] == {"deliveries": 1, "subscription": {"id": sub_id}}
    await settled(gateway.acme, sub_id, second["id"], count=2)
    # a time without an offset is UTC
    every = await gateway.acme.data(REPLAY_EVENTS, {"id": sub_id, "since": "2000-01-01T00:00:00"})
    assert every["replayWebhookEvents"]["deliveries"] == 2
    await settled(gateway.acme, sub_id, first["id"], count=3)
    await settled(gateway.acme, sub_id, second["id"], count=3)

    sent = [r.webhook_id for r in receiver.at("/hook")]
    assert sorted(sent) == sorted([first["id"]] * 3 + [second["id"]] * 3)
    assert len(await deliveries(gateway.acme, sub_id)) == 6


# ---------------------------------------------------------------------------- roles and audit


async def test_members_create_admins_change_and_replay_viewers_read(gateway, receiver):
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")

    error = await viewer.error(CREATE, {"input": {"url": receiver.url(), "eventTypes": ["#"]}})
    assert code(error) == "FORBIDDEN"
    sub_id = (await create(member, receiver.url()))["subscription"]["id"]
    event = await publish(gateway.acme, "orders.created")
    (delivery,) = await settled(gateway.acme, sub_id, event["id"])

    for caller in (viewer, member, admin):  # everyone reads
        assert [s["id"] for s in await subscriptions(caller)] == [sub_id]
        assert (await caller.data(GET, {"id": sub_id}))["webhookSubscription"]["id"] == sub_id
        assert [d["id"] for d in await deliveries(caller, sub_id)] == [delivery["id"]]

    changes = [
        (UPDATE, {"input": {"id": sub_id, "description": "x"}}),
        (ROTATE, {"id": sub_id}),
        (REPLAY, {"id": delivery["id"]}),
        (REPLAY_EVENTS, {"id": sub_id, "since": "2000-01-01T00:00:00Z"}),
        (DELETE, {"id": sub_id}),
    ]
    for caller in (viewer, member):  # even the member who created it
        for query, variables in changes:
            error = await caller.error(query, variables)
            assert code(error) == "FORBIDDEN", (caller.key, query, error)
    assert (await gateway.acme.data(GET, {"id": sub_id}))["webhookSubscription"][
        "description"
    ] is None

    for query, variables in changes:
        await admin.data(query, variables)
    assert await subscriptions(gateway.acme) == []


async def test_every_webhook_mutation_is_audited_and_no_secret_ever_is(gateway, receiver):
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    created = await create(gateway.acme, receiver.url())
    sub_id = created["subscription"]["id"]
    event = await publish(gateway.acme, "orders.created")
    (delivery,) = await settled(gateway.acme, sub_id, event["id"])
    await gateway.acme.data(UPDATE, {"input": {"id": sub_id, "description": "d"}})
    rotated = (await gateway.acme.data(ROTATE, {"id": sub_id}))["rotateWebhookSecret"]
    await gateway.acme.data(REPLAY, {"id": delivery["id"]})
    await gateway.acme.data(REPLAY_EVENTS, {"id": sub_id, "since": "2000-01-01T00:00:00Z"})
    await settled(gateway.acme, sub_id, event["id"], count=3)
    await gateway.acme.data(DELETE, {"id": sub_id})
    await viewer.error(CREATE, {"input": {"url": receiver.url(), "eventTypes": ["#"]}})
    await gateway.acme.error(CREATE, {"input": {"url": "ftp://x/", "eventTypes": ["#"]}})
    missing = new_id("whs")
    await gateway.acme.error(ROTATE, {"id": missing})

    body = await gateway.acme.gql(AUDIT)
    records = [
        (n["action"], n["resourceType"], n["resourceId"], n["outcome"], n["errorCode"])
        for n in (e["node"] for e in body["data"]["auditRecords"]["edges"])
        if n["action"].startswith("webhook.")
    ]
    assert records[::-1] == [
        ("webhook.subscription.create", "webhook_subscription", sub_id, "SUCCESS", None),
        ("webhook.subscription.update", "webhook_subscription", sub_id, "SUCCESS", None),
        ("webhook.secret.rotate", "webhook_subscription", sub_id, "SUCCESS", None),
        ("webhook.delivery.replay", "webhook_delivery", delivery["id"], "SUCCESS", None),
        ("webhook.delivery.replay", "webhook_subscription", sub_id, "SUCCESS", None),
        ("webhook.subscription.delete", "webhook_subscription", sub_id, "SUCCESS", None),
        ("webhook.subscription.create", "webhook_subscription", None, "DENIED", "FORBIDDEN"),
        ("webhook.subscription.create", "webhook_subscription", None, "FAILURE", "INVALID_INPUT"),
        ("webhook.secret.rotate", "webhook_subscription", missing, "FAILURE", "NOT_FOUND"),
    ]
    text = json.dumps(body)
    for secret in (created["secret"], rotated["secret"]):
        assert secret not in text
        assert secret.removeprefix("whsec_") not in text


# ---------------------------------------------------------------------------- tenants


async def test_another_tenants_webhooks_are_not_found_and_its_events_never_delivered(
    gateway, receiver
):
    # (orders.#, not #: each tenant's own usage.recorded of its deliveries would come too)
    acme_sub = (await create(gateway.acme, receiver.url("/acme"), "orders.#"))["subscription"]["id"]
    globex_sub = (await create(gateway.globex, receiver.url("/globex"), "orders.#"))[
        "subscription"
    ]["id"]
    theirs = await publish(gateway.globex, "orders.created", {"tenant": "globex"})
    ours = await publish(gateway.acme, "orders.created", {"tenant": "acme"})
    (delivery,) = await settled(gateway.acme, acme_sub, ours["id"])
    await settled(gateway.globex, globex_sub, theirs["id"])

    probes = [
        (GET, {"id": acme_sub}, {"id": new_id("whs")}),
        (UPDATE, {"input": {"id": acme_sub, "url": receiver.url("/x")}}, None),
        (ROTATE, {"id": acme_sub}, {"id": new_id("whs")}),
        (DELETE, {"id": acme_sub}, {"id": new_id("whs")}),
        (DELIVERIES, {"id": acme_sub}, {"id": new_id("whs")}),
        (REPLAY, {"id": delivery["id"]}, {"id": new_id("whd")}),
        (REPLAY_EVENTS, {"id": acme_sub, "since": "2000-01-01T00:00:00Z"}, None),
    ]
    for query, foreign, missing in probes:
        error = await gateway.globex.error(query, foreign)
        assert code(error) == "NOT_FOUND", (query, error)
        if missing is not None:  # answered exactly as for an id that never existed
            other = await gateway.globex.error(query, missing)
            assert _shape(error, foreign) == _shape(other, missing)
    assert [s["id"] for s in await subscriptions(gateway.globex)] == [globex_sub]

    sub = (await gateway.acme.data(GET, {"id": acme_sub}))["webhookSubscription"]
    assert sub["url"] == receiver.url("/acme")
    assert sub["secretRotatedAt"] is None
    assert [d["eventId"] for d in await deliveries(gateway.acme, acme_sub)] == [ours["id"]]
    assert [r.webhook_id for r in receiver.at("/acme")] == [ours["id"]]
    assert [r.webhook_id for r in receiver.at("/globex")] == [theirs["id"]]
    assert receiver.at("/x") == []


def _shape(error: dict, variables: dict) -> str:
    text = json.dumps(error, sort_keys=True)
    for value in variables.values():
        if isinstance(value, str):
            text = text.replace(value, "<id>")
    return text
