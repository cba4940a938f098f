"""The event bus contract on its own: topics, patterns, payload size and the fields each message
names when it refuses its input (no runtime, no database)."""

from __future__ import annotations

import pytest

from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.events import (
    MAX_PAYLOAD_BYTES,
    AckEvents,
    ClaimEvents,
    CreateConsumerGroup,
    DeleteDeadLetters,
    EventDraft,
    ExtendLease,
    LeaseRef,
    ListDeadLetters,
    ListEvents,
    NackEvent,
    PublishEvent,
    PublishEvents,
    ReadStream,
    RedriveDeadLetters,
    check_topic,
    check_topic_patterns,
    encode_payload,
    topic_matcher,
)


def field_of(build) -> str:
    with pytest.raises(InvalidInput) as err:
        build()
    return err.value.field


@pytest.mark.parametrize(
    "topic", ["a", "orders.created", "tenant.member-added", "v2.ORDERS.x_y", "a" * 200]
)
def test_concrete_topics_are_accepted(topic):
    check_topic(topic)
    assert PublishEvent(tenant_id="t", source="s", topic=topic).topic == topic


@pytest.mark.parametrize(
    "topic",
    ["", "a..b", ".a", "a.", "a.*", "*", "#", "a.#", "a b", "a/b", "ä", "a" * 201],
)
def test_bad_topics_are_refused_naming_the_topic(topic):
    assert field_of(lambda: check_topic(topic)) == "topic"
    assert field_of(lambda: PublishEvent(tenant_id="t", source="s", topic=topic)) == "topic"
    assert field_of(lambda: EventDraft(topic=topic)) == "topic"


def test_patterns_allow_star_segments_and_a_final_hash():
    check_topic_patterns(("#", "*", "a.*.c", "a.#", "*.#", "*.*", "a.b"))
    assert field_of(lambda: check_topic_patterns(())) == "topics"
    assert field_of(lambda: check_topic_patterns(["a"] * 21)) == "topics"
    for i, bad in enumerate(("a.#.b", "#.a", "a*", "a..b", "", "a.**", "a.b#")):
        patterns = ("ok",) * i + (bad,)
        assert field_of(lambda p=patterns: check_topic_patterns(p)) == f"topics[{i}]", bad


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("orders.created", ["orders.created"], ["orders", "orders.created.eu", "ordersXcreated"]),
        ("orders.*", ["orders.created", "orders.x-y"], ["orders", "orders.a.b", "other.a"]),
        ("*.created", ["orders.created", "a.created"], ["created", "a.b.created"]),
        ("a.*.c", ["a.b.c"], ["a.c", "a.b.b.c", "a.b.d"]),
        ("orders.#", ["orders", "orders.a", "orders.a.b.c"], ["ordersx", "other.orders"]),
        ("*.#", ["a", "a.b", "a.b.c"], []),
        ("#", ["a", "a.b.c"], []),
    ],
)
def test_topic_matcher(pattern, matching, not_matching):
    matches = topic_matcher((pattern,))
    assert [t for t in matching if not matches(t)] == []
    assert [t for t in not_matching if matches(t)] == []


def test_a_matcher_of_several_patterns_matches_any():
    matches = topic_matcher(("a.*", "b.#"))
    assert [t for t in ("a.x", "b", "b.y.z", "a", "c.x", "a.x.y") if matches(t)] == [
        "a.x",
        "b",
        "b.y.z",
    ]


def test_payloads_are_at_most_256_kib_of_json():
    assert MAX_PAYLOAD_BYTES == 256 * 1024
    at_limit = "x" * (MAX_PAYLOAD_BYTES - 2)  # the quotes make it exactly 256 KiB
    assert len(encode_payload(at_limit).encode()) == MAX_PAYLOAD_BYTES
    PublishEvent(tenant_id="t", source="s", topic="t", payload=at_limit)
    too_big = at_limit + "x"
    assert field_of(lambda: encode_payload(too_big)) == "payload"

    def single() -> PublishEvent:
        return PublishEvent(tenant_id="t", source="s", topic="t", payload=too_big)

    assert field_of(single) == "payload"
    assert field_of(lambda: EventDraft(topic="t", payload={"data": too_big})) == "payload"
    # bytes count, not characters: two-byte characters reach the limit at half the length
    two_byte = "é" * ((MAX_PAYLOAD_BYTES - 2) // 2)
    assert len(encode_payload(two_byte).encode()) == MAX_PAYLOAD_BYTES
    assert field_of(lambda: encode_payload(two_byte + "é")) == "payload"
    three_byte = "€" * (MAX_PAYLOAD_BYTES // 3)
    assert len(three_byte) < MAX_PAYLOAD_BYTES
    assert field_of(lambda: encode_payload(three_byte)) == "payload"


def test_payloads_must_be_json():
    assert encode_payload({"b": [1, None, True, "ü"]}) == '{"b":[1,null,true,"ü"]}'
    for bad in ({1, 2}, float("nan"), float("inf"), {"when": object()}):
        assert field_of(lambda b=bad: encode_payload(b)) == "payload"


def test_drafts_and_batches_name_their_bad_field():
    assert field_of(lambda: EventDraft(topic="t", key=" padded")) == "key"
    assert field_of(lambda: EventDraft(topic="t", key="k" * 201)) == "key"
    assert field_of(lambda: EventDraft(topic="t", idempotency_key="")) == "idempotencyKey"
    assert field_of(lambda: EventDraft(topic="t", delay_seconds=-1)) == "delaySeconds"
    assert field_of(lambda: EventDraft(topic="t", delay_seconds=900.01)) == "delaySeconds"
    EventDraft(topic="t", delay_seconds=900)
    hundred = tuple(EventDraft(topic="t") for _ in range(100))
    PublishEvents(tenant_id="t", source="s", events=hundred)
    many = (*hundred, EventDraft(topic="t"))
    assert field_of(lambda: PublishEvents(tenant_id="t", source="s", events=many)) == "events"
    assert field_of(lambda: PublishEvents(tenant_id="t", source="s", events=())) == "events"


def test_groups_claims_and_leases_name_their_bad_field():
    def group(**fields):
        fields.setdefault("topics", ("#",))
        return CreateConsumerGroup(tenant_id="t", name=fields.pop("name", "g"), **fields)

    assert field_of(lambda: group(name="Workers")) == "name"
    assert field_of(lambda: group(name="-workers")) == "name"
    assert field_of(lambda: group(name="w" * 101)) == "name"
    assert field_of(lambda: group(topics=())) == "topics"
    assert field_of(lambda: group(topics=("a", "a.#.b"))) == "topics[1]"
    assert field_of(lambda: group(max_attempts=0)) == "maxAttempts"
    assert field_of(lambda: group(max_attempts=101)) == "maxAttempts"
    assert field_of(lambda: group(visibility_timeout_seconds=0)) == "visibilityTimeoutSeconds"
    assert field_of(lambda: group(retry_backoff_seconds=-1)) == "retryBackoffSeconds"
    assert (
        field_of(lambda: group(retry_backoff_seconds=10, max_retry_backoff_seconds=5))
        == "maxRetryBackoffSeconds"
    )
    assert group(name="orders.v2_worker-1").name == "orders.v2_worker-1"

    assert field_of(lambda: ClaimEvents(tenant_id="t", group="g", limit=0)) == "limit"
    assert field_of(lambda: ClaimEvents(tenant_id="t", group="g", limit=101)) == "limit"
    assert field_of(lambda: ClaimEvents(tenant_id="t", group="G")) == "group"
    assert (
        field_of(lambda: ClaimEvents(tenant_id="t", group="g", visibility_timeout_seconds=0))
        == "visibilityTimeoutSeconds"
    )
    lease = {"tenant_id": "t", "group": "g", "event_id": "e", "lease_id": "l"}
    assert field_of(lambda: NackEvent(**{**lease, "lease_id": ""})) == "leaseId"
    assert field_of(lambda: NackEvent(**{**lease, "event_id": ""})) == "eventId"
    assert field_of(lambda: NackEvent(**lease, error="e" * 2001)) == "error"
    assert field_of(lambda: NackEvent(**lease, delay_seconds=-1)) == "delaySeconds"
    assert (
        field_of(lambda: ExtendLease(**lease, visibility_timeout_seconds=43_201))
        == "visibilityTimeoutSeconds"
    )
    refs = tuple(LeaseRef(event_id=f"e{i}", lease_id="l") for i in range(101))
    assert field_of(lambda: AckEvents(tenant_id="t", group="g", leases=refs)) == "leases"
    assert field_of(lambda: AckEvents(tenant_id="t", group="g", leases=())) == "leases"


def test_lists_and_streams_name_their_bad_field():
    assert field_of(lambda: ListEvents(tenant_id="t", topic="a.#.b")) == "topic"
    assert ListEvents(tenant_id="t", topic="a.*").topic == "a.*"
    assert field_of(lambda: ListEvents(tenant_id="t", first=101)) == "first"
    assert field_of(lambda: ListDeadLetters(tenant_id="t", group="g", first=0)) == "first"
    assert field_of(lambda: RedriveDeadLetters(tenant_id="t", group="g", event_ids=())) == (
        "eventIds"
    )
    assert field_of(lambda: DeleteDeadLetters(tenant_id="t", group="g", event_ids=())) == (
        "eventIds"
    )
    assert field_of(lambda: ReadStream(tenant_id="t", after_seq=0, limit=1001)) == "limit"
    assert field_of(lambda: ReadStream(tenant_id="t", after_seq=0, topics=())) == "topics"
    assert field_of(lambda: ReadStream(tenant_id="t", after_seq=-1)) == "afterSeq"


def test_publishers_are_named_within_the_columns_that_keep_them():
    too_long_source = "s" * 101
    assert field_of(lambda: PublishEvent(tenant_id="t", source=too_long_source, topic="a")) == (
        "source"
    )
    assert field_of(lambda: PublishEvent(tenant_id="t" * 41, source="s", topic="a")) == (
        "tenant_id"
    )
    draft = EventDraft(topic="a")
    assert field_of(lambda: PublishEvents(tenant_id="t", source="", events=(draft,))) == "source"
