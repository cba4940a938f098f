"""The event bus through the gateway: publishing, the events query, consumer groups, claims
(with long polling), leases, dead letters, roles, the audit trail, tenant isolation, and the
domain events the tenant and auth services publish."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from synapsex.contracts.auth import CreateApiKey
from synapsex.contracts.events import MAX_PAYLOAD_BYTES, CreateConsumerGroup
from synapsex.runtime.testing import wait_until

from .conftest import Caller
from .events_support import (  # live_gateway: the fixture ``gateway`` of this module
    DEADLINE,
    EVENT_FIELDS,
    EVENTS,
    PUBLISH,
    all_events,
    listening,
    live_gateway,  # noqa: F401
    publish,
)

GROUP_FIELDS = """id name topics maxAttempts visibilityTimeoutSeconds retryBackoffSeconds
  maxRetryBackoffSeconds createdAt pending leased acked deadLetter oldestPendingAgeSeconds"""
DELIVERY_FIELDS = """group state attempt leaseId leaseExpiresAt availableAt lastError
  event { id topic payload key occurredAt }"""

EVENT = f"query ($id: ID!) {{ event(id: $id) {{ {EVENT_FIELDS} }} }}"
CREATE_GROUP = f"""mutation ($input: CreateConsumerGroupInput!) {{
  createConsumerGroup(input: $input) {{ {GROUP_FIELDS} }}
}}"""
DELETE_GROUP = f"""mutation ($name: String!) {{
  deleteConsumerGroup(input: {{name: $name}}) {{ {GROUP_FIELDS} }}
}}"""
GROUP = f"query ($name: String!) {{ consumerGroup(name: $name) {{ {GROUP_FIELDS} }} }}"
GROUPS = f"""query ($first: Int!, $after: String) {{
  consumerGroups(first: $first, after: $after) {{
    edges {{ cursor node {{ {GROUP_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
CLAIM = f"""mutation ($input: ClaimEventsInput!) {{
  claimEvents(input: $input) {{ {DELIVERY_FIELDS} }}
}}"""
ACK = f"""mutation ($input: AckEventInput!) {{ ackEvent(input: $input) {{ {DELIVERY_FIELDS} }} }}"""
ACK_MANY = """mutation ($input: AckEventsInput!) { ackEvents(input: $input) { acked stale } }"""
NACK = (
    f"""mutation ($input: NackEventInput!) {{ nackEvent(input: $input) {{ {DELIVERY_FIELDS} }} }}"""
)
EXTEND = f"""mutation ($input: ExtendLeaseInput!) {{
  extendLease(input: $input) {{ {DELIVERY_FIELDS} }}
}}"""
DEAD_LETTERS = f"""query ($group: String!, $first: Int!, $after: String) {{
  deadLetters(group: $group, first: $first, after: $after) {{
    edges {{ cursor node {{ {DELIVERY_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
REDRIVE = f"""mutation ($input: RedriveDeadLettersInput!) {{
  redriveDeadLetters(input: $input) {{ eventIds group {{ {GROUP_FIELDS} }} }}
}}"""
DELETE_DEAD = f"""mutation ($input: DeleteDeadLettersInput!) {{
  deleteDeadLetters(input: $input) {{ eventIds group {{ {GROUP_FIELDS} }} }}
}}"""
AUDIT = """query ($first: Int!, $after: String, $action: String) {
  auditRecords(first: $first, after: $after, action: $action) {
    edges { node {
      id actor { memberId keyId } action resourceType resourceId outcome errorCode requestId
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""
ME = "{ me { memberId keyId } }"


# ---------------------------------------------------------------------------- helpers


async def create_group(caller: Caller, name: str, topics: list[str], **settings: Any) -> dict:
    data = await caller.data(CREATE_GROUP, {"input": {"name": name, "topics": topics, **settings}})
    return data["createConsumerGroup"]


async def group(caller: Caller, name: str) -> dict:
    return (await caller.data(GROUP, {"name": name}))["consumerGroup"]


async def claim(caller: Caller, name: str, **fields: Any) -> list[dict]:
    data = await caller.data(CLAIM, {"input": {"group": name, **fields}})
    return data["claimEvents"]


def lease(delivery: dict, **more: Any) -> dict:
    """The input naming a delivery's current lease."""
    return {
        "group": delivery["group"],
        "eventId": delivery["event"]["id"],
        "leaseId": delivery["leaseId"],
        **more,
    }


async def ack(caller: Caller, delivery: dict) -> dict:
    return (await caller.data(ACK, {"input": lease(delivery)}))["ackEvent"]


async def nack(caller: Caller, delivery: dict, **fields: Any) -> dict:
    return (await caller.data(NACK, {"input": lease(delivery, **fields)}))["nackEvent"]


def code(error: dict) -> str:
    return error["extensions"]["code"]


def counts(view: dict) -> dict:
    return {k: view[k] for k in ("pending", "leased", "acked", "deadLetter")}


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def from_now(value: str) -> float:
    """Seconds from now until the time ``value`` (negative when it is past)."""
    return (when(value) - datetime.now(UTC)).total_seconds()


async def send(caller: Caller, query: str, variables: dict) -> tuple[str, dict]:
    """Send a request as ``caller``; its X-Request-Id and its body."""
    response = await caller.client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {caller.key}"},
    )
    assert response.status == 200, await response.text()
    return response.headers["X-Request-Id"], await response.json()


async def audit_records(caller: Caller, action: str | None = None) -> list[dict]:
    """The tenant's audit records (newest first), following every page."""
    out: list[dict] = []
    after = None
    while True:
        data = await caller.data(AUDIT, {"first": 100, "after": after, "action": action})
        connection = data["auditRecords"]
        out.extend(edge["node"] for edge in connection["edges"])
        if not connection["pageInfo"]["hasNextPage"]:
            return out
        after = connection["pageInfo"]["endCursor"]


# ---------------------------------------------------------------------------- publishEvent


async def test_publish_returns_the_durable_event_with_its_payload(gateway):
    payload = {
        "order": {"id": 42, "lines": [{"sku": "A-1", "qty": 2, "price": 9.5}]},
        "note": "grüße, 東京 ✓",
        "flags": [True, False, None],
        "empty": {},
        "big": 2**53,
    }
    me = (await gateway.acme.data(ME))["me"]
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = await gateway.client.post(
        "/graphql",
        json={
            "query": PUBLISH,
            "variables": {"input": {"topic": "orders.created", "payload": payload, "key": "o-42"}},
        },
        headers={
            "Authorization": f"Bearer {gateway.acme.key}",
            "traceparent": f"00-{trace}-00f067aa0ba902b7-01",
        },
    )
    body = await response.json()
    assert "errors" not in body, body
    event = body["data"]["publishEvent"]

    assert event["id"].startswith("evt_")
    assert event["topic"] == "orders.created"
    assert event["payload"] == payload
    assert event["key"] == "o-42"
    assert event["source"] == f"apikey:{me['keyId']}"
    assert event["traceId"] == trace
    assert -30 < from_now(event["occurredAt"]) <= 1
    # read back: the same event, from the database
    assert (await gateway.acme.data(EVENT, {"id": event["id"]}))["event"] == event
    assert (await all_events(gateway.acme))[-1] == event

    bare = await publish(gateway.acme, "orders.pinged")
    assert bare["payload"] is None
    assert bare["key"] is None
    assert bare["traceId"]  # a trace of its own when the request names none
    for scalar in ("text", 3, 1.5, False, [1, "two"]):
        assert (await publish(gateway.acme, "orders.scalar", scalar))["payload"] == scalar


async def test_publish_refuses_bad_topics_delays_and_payloads_over_256_kib(gateway):
    before = await all_events(gateway.acme)
    for topic in ("", "orders..created", "orders.*", "orders.#", "has space", "x" * 201):
        error = await gateway.acme.error(PUBLISH, {"input": {"topic": topic}})
        assert code(error) == "INVALID_INPUT", (topic, error)
        assert error["extensions"]["field"] == "topic", (topic, error)
    for delay in (900.001, 3600, -1):
        error = await gateway.acme.error(
            PUBLISH, {"input": {"topic": "a.b", "delaySeconds": delay}}
        )
        assert code(error) == "INVALID_INPUT", (delay, error)
        assert error["extensions"]["field"] == "delaySeconds"
    assert await all_events(gateway.acme) == before
    # the bounds themselves are fine
    assert (await publish(gateway.acme, "a-b_C.d9", delaySeconds=900))["topic"] == "a-b_C.d9"
    assert (await publish(gateway.acme, "x" * 200))["topic"] == "x" * 200

    # a JSON string: its two quotes count, so this encodes to exactly MAX_PAYLOAD_BYTES
    at_limit = "x" * (MAX_PAYLOAD_BYTES - 2)
    event = await publish(gateway.acme, "blobs.stored", at_limit)
    assert event["payload"] == at_limit
    assert (await gateway.acme.data(EVENT, {"id": event["id"]}))["event"]["payload"] == at_limit

    too_big = [
        "x" * (MAX_PAYLOAD_BYTES - 1),  # one byte over
        {"blob": "y" * (300 * 1024)},
        "é" * 140_000,  # fewer characters than the limit, but 280,002 bytes as UTF-8
    ]
    for payload in too_big:
        error = await gateway.acme.error(PUBLISH, {"input": {"topic": "a.b", "payload": payload}})
        assert code(error) == "INVALID_INPUT"
        assert error["extensions"]["field"] == "payload"

    # a request body over the gateway's 1 MiB limit is refused before the event bus sees it
    body = {"query": PUBLISH, "variables": {"input": {"topic": "a.b", "payload": "z" * 2**20}}}
    response = await gateway.client.post(
        "/graphql",
        data=io.BytesIO(json.dumps(body).encode()),
        headers={
            "Authorization": f"Bearer {gateway.acme.key}",
            "Content-Type": "application/json",
        },
    )
    assert response.status == 413
    assert (await response.json())["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert (await all_events(gateway.acme))[-1]["id"] == event["id"]


async def test_an_idempotency_key_publishes_once(gateway):
    first = await publish(gateway.acme, "orders.paid", {"n": 1}, idempotencyKey="pay-1")
    again = await publish(gateway.acme, "orders.paid", {"n": 2}, idempotencyKey="pay-1")
    other = await publish(gateway.acme, "orders.paid", {"n": 3}, idempotencyKey="pay-2")
    plain = await publish(gateway.acme, "orders.paid", {"n": 4})
    theirs = await publish(gateway.globex, "orders.paid", {"n": 5}, idempotencyKey="pay-1")

    assert again == first  # the first event, payload and all
    assert len({first["id"], other["id"], plain["id"], theirs["id"]}) == 4
    paid = await all_events(gateway.acme, topic="orders.paid")
    assert [e["payload"] for e in paid] == [{"n": 1}, {"n": 3}, {"n": 4}]


# ---------------------------------------------------------------------------- events query


async def test_events_are_listed_in_commit_order_by_topic_pattern_in_pages(gateway):
    topics = [
        "orders.created",
        "billing.charged",
        "orders.paid",
        "orders.line.added",
        "orders",
        "billing.refunded",
        "orders.shipped",
    ]
    published = [await publish(gateway.acme, t, {"i": i}) for i, t in enumerate(topics)]
    ids = {t: e["id"] for t, e in zip(topics, published, strict=True)}

    async def pages(topic: str | None, first: int) -> list[list[str]]:
        out, after = [], None
        while True:
            data = await gateway.acme.data(EVENTS, {"topic": topic, "first": first, "after": after})
            connection = data["events"]
            edges = connection["edges"]
            out.append([edge["node"]["topic"] for edge in edges])
            assert [edge["cursor"] for edge in edges] == [edge["node"]["id"] for edge in edges]
            if edges:
                assert connection["pageInfo"]["endCursor"] == edges[-1]["cursor"]
            if not connection["pageInfo"]["hasNextPage"]:
                return out
            after = connection["pageInfo"]["endCursor"]

    assert await pages("orders.*", 2) == [["orders.created", "orders.paid"], ["orders.shipped"]]
    assert await pages("orders.#", 2) == [
        ["orders.created", "orders.paid"],
        ["orders.line.added", "orders"],
        ["orders.shipped"],
    ]
    assert await pages("*.line.*", 5) == [["orders.line.added"]]
    assert await pages("billing.refunded", 5) == [["billing.refunded"]]
    assert await pages("nothing.here", 5) == [[]]
    everything = [e["topic"] for e in await all_events(gateway.acme)]
    assert everything[-len(topics) :] == topics
    assert [t for page in await pages("#", 3) for t in page] == everything

    after = await gateway.acme.data(
        EVENTS, {"topic": "billing.*", "first": 10, "after": ids["billing.charged"]}
    )
    assert [e["node"]["id"] for e in after["events"]["edges"]] == [ids["billing.refunded"]]

    for variables, field in (
        ({"first": 101}, "first"),
        ({"first": 0}, "first"),
        ({"first": 5, "topic": "orders.#.x"}, "topic"),
        ({"first": 5, "after": "evt_unknown"}, "after"),
    ):
        error = await gateway.acme.error(EVENTS, variables)
        assert code(error) == "INVALID_INPUT", (variables, error)
        assert error["extensions"]["field"] == field, (variables, error)

    error = await gateway.acme.error(EVENT, {"id": "evt_unknown"})
    assert code(error) == "NOT_FOUND"


# ---------------------------------------------------------------------------- consumer groups


async def test_consumer_groups_are_created_listed_read_and_deleted(gateway):
    orders = await create_group(gateway.acme, "orders", ["orders.*"])
    assert orders["id"].startswith("cgr_")
    assert orders | {"id": None, "createdAt": None} == {
        "id": None,
        "name": "orders",
        "topics": ["orders.*"],
        "maxAttempts": 5,
        "visibilityTimeoutSeconds": 30.0,
        "retryBackoffSeconds": 1.0,
        "maxRetryBackoffSeconds": 600.0,
        "createdAt": None,
        "pending": 0,
        "leased": 0,
        "acked": 0,
        "deadLetter": 0,
        "oldestPendingAgeSeconds": None,
    }
    tuned = await create_group(
        gateway.acme,
        "billing.v2",
        ["billing.#", "refunds.*.done"],
        maxAttempts=3,
        visibilityTimeoutSeconds=2.5,
        retryBackoffSeconds=0.25,
        maxRetryBackoffSeconds=10,
    )
    assert (tuned["maxAttempts"], tuned["visibilityTimeoutSeconds"]) == (3, 2.5)
    assert (tuned["retryBackoffSeconds"], tuned["maxRetryBackoffSeconds"]) == (0.25, 10.0)
    audit = await create_group(gateway.acme, "audit-sink", ["#"])

    error = await gateway.acme.error(CREATE_GROUP, {"input": {"name": "orders", "topics": ["x"]}})
    assert code(error) == "CONFLICT"
    assert error["extensions"]["field"] == "name"
    for bad, field in (
        ({"name": "Orders", "topics": ["x"]}, "name"),
        ({"name": "ok", "topics": []}, "topics"),
        ({"name": "ok", "topics": ["a.#.b"]}, "topics[0]"),
        ({"name": "ok", "topics": ["x"], "maxAttempts": 0}, "maxAttempts"),
        (
            {"name": "ok", "topics": ["x"], "visibilityTimeoutSeconds": 0},
            "visibilityTimeoutSeconds",
        ),
        (
            {"name": "ok", "topics": ["x"], "retryBackoffSeconds": 5, "maxRetryBackoffSeconds": 1},
            "maxRetryBackoffSeconds",
        ),
    ):
        error = await gateway.acme.error(CREATE_GROUP, {"input": bad})
        assert code(error) == "INVALID_INPUT", (bad, error)
        assert error["extensions"]["field"] == field, (bad, error)

    first = (await gateway.acme.data(GROUPS, {"first": 2}))["consumerGroups"]
    assert [e["node"]["name"] for e in first["edges"]] == ["orders", "billing.v2"]
    assert first["pageInfo"] == {"hasNextPage": True, "endCursor": tuned["id"]}
    rest = (await gateway.acme.data(GROUPS, {"first": 2, "after": tuned["id"]}))["consumerGroups"]
    assert [e["node"] for e in rest["edges"]] == [audit]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert await group(gateway.acme, "billing.v2") == tuned

    deleted = (await gateway.acme.data(DELETE_GROUP, {"name": "orders"}))["deleteConsumerGroup"]
    assert deleted == orders
    for query, variables in (
        (GROUP, {"name": "orders"}),
        (DELETE_GROUP, {"name": "orders"}),
        (CLAIM, {"input": {"group": "orders"}}),
    ):
        error = await gateway.acme.error(query, variables)
        assert code(error) == "NOT_FOUND", (query, error)
    names = [
        e["node"]["name"]
        for e in (await gateway.acme.data(GROUPS, {"first": 10}))["consumerGroups"]["edges"]
    ]
    assert names == ["billing.v2", "audit-sink"]


async def test_a_group_gets_the_matching_events_published_after_its_creation(gateway):
    await publish(gateway.acme, "orders.created", {"early": True})
    await create_group(gateway.acme, "orders", ["orders.*", "refunds.#"])
    wanted = [
        await publish(gateway.acme, "orders.created", {"n": 1}),
        await publish(gateway.acme, "refunds.issued.eu", {"n": 2}),
    ]
    await publish(gateway.acme, "orders.line.added")  # '*' is one segment only
    await publish(gateway.acme, "billing.charged")
    wanted.append(await publish(gateway.acme, "orders.paid", {"n": 3}))

    view = await group(gateway.acme, "orders")
    assert counts(view) == {"pending": 3, "leased": 0, "acked": 0, "deadLetter": 0}
    assert view["oldestPendingAgeSeconds"] is not None
    assert 0 <= view["oldestPendingAgeSeconds"] < 30

    claimed = await claim(gateway.acme, "orders", limit=10)
    assert [d["event"] for d in claimed] == [
        {k: e[k] for k in ("id", "topic", "payload", "key", "occurredAt")} for e in wanted
    ]
    # the group is recreated from scratch: nothing of its former self
    await gateway.acme.data(DELETE_GROUP, {"name": "orders"})
    recreated = await create_group(gateway.acme, "orders", ["orders.*"])
    assert counts(recreated) == {"pending": 0, "leased": 0, "acked": 0, "deadLetter": 0}
    assert await claim(gateway.acme, "orders") == []


# ---------------------------------------------------------------------------- claims and leases


async def test_claimed_events_are_leased_then_acked_once(gateway):
    await create_group(gateway.acme, "work", ["jobs.#"])
    jobs = [await publish(gateway.acme, "jobs.run", {"job": i}) for i in range(4)]

    claimed = await claim(gateway.acme, "work", limit=2)

    assert [d["event"]["id"] for d in claimed] == [jobs[0]["id"], jobs[1]["id"]]
    for delivery, job in zip(claimed, jobs, strict=False):
        assert delivery["group"] == "work"
        assert delivery["state"] == "LEASED"
        assert delivery["attempt"] == 1
        assert delivery["leaseId"]
        assert delivery["lastError"] is None
        assert delivery["event"]["payload"] == job["payload"]
        expires = when(delivery["leaseExpiresAt"]) - when(job["occurredAt"])
        assert timedelta(seconds=25) < expires < timedelta(seconds=60)  # the group's 30 s
    view = await group(gateway.acme, "work")
    assert counts(view) == {"pending": 2, "leased": 2, "acked": 0, "deadLetter": 0}

    acked = await ack(gateway.acme, claimed[0])
    assert acked["state"] == "ACKED"
    assert acked["leaseId"] is None
    assert acked["event"]["id"] == jobs[0]["id"]
    error = await gateway.acme.error(ACK, {"input": lease(claimed[0])})  # acked already
    assert code(error) == "CONFLICT"
    assert error["extensions"]["field"] == "leaseId"
    wrong = lease(claimed[1]) | {"leaseId": "lse_not_the_lease"}
    assert code(await gateway.acme.error(ACK, {"input": wrong})) == "CONFLICT"
    stranger = lease(claimed[1]) | {"eventId": jobs[3]["id"]}  # not leased: pending
    assert code(await gateway.acme.error(ACK, {"input": stranger})) == "CONFLICT"
    outsider = lease(claimed[1]) | {"eventId": "evt_unknown"}
    assert code(await gateway.acme.error(ACK, {"input": outsider})) == "NOT_FOUND"

    more = await claim(gateway.acme, "work", limit=10)
    assert [d["event"]["id"] for d in more] == [jobs[2]["id"], jobs[3]["id"]]
    batch = [lease(d) for d in (claimed[1], *more)]
    batch = [{"eventId": b["eventId"], "leaseId": b["leaseId"]} for b in batch]
    batch[1]["leaseId"] = "lse_stale"
    result = (await gateway.acme.data(ACK_MANY, {"input": {"group": "work", "leases": batch}}))[
        "ackEvents"
    ]
    assert result == {"acked": [jobs[1]["id"], jobs[3]["id"]], "stale": [jobs[2]["id"]]}
    again = (await gateway.acme.data(ACK_MANY, {"input": {"group": "work", "leases": batch}}))[
        "ackEvents"
    ]
    assert again == {"acked": [], "stale": [jobs[1]["id"], jobs[2]["id"], jobs[3]["id"]]}

    view = await group(gateway.acme, "work")
    assert counts(view) == {"pending": 0, "leased": 1, "acked": 3, "deadLetter": 0}
    assert await claim(gateway.acme, "work") == []  # jobs[2] is still leased
    await ack(gateway.acme, more[0])
    view = await group(gateway.acme, "work")
    assert counts(view) == {"pending": 0, "leased": 0, "acked": 4, "deadLetter": 0}
    assert view["oldestPendingAgeSeconds"] is None

    empty = await gateway.acme.error(ACK_MANY, {"input": {"group": "work", "leases": []}})
    assert code(empty) == "INVALID_INPUT"
    for bad in ({"limit": 0}, {"limit": 101}, {"visibilityTimeoutSeconds": 0}):
        error = await gateway.acme.error(CLAIM, {"input": {"group": "work", **bad}})
        assert code(error) == "INVALID_INPUT", (bad, error)


async def test_a_nacked_event_comes_back_after_its_delay_with_its_error(gateway):
    await create_group(gateway.acme, "work", ["jobs.*"], retryBackoffSeconds=60)
    job = await publish(gateway.acme, "jobs.run", {"job": 1})
    (first,) = await claim(gateway.acme, "work")

    later = await nack(gateway.acme, first, error="db down")  # the group's backoff: 60 s
    assert later["state"] == "PENDING"
    assert later["leaseId"] is None
    assert later["lastError"] == "db down"
    assert later["attempt"] == 1
    assert 50 < from_now(later["availableAt"]) < 70
    assert await claim(gateway.acme, "work") == []
    assert code(await gateway.acme.error(NACK, {"input": lease(first)})) == "CONFLICT"

    # the same, due at once: attempt 2 under a new lease
    await gateway.acme.data(DELETE_GROUP, {"name": "work"})
    await create_group(gateway.acme, "work", ["jobs.*"])
    job = await publish(gateway.acme, "jobs.run", {"job": 2})
    (first,) = await claim(gateway.acme, "work")
    now = await nack(gateway.acme, first, error="try again", delaySeconds=0)
    assert (now["state"], now["lastError"]) == ("PENDING", "try again")
    (second,) = await claim(gateway.acme, "work")
    assert second["event"]["id"] == job["id"]
    assert second["attempt"] == 2
    assert second["leaseId"] != first["leaseId"]
    assert second["lastError"] == "try again"
    error = await gateway.acme.error(ACK, {"input": lease(first)})  # the old lease
    assert code(error) == "CONFLICT"
    assert error["extensions"]["field"] == "leaseId"
    for bad in ({"delaySeconds": -1}, {"error": "x" * 2001}):
        error = await gateway.acme.error(NACK, {"input": lease(second, **bad)})
        assert code(error) == "INVALID_INPUT", (bad, error)
    assert (await ack(gateway.acme, second))["state"] == "ACKED"


async def test_an_extended_lease_lasts_longer_and_needs_the_current_lease(gateway):
    await create_group(gateway.acme, "work", ["jobs.*"], visibilityTimeoutSeconds=5)
    await publish(gateway.acme, "jobs.run")
    (delivery,) = await claim(gateway.acme, "work")
    assert 0 < from_now(delivery["leaseExpiresAt"]) < 6

    extended = (
        await gateway.acme.data(EXTEND, {"input": lease(delivery, visibilityTimeoutSeconds=600)})
    )["extendLease"]

    assert extended["state"] == "LEASED"
    assert extended["leaseId"] == delivery["leaseId"]
    assert 590 < from_now(extended["leaseExpiresAt"]) <= 600
    stale = lease(delivery, visibilityTimeoutSeconds=60) | {"leaseId": "lse_other"}
    error = await gateway.acme.error(EXTEND, {"input": stale})
    assert code(error) == "CONFLICT"
    error = await gateway.acme.error(EXTEND, {"input": lease(delivery, visibilityTimeoutSeconds=0)})
    assert code(error) == "INVALID_INPUT"
    await ack(gateway.acme, extended)
    error = await gateway.acme.error(EXTEND, {"input": lease(delivery, visibilityTimeoutSeconds=9)})
    assert code(error) == "CONFLICT"


async def test_a_lapsed_lease_is_claimed_again_or_dead_lettered_on_the_last_attempt(gateway):
    await create_group(gateway.acme, "work", ["jobs.*"], retryBackoffSeconds=0)
    await create_group(gateway.acme, "strict", ["jobs.*"], maxAttempts=1)
    job = await publish(gateway.acme, "jobs.run")
    (first,) = await claim(gateway.acme, "work", visibilityTimeoutSeconds=0.05)
    await claim(gateway.acme, "strict", visibilityTimeoutSeconds=0.05)

    again = await wait_until(lambda: claim(gateway.acme, "work"), deadline=DEADLINE)

    assert [(d["event"]["id"], d["attempt"]) for d in again] == [(job["id"], 2)]
    error = await gateway.acme.error(ACK, {"input": lease(first)})
    assert code(error) == "CONFLICT"
    assert error["extensions"]["field"] == "leaseId"
    assert (await ack(gateway.acme, again[0]))["state"] == "ACKED"
    # in a group of one attempt, the lapsed lease made a dead letter
    view = await wait_until(lambda: _with_dead_letter(gateway.acme, "strict"), deadline=DEADLINE)
    assert counts(view) == {"pending": 0, "leased": 0, "acked": 0, "deadLetter": 1}
    page = (await gateway.acme.data(DEAD_LETTERS, {"group": "strict", "first": 10}))["deadLetters"]
    (node,) = [e["node"] for e in page["edges"]]
    assert (node["event"]["id"], node["state"]) == (job["id"], "DEAD_LETTER")
    assert node["lastError"] == "lease expired on attempt 1"


async def _with_dead_letter(caller: Caller, name: str) -> dict | None:
    view = await group(caller, name)
    return view if view["deadLetter"] else None


async def test_events_sharing_a_key_are_claimed_one_at_a_time_in_order(gateway):
    await create_group(gateway.acme, "orders", ["orders.*"])
    a1 = await publish(gateway.acme, "orders.created", key="a")
    a2 = await publish(gateway.acme, "orders.paid", key="a")
    b1 = await publish(gateway.acme, "orders.created", key="b")
    loose = await publish(gateway.acme, "orders.noted")

    first = await claim(gateway.acme, "orders", limit=10)
    assert [d["event"]["id"] for d in first] == [a1["id"], b1["id"], loose["id"]]
    assert await claim(gateway.acme, "orders", limit=10) == []

    await ack(gateway.acme, first[0])
    (second,) = await claim(gateway.acme, "orders", limit=10)
    assert second["event"]["id"] == a2["id"]
    assert second["event"]["key"] == "a"


# ---------------------------------------------------------------------------- long polling


async def test_a_waiting_claim_returns_an_event_published_while_it_waits(gateway):
    await create_group(gateway.acme, "work", ["jobs.*"])
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(claim(gateway.acme, "work", waitSeconds=15))
    await wait_until(lambda: listening(gateway, gateway.acme), deadline=DEADLINE)
    assert not waiting.done()

    published_at = loop.time()
    event = await publish(gateway.acme, "jobs.run", {"job": "now"})
    claimed = await asyncio.wait_for(waiting, DEADLINE)

    assert loop.time() - published_at < 2  # far below the 15 s it was ready to wait
    assert [(d["event"]["id"], d["state"]) for d in claimed] == [(event["id"], "LEASED")]
    # the waiter stopped listening when it returned
    await wait_until(lambda: not listening(gateway, gateway.acme), deadline=DEADLINE)


async def test_a_waiting_claim_returns_empty_after_its_wait_or_a_delayed_event_when_due(
    gateway,
):
    await create_group(gateway.acme, "work", ["jobs.*"])
    await publish(gateway.acme, "other.topic")  # not the group's: does not end the wait
    loop = asyncio.get_running_loop()

    started = loop.time()
    claimed = await claim(gateway.acme, "work", waitSeconds=0.3)
    elapsed = loop.time() - started

    assert claimed == []
    assert 0.28 <= elapsed < 3  # about waitSeconds (a poll interval is 0.5 s)
    started = loop.time()
    assert await claim(gateway.acme, "work", waitSeconds=0) == []
    assert loop.time() - started < 1  # no waiting at all

    for wait in (20.5, 60, -1):
        error = await gateway.acme.error(CLAIM, {"input": {"group": "work", "waitSeconds": wait}})
        assert code(error) == "INVALID_INPUT", (wait, error)
        assert error["extensions"]["field"] == "waitSeconds"

    started = loop.time()
    event = await publish(gateway.acme, "jobs.later", delaySeconds=0.4)
    assert await claim(gateway.acme, "work") == []  # not yet due
    assert (await group(gateway.acme, "work"))["pending"] == 1
    (delivery,) = await claim(gateway.acme, "work", waitSeconds=5)
    assert delivery["event"]["id"] == event["id"]
    assert 0.35 < loop.time() - started < 3


# ---------------------------------------------------------------------------- dead letters


async def test_dead_letters_are_listed_redriven_and_deleted(gateway):
    await create_group(gateway.acme, "strict", ["jobs.*"], maxAttempts=1)
    jobs = [await publish(gateway.acme, "jobs.run", {"job": i}) for i in range(3)]
    ids = [j["id"] for j in jobs]
    claimed = await claim(gateway.acme, "strict", limit=10)

    dead = [await nack(gateway.acme, d, error=f"boom {i}") for i, d in enumerate(claimed)]

    assert [d["state"] for d in dead] == ["DEAD_LETTER"] * 3
    assert counts(await group(gateway.acme, "strict")) == {
        "pending": 0,
        "leased": 0,
        "acked": 0,
        "deadLetter": 3,
    }
    assert await claim(gateway.acme, "strict") == []
    page = (await gateway.acme.data(DEAD_LETTERS, {"group": "strict", "first": 2}))["deadLetters"]
    assert [e["node"]["event"]["id"] for e in page["edges"]] == ids[:2]
    assert [e["cursor"] for e in page["edges"]] == ids[:2]
    assert [e["node"]["lastError"] for e in page["edges"]] == ["boom 0", "boom 1"]
    assert {e["node"]["state"] for e in page["edges"]} == {"DEAD_LETTER"}
    assert page["pageInfo"] == {"hasNextPage": True, "endCursor": ids[1]}
    rest = await gateway.acme.data(
        DEAD_LETTERS, {"group": "strict", "first": 2, "after": page["pageInfo"]["endCursor"]}
    )
    assert [e["node"]["event"]["id"] for e in rest["deadLetters"]["edges"]] == ids[2:]
    assert rest["deadLetters"]["pageInfo"]["hasNextPage"] is False

    one = (await gateway.acme.data(REDRIVE, {"input": {"group": "strict", "eventIds": [ids[1]]}}))[
        "redriveDeadLetters"
    ]
    assert one["eventIds"] == [ids[1]]
    assert (one["group"]["pending"], one["group"]["deadLetter"]) == (1, 2)
    (retry,) = await claim(gateway.acme, "strict")
    assert (retry["event"]["id"], retry["attempt"]) == (ids[1], 1)  # fresh attempts
    await ack(gateway.acme, retry)

    everything = (await gateway.acme.data(REDRIVE, {"input": {"group": "strict"}}))[
        "redriveDeadLetters"
    ]
    assert everything["eventIds"] == [ids[0], ids[2]]  # in stream order
    assert counts(everything["group"]) == {"pending": 2, "leased": 0, "acked": 1, "deadLetter": 0}
    for delivery in await claim(gateway.acme, "strict", limit=10):
        await nack(gateway.acme, delivery, error="still broken")

    deleted = (
        await gateway.acme.data(
            DELETE_DEAD, {"input": {"group": "strict", "eventIds": [ids[2], ids[1], "evt_nope"]}}
        )
    )["deleteDeadLetters"]
    assert deleted["eventIds"] == [ids[2]]  # ids[1] is acked, not dead
    assert counts(deleted["group"]) == {"pending": 0, "leased": 0, "acked": 1, "deadLetter": 1}
    left = (await gateway.acme.data(DEAD_LETTERS, {"group": "strict", "first": 10}))["deadLetters"]
    assert [(e["node"]["event"]["id"], e["node"]["lastError"]) for e in left["edges"]] == [
        (ids[0], "still broken")
    ]
    error = await gateway.acme.error(DELETE_DEAD, {"input": {"group": "strict", "eventIds": []}})
    assert code(error) == "INVALID_INPUT"
    error = await gateway.acme.error(DEAD_LETTERS, {"group": "nope", "first": 10})
    assert code(error) == "NOT_FOUND"


# ---------------------------------------------------------------------------- roles and audit


async def test_roles_viewers_read_members_consume_admins_manage(gateway):
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    member = await gateway.key_for(gateway.acme, "member", "member@acme.io")
    admin = await gateway.key_for(gateway.acme, "admin", "admin@acme.io")
    await create_group(gateway.acme, "strict", ["jobs.*"], maxAttempts=1)
    published = await publish(gateway.acme, "jobs.run")

    # viewers read everything, and change nothing
    assert (await viewer.data(EVENT, {"id": published["id"]}))["event"] == published
    assert (await group(viewer, "strict"))["pending"] == 1
    for query, variables in (
        (PUBLISH, {"input": {"topic": "jobs.run"}}),
        (CREATE_GROUP, {"input": {"name": "mine", "topics": ["#"]}}),
        (CLAIM, {"input": {"group": "strict"}}),
        (CLAIM, {"input": {"group": "strict", "waitSeconds": 25}}),  # refused before checked
        (DELETE_GROUP, {"name": "strict"}),
        (REDRIVE, {"input": {"group": "strict"}}),
    ):
        error = await viewer.error(query, variables)
        assert code(error) == "FORBIDDEN", (query, error)
    anonymous = Caller(gateway.client, None, gateway.acme.tenant_id, "")
    for query, variables in (
        (PUBLISH, {"input": {"topic": "jobs.run"}}),
        (CLAIM, {"input": {"group": "strict", "waitSeconds": 25}}),
        (EVENTS, {"first": 5}),
    ):
        error = await anonymous.error(query, variables)
        assert code(error) == "UNAUTHENTICATED", (query, error)
    assert await all_events(gateway.acme, topic="jobs.*") == [published]
    assert (await group(gateway.acme, "strict"))["pending"] == 1

    # members publish, create groups and consume: claim, extend, nack, ack
    mine = await publish(member, "jobs.run", {"by": "member"})
    assert mine["source"] == f"apikey:{(await member.data(ME))['me']['keyId']}"
    await create_group(member, "members-group", ["jobs.*"])
    first, second = await claim(member, "strict", limit=10)
    await member.data(EXTEND, {"input": lease(first, visibilityTimeoutSeconds=60)})
    assert (await ack(member, first))["state"] == "ACKED"
    assert (await nack(member, second, error="no"))["state"] == "DEAD_LETTER"
    # … but only admins delete groups and handle dead letters
    for query, variables in (
        (DELETE_GROUP, {"name": "members-group"}),
        (REDRIVE, {"input": {"group": "strict"}}),
        (DELETE_DEAD, {"input": {"group": "strict", "eventIds": [mine["id"]]}}),
    ):
        error = await member.error(query, variables)
        assert code(error) == "FORBIDDEN", (query, error)
    assert (await group(member, "strict"))["deadLetter"] == 1

    redriven = (await admin.data(REDRIVE, {"input": {"group": "strict"}}))["redriveDeadLetters"]
    assert redriven["eventIds"] == [mine["id"]]
    (again,) = await claim(admin, "strict")
    await nack(admin, again)
    removed = await admin.data(
        DELETE_DEAD, {"input": {"group": "strict", "eventIds": [mine["id"]]}}
    )
    assert removed["deleteDeadLetters"]["eventIds"] == [mine["id"]]
    await admin.data(DELETE_GROUP, {"name": "members-group"})
    assert code(await admin.error(GROUP, {"name": "members-group"})) == "NOT_FOUND"


async def test_platform_groups_can_be_read_but_not_created_consumed_or_deleted(gateway):
    admin = gateway.acme  # the owner: no role may touch them
    # a platform service's group of the tenant, as the webhook and billing services make them
    await gateway.runtime.ask(
        CreateConsumerGroup(tenant_id=admin.tenant_id, name="sx.webhooks", topics=("#",))
    )
    published = await publish(admin, "jobs.run")
    pair = {"eventId": published["id"], "leaseId": "lse_x"}
    lease = {"group": "sx.webhooks", **pair}
    for query, variables, field in (
        (CREATE_GROUP, {"input": {"name": "sx.mine", "topics": ["#"]}}, "name"),
        (DELETE_GROUP, {"name": "sx.webhooks"}, "name"),
        (CLAIM, {"input": {"group": "sx.webhooks"}}, "group"),
        (ACK, {"input": lease}, "group"),
        (ACK_MANY, {"input": {"group": "sx.webhooks", "leases": [pair]}}, "group"),
        (NACK, {"input": lease}, "group"),
        (EXTEND, {"input": lease | {"visibilityTimeoutSeconds": 5}}, "group"),
        (REDRIVE, {"input": {"group": "sx.webhooks"}}, "group"),
        (DELETE_DEAD, {"input": {"group": "sx.webhooks", "eventIds": [published["id"]]}}, "group"),
    ):
        error = await admin.error(query, variables)
        assert code(error) == "FORBIDDEN", (query, error)
        assert error["extensions"]["field"] == field
    assert (await group(admin, "sx.webhooks"))["pending"] == 1  # untouched, and readable


async def test_every_event_mutation_is_audited_with_its_outcome(gateway):
    viewer = await gateway.key_for(gateway.acme, "viewer", "viewer@acme.io")
    owner = gateway.acme
    await create_group(owner, "strict", ["jobs.*"], maxAttempts=2, retryBackoffSeconds=0)
    jobs = [await publish(owner, "jobs.run", {"i": i}) for i in range(3)]
    d0, d1, d2 = await claim(owner, "strict", limit=3)
    me = (await owner.data(ME))["me"]

    strict = {"group": "strict"}
    ack_many = {
        "group": "strict",
        "leases": [{"eventId": d1["event"]["id"], "leaseId": d1["leaseId"]}],
    }
    g2 = {"name": "g2", "topics": ["#"]}
    # (caller, query, input), "action outcome [error code]", resource id ("*": any)
    steps: list[tuple[tuple[Caller, str, dict], str, str | None]] = [
        ((owner, PUBLISH, {"topic": "jobs.run"}), "event.publish SUCCESS", "*"),
        ((owner, PUBLISH, {"topic": "bad topic"}), "event.publish FAILURE INVALID_INPUT", None),
        ((viewer, PUBLISH, {"topic": "jobs.run"}), "event.publish DENIED FORBIDDEN", None),
        ((owner, CREATE_GROUP, g2), "event.consumer_group.create SUCCESS", "*"),
        ((owner, CREATE_GROUP, g2), "event.consumer_group.create FAILURE CONFLICT", None),
        ((owner, CLAIM, strict), "event.claim SUCCESS", "strict"),
        ((viewer, CLAIM, strict), "event.claim DENIED FORBIDDEN", "strict"),
        (
            (owner, CLAIM, strict | {"waitSeconds": 25}),
            "event.claim FAILURE INVALID_INPUT",
            "strict",
        ),
        (
            (owner, EXTEND, lease(d0, visibilityTimeoutSeconds=60)),
            "event.lease.extend SUCCESS",
            jobs[0]["id"],
        ),
        ((owner, ACK, lease(d0)), "event.ack SUCCESS", jobs[0]["id"]),
        ((owner, ACK, lease(d0)), "event.ack FAILURE CONFLICT", jobs[0]["id"]),
        ((owner, ACK_MANY, ack_many), "event.ack SUCCESS", "strict"),
        ((owner, NACK, lease(d2, error="x")), "event.nack SUCCESS", jobs[2]["id"]),
        ((owner, REDRIVE, strict), "event.dead_letter.redrive SUCCESS", "strict"),
        (
            (owner, DELETE_DEAD, strict | {"eventIds": [d2["event"]["id"]]}),
            "event.dead_letter.delete SUCCESS",
            "strict",
        ),
        ((owner, DELETE_GROUP, {"name": "g2"}), "event.consumer_group.delete SUCCESS", "g2"),
        (
            (owner, DELETE_GROUP, {"name": "g2"}),
            "event.consumer_group.delete FAILURE NOT_FOUND",
            "g2",
        ),
        (
            (viewer, DELETE_GROUP, {"name": "strict"}),
            "event.consumer_group.delete DENIED FORBIDDEN",
            "strict",
        ),
    ]
    sent = []
    for (caller, query, fields), expected, resource_id in steps:
        variables = fields if query is DELETE_GROUP else {"input": fields}
        request_id, body = await send(caller, query, variables)
        sent.append((request_id, caller, body, expected, resource_id))

    by_request = {r["requestId"]: r for r in await audit_records(owner)}
    for request_id, caller, body, expected, resource_id in sent:
        assert request_id in by_request, (expected, body)  # one record for every request
        record = by_request[request_id]
        got = (record["action"], record["outcome"], record["errorCode"])
        assert " ".join(filter(None, got)) == expected, (record, body)
        if resource_id == "*":
            assert record["resourceId"], record
        elif resource_id is not None:
            assert record["resourceId"] == resource_id, record
        if caller is owner:
            assert record["actor"] == {"memberId": me["memberId"], "keyId": me["keyId"]}
        else:
            assert record["actor"]["memberId"] == viewer.member_id
    published = sent[0][2]["data"]["publishEvent"]
    assert by_request[sent[0][0]]["resourceId"] == published["id"]
    # and nothing else: the setup's 5 mutations, no queries
    assert len(by_request) == len(steps) + 5


# ---------------------------------------------------------------------------- isolation


async def test_a_tenant_sees_and_touches_nothing_of_another_tenants_events(gateway):
    acme, globex = gateway.acme, gateway.globex
    await create_group(acme, "orders", ["orders.*"])
    secret = await publish(acme, "orders.created", {"secret": "acme-only"})
    (delivery,) = await claim(acme, "orders")

    assert secret["id"] not in {e["id"] for e in await all_events(globex)}
    assert "acme-only" not in json.dumps(await all_events(globex))
    error = await globex.error(EVENT, {"id": secret["id"]})
    assert code(error) == "NOT_FOUND"
    assert "acme-only" not in json.dumps(error)
    error = await globex.error(EVENTS, {"first": 5, "after": secret["id"]})
    assert code(error) == "INVALID_INPUT"
    for query, variables in (
        (GROUP, {"name": "orders"}),
        (DEAD_LETTERS, {"group": "orders", "first": 5}),
        (CLAIM, {"input": {"group": "orders"}}),
        (ACK, {"input": lease(delivery)}),
        (DELETE_GROUP, {"name": "orders"}),
        (REDRIVE, {"input": {"group": "orders"}}),
    ):
        error = await globex.error(query, variables)
        assert code(error) == "NOT_FOUND", (query, error)
    assert (await globex.data(GROUPS, {"first": 10}))["consumerGroups"]["edges"] == []

    # a group of the same name in globex is another group: acme's lease means nothing there
    await create_group(globex, "orders", ["orders.*"])
    assert await claim(globex, "orders") == []
    for query in (ACK, NACK):
        assert code(await globex.error(query, {"input": lease(delivery)})) == "NOT_FOUND"
    extend = lease(delivery, visibilityTimeoutSeconds=60)
    assert code(await globex.error(EXTEND, {"input": extend})) == "NOT_FOUND"
    batch = {
        "group": "orders",
        "leases": [{"eventId": secret["id"], "leaseId": delivery["leaseId"]}],
    }
    assert (await globex.data(ACK_MANY, {"input": batch}))["ackEvents"] == {
        "acked": [],
        "stale": [secret["id"]],
    }
    # the same name in globex's idempotency keys is globex's own
    theirs = await publish(globex, "orders.created", idempotencyKey="k")
    assert (await publish(acme, "orders.created", idempotencyKey="k"))["id"] != theirs["id"]

    # acme's delivery is untouched and its lease still works
    view = await group(acme, "orders")
    assert (view["leased"], view["pending"]) == (1, 1)
    assert (await ack(acme, delivery))["state"] == "ACKED"


# ---------------------------------------------------------------------------- domain events


def _payloads(events: list[dict], topic: str) -> list[dict]:
    return [e["payload"] for e in events if e["topic"] == topic]


async def test_bootstrap_publishes_the_tenant_and_owner_events(gateway):
    events = await all_events(gateway.acme)
    me = (await gateway.acme.data(ME))["me"]
    tenant = (await gateway.acme.data("{ me { tenant { id name slug plan } } }"))["me"]["tenant"]

    assert [(e["topic"], e["source"]) for e in events] == [
        ("tenant.created", "tenant-service"),
        ("tenant.member.added", "tenant-service"),
        ("apikey.created", "auth-service"),  # the fixture's "boot" key
    ]
    created, added, key = events
    assert created["payload"] == {
        "tenantId": tenant["id"],
        "name": "Acme",
        "slug": tenant["slug"],
        "plan": "pro",
    }
    assert added["payload"] == {
        "tenantId": tenant["id"],
        "memberId": me["memberId"],
        "email": "owner@acme.io",
        "role": "owner",
    }
    assert key["payload"]["keyId"] == me["keyId"]
    assert key["payload"]["memberId"] == me["memberId"]
    assert gateway.acme.key not in json.dumps(events)
    assert hashlib.sha256(gateway.acme.key.encode()).hexdigest() not in json.dumps(events)
    # globex's stream is its own
    theirs = await all_events(gateway.globex)
    assert [e["topic"] for e in theirs] == [
        "tenant.created",
        "tenant.member.added",
        "apikey.created",
    ]
    assert theirs[0]["payload"]["name"] == "Globex"


async def test_member_and_key_changes_are_in_the_stream_when_the_mutation_returns(gateway):
    owner = gateway.acme
    start = (await all_events(owner))[-1]["id"]

    added = (
        await owner.data(
            'mutation { addTenantMember(input: {email: "dev@acme.io", role: MEMBER}) { id } }'
        )
    )["addTenantMember"]
    events = await all_events(owner, after=start)  # at once, no waiting
    assert [(e["topic"], e["source"], e["key"]) for e in events] == [
        ("tenant.member.added", "tenant-service", added["id"])
    ]
    assert events[0]["payload"] == {
        "tenantId": owner.tenant_id,
        "memberId": added["id"],
        "email": "dev@acme.io",
        "role": "member",
    }

    created = (
        await owner.data(
            'mutation { createApiKey(input: {name: "ci", role: MEMBER}) '
            "{ key apiKey { id prefix memberId } } }"
        )
    )["createApiKey"]
    api_key = created["apiKey"]
    events = await all_events(owner, after=events[-1]["id"])
    assert [(e["topic"], e["source"], e["key"]) for e in events] == [
        ("apikey.created", "auth-service", api_key["id"])
    ]
    assert events[0]["payload"] == {
        "keyId": api_key["id"],
        "memberId": owner.member_id,
        "name": "ci",
        "role": "member",
        "prefix": api_key["prefix"],
    }

    await owner.data(
        "mutation ($id: ID!) { revokeApiKey(input: {id: $id}) { id } }", {"id": api_key["id"]}
    )
    events = await all_events(owner, after=events[-1]["id"])
    assert [(e["topic"], e["source"]) for e in events] == [("apikey.revoked", "auth-service")]
    assert events[0]["payload"]["keyId"] == api_key["id"]
    # revoking again changes nothing and publishes nothing
    await owner.data(
        "mutation ($id: ID!) { revokeApiKey(input: {id: $id}) { id } }", {"id": api_key["id"]}
    )
    assert await all_events(owner, after=events[-1]["id"]) == []

    # a member who leaves takes their keys along: both facts are published
    dev_key = await gateway.runtime.ask(
        CreateApiKey(tenant_id=owner.tenant_id, member_id=added["id"], role="member", name="dev")
    )
    mark = (await all_events(owner))[-1]["id"]
    await owner.data(
        "mutation ($id: ID!) { removeTenantMember(input: {id: $id}) { id } }", {"id": added["id"]}
    )
    events = await all_events(owner, after=mark)
    assert [(e["topic"], e["source"], e["key"]) for e in events] == [
        ("tenant.member.removed", "tenant-service", added["id"]),
        ("apikey.revoked", "auth-service", dev_key.api_key.id),
    ]
    assert events[0]["payload"]["email"] == "dev@acme.io"
    assert events[1]["payload"]["memberId"] == added["id"]

    everything = json.dumps(await all_events(owner))
    for secret in (created["key"], dev_key.key):
        assert secret not in everything
        assert hashlib.sha256(secret.encode()).hexdigest() not in everything
    assert all(e["topic"].startswith(("tenant.", "apikey.")) for e in await all_events(owner))
    assert await all_events(gateway.globex, topic="apikey.revoked") == []
