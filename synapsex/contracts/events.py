"""event-bus-service: a durable per-tenant event log with consumer groups.

An event belongs to one tenant and has a ``topic`` (dot-separated segments such as
``tenant.member.added``), a JSON ``payload`` (at most 256 KiB encoded), an optional ``key``, and a
``seq``: its position in the tenant's stream. ``seq`` numbers are consecutive per tenant (1, 2, 3 …)
and follow commit order, so a reader that has seen ``seq`` n has seen everything before it.

A **consumer group** names topic patterns (``*`` matches one segment, ``#`` as the last segment
matches the rest) and gets its own delivery of every matching event published after the group was
created. Per group an event is ``pending`` → ``leased`` → ``acked``; a nack or an expired lease
returns it to ``pending`` after a backoff; past ``max_attempts`` it is ``dead_letter`` with the last
error until it is redriven or deleted. A claim leases up to ``limit`` events in stream order, and
never two events with the same key at once: a later event with a key waits until the earlier one is
acked or dead-lettered. Ack, nack and extend need the current ``lease_id`` of the delivery; an
expired or superseded lease is refused with :class:`~synapsex.contracts.errors.Conflict`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from synapsex.contracts.common import Page, PageRequest, check_text
from synapsex.contracts.errors import Forbidden, InvalidInput
from synapsex.contracts.message import Message, Reply

SERVICE = "event-bus-service"

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_TOPIC_LENGTH = 200
MAX_KEY_LENGTH = 200
MAX_GROUP_NAME_LENGTH = 100
MAX_PATTERNS = 20
MAX_BATCH = 100
#: delayed publish: at most 15 minutes
MAX_DELAY_SECONDS = 900.0
#: a lease lasts at most 12 hours (as SQS's visibility timeout)
MAX_VISIBILITY_SECONDS = 43_200.0
MAX_ATTEMPTS = 100
MAX_BACKOFF_SECONDS = 86_400.0
MAX_ERROR_LENGTH = 2_000
#: the same idempotency key within this window returns the first event
IDEMPOTENCY_WINDOW_SECONDS = 86_400.0

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_VISIBILITY_SECONDS = 30.0
DEFAULT_RETRY_BACKOFF_SECONDS = 1.0
DEFAULT_MAX_RETRY_BACKOFF_SECONDS = 600.0

DeliveryState = Literal["pending", "leased", "acked", "dead_letter"]
DELIVERY_STATES: tuple[str, ...] = ("pending", "leased", "acked", "dead_letter")

_SEGMENT = r"[A-Za-z0-9_\-]+"
_TOPIC_RE = re.compile(rf"{_SEGMENT}(\.{_SEGMENT})*")
_GROUP_RE = re.compile(r"[a-z0-9][a-z0-9._\-]*")


#: consumer groups named so belong to the platform's own services (``sx.webhooks``,
#: ``sx.billing``): users see them but may not create, claim from, ack in or delete them
PLATFORM_GROUP_PREFIX = "sx."


def check_user_group(name: str, field: str) -> None:
    """:class:`Forbidden` when a user names a platform group (see :data:`PLATFORM_GROUP_PREFIX`)
    in anything but a read: acking or deleting one would lose events another service needs."""
    if name.startswith(PLATFORM_GROUP_PREFIX):
        raise Forbidden(
            f"consumer groups named {PLATFORM_GROUP_PREFIX}* belong to the platform's services;"
            " read them, but use a group of your own to consume events",
            field=field,
        )


def events_channel(tenant_id: str) -> str:
    """The runtime broadcast channel on which a tenant's committed events are announced, as
    :class:`EventView` items in ``seq`` order (the gateway's subscriptions listen there)."""
    return f"{SERVICE}/events/{tenant_id}"


# ---------------------------------------------------------------------------- checks


def check_topic(value: str, field: str = "topic") -> None:
    """A concrete topic: dot-separated segments of letters, digits, ``_`` and ``-``."""
    if not 1 <= len(value) <= MAX_TOPIC_LENGTH:
        raise InvalidInput(field, f"must be 1 to {MAX_TOPIC_LENGTH} characters")
    if not _TOPIC_RE.fullmatch(value):
        raise InvalidInput(
            field, "must be dot-separated segments of letters, digits, '_' or '-' (no wildcards)"
        )


def check_topic_patterns(patterns: tuple[str, ...] | list[str], field: str = "topics") -> None:
    """1 to 20 topics or patterns: a segment may be ``*``; the last segment may be ``#``."""
    if not 1 <= len(patterns) <= MAX_PATTERNS:
        raise InvalidInput(field, f"must name 1 to {MAX_PATTERNS} topics or patterns")
    for i, pattern in enumerate(patterns):
        where = f"{field}[{i}]"
        if type(pattern) is not str or not 1 <= len(pattern) <= MAX_TOPIC_LENGTH:
            raise InvalidInput(where, f"must be a string of 1 to {MAX_TOPIC_LENGTH} characters")
        segments = pattern.split(".")
        for j, segment in enumerate(segments):
            if segment == "#" and j == len(segments) - 1:
                continue
            if segment != "*" and not re.fullmatch(_SEGMENT, segment):
                raise InvalidInput(
                    where,
                    f"segment {segment!r}: use letters, digits, '_', '-', '*' (one segment) "
                    "or a final '#' (the rest)",
                )


@lru_cache(maxsize=4096)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in pattern.split("."):
        if segment == "#":
            parts.append(None)
        elif segment == "*":
            parts.append(_SEGMENT)
        else:
            parts.append(re.escape(segment))
    if parts[-1] is None:  # "a.#" matches "a" too; "#" alone matches everything
        head = r"\.".join(p for p in parts[:-1] if p is not None)
        return re.compile(rf"{head}(\..*)?" if head else r".*")
    return re.compile(r"\.".join(p for p in parts if p is not None))


def topic_matcher(patterns: tuple[str, ...] | list[str]) -> Callable[[str], bool]:
    """A predicate telling whether a topic matches any of ``patterns`` (checked beforehand)."""
    regexes = [_pattern_regex(p) for p in patterns]
    return lambda topic: any(r.fullmatch(topic) for r in regexes)


def encode_payload(payload: Any, field: str = "payload") -> str:
    """The payload as compact JSON text; :class:`InvalidInput` when it is not JSON or too big."""
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, f"must be JSON ({exc})") from None
    if len(text) > MAX_PAYLOAD_BYTES // 4 and len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise InvalidInput(field, f"must be at most {MAX_PAYLOAD_BYTES} bytes as JSON")
    return text


def _check_seconds(value: float | None, field: str, *, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidInput(field, f"must be between {low:g} and {high:g} seconds")


def _check_group_name(value: str, field: str = "group") -> None:
    if not 1 <= len(value) <= MAX_GROUP_NAME_LENGTH or not _GROUP_RE.fullmatch(value):
        raise InvalidInput(
            field,
            f"must be 1 to {MAX_GROUP_NAME_LENGTH} lower-case letters, digits, '.', '_' or '-'",
        )


def _check_publisher(tenant_id: str, source: str) -> None:
    check_text(tenant_id, "tenant_id", max_length=40)
    check_text(source, "source", max_length=100)


def _check_id(value: str, field: str) -> None:
    if not 1 <= len(value) <= 100:
        raise InvalidInput(field, "must be 1 to 100 characters")


# ---------------------------------------------------------------------------- replies


class EventView(Reply):
    id: str
    tenant_id: str
    #: the event's position in its tenant's stream (consecutive, in commit order)
    seq: int
    topic: str
    payload: Any
    key: str | None
    occurred_at: datetime
    trace_id: str | None
    #: who published it: a service name, or ``apikey:<key id>``
    source: str
    #: the payload as stored (compact JSON text), given instead of ``payload`` (then ``None``)
    #: only to a claim that asked for ``raw_payloads``
    payload_json: str | None = None


class DeliveryView(Reply):
    """One event's state in one consumer group."""

    group: str
    event: EventView
    state: DeliveryState
    #: how many times it has been leased
    attempt: int
    lease_id: str | None
    lease_expires_at: datetime | None
    #: when a pending delivery may next be claimed
    available_at: datetime | None
    last_error: str | None


class GroupCounts(Reply):
    pending: int
    leased: int
    acked: int
    dead_letter: int
    #: age of the oldest event still waiting to be acked (pending or leased), else ``None``
    oldest_pending_age_seconds: float | None


class ConsumerGroupView(Reply):
    id: str
    tenant_id: str
    name: str
    topics: tuple[str, ...]
    max_attempts: int
    visibility_timeout_seconds: float
    retry_backoff_seconds: float
    max_retry_backoff_seconds: float
    created_at: datetime
    counts: GroupCounts


class AckResult(Reply):
    """A batch ack: the events this call acked, and those none of whose given leases was
    current (expired, or the event was claimed again); each event id appears once."""

    acked: tuple[str, ...]
    stale: tuple[str, ...]


class ChangedDeliveries(Reply):
    """Redrive or delete of dead letters: the events affected (in stream order), and the group
    afterwards."""

    event_ids: tuple[str, ...]
    group: ConsumerGroupView


class StreamChunk(Reply):
    """A stretch of a tenant's stream: the matching events with ``seq`` in
    ``(after_seq, last_seq]``; ``head_seq`` is the stream's end when it was read."""

    events: tuple[EventView, ...]
    last_seq: int
    head_seq: int


# ---------------------------------------------------------------------------- messages


class EventDraft(Message, service=SERVICE):
    """One event to publish (an item of :class:`PublishEvents`; never sent alone)."""

    topic: str
    payload: Any = None
    key: str | None = None
    #: claimable by consumer groups only after this many seconds (0..900)
    delay_seconds: float = 0.0
    #: the same key within 24 hours returns the first event instead of a new one
    idempotency_key: str | None = None

    def validate(self) -> None:
        check_topic(self.topic)
        if self.key is not None:
            check_text(self.key, "key", max_length=MAX_KEY_LENGTH)
        if self.idempotency_key is not None:
            check_text(self.idempotency_key, "idempotencyKey", max_length=MAX_KEY_LENGTH)
        _check_seconds(self.delay_seconds, "delaySeconds", low=0, high=MAX_DELAY_SECONDS)
        encode_payload(self.payload)


class PublishEvents(Message, service=SERVICE):
    """Publish 1 to 100 events atomically; replies ``tuple[EventView, ...]`` in order once they
    are durable. An idempotent draft whose key was used in the last 24 hours yields the first
    event (and publishes nothing)."""

    tenant_id: str
    source: str
    events: tuple[EventDraft, ...]

    def validate(self) -> None:
        _check_publisher(self.tenant_id, self.source)
        if not 1 <= len(self.events) <= MAX_BATCH:
            raise InvalidInput("events", f"must hold 1 to {MAX_BATCH} events")
        for i, draft in enumerate(self.events):
            if not isinstance(draft, EventDraft):
                raise InvalidInput(f"events[{i}]", "must be an EventDraft")


class PublishEvent(Message, service=SERVICE):
    """Publish one event; replies :class:`EventView` once it is durable."""

    tenant_id: str
    source: str
    topic: str
    payload: Any = None
    key: str | None = None
    delay_seconds: float = 0.0
    idempotency_key: str | None = None

    def draft(self) -> EventDraft:
        return EventDraft(
            topic=self.topic,
            payload=self.payload,
            key=self.key,
            delay_seconds=self.delay_seconds,
            idempotency_key=self.idempotency_key,
        )

    def validate(self) -> None:
        _check_publisher(self.tenant_id, self.source)
        self.draft()


class GetEvent(Message, service=SERVICE):
    """Replies :class:`EventView`; ``NotFound`` for another tenant's event."""

    tenant_id: str
    event_id: str


class ListEvents(PageRequest, service=SERVICE):
    """Replies ``Page[EventView]`` in stream order; ``topic`` may be a pattern."""

    tenant_id: str
    topic: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        if self.topic is not None:
            try:
                check_topic_patterns((self.topic,), "topic")
            except InvalidInput as exc:  # one pattern: name the field, not "topic[0]"
                raise InvalidInput("topic", exc.problem) from None


class CreateConsumerGroup(Message, service=SERVICE):
    """Replies :class:`ConsumerGroupView`; ``Conflict`` when the tenant has a group so named."""

    tenant_id: str
    name: str
    topics: tuple[str, ...]
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    visibility_timeout_seconds: float = DEFAULT_VISIBILITY_SECONDS
    #: the first retry waits this long; each further retry twice as long, up to the maximum
    retry_backoff_seconds: float = DEFAULT_RETRY_BACKOFF_SECONDS
    max_retry_backoff_seconds: float = DEFAULT_MAX_RETRY_BACKOFF_SECONDS

    def validate(self) -> None:
        _check_group_name(self.name, "name")
        check_topic_patterns(self.topics)
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise InvalidInput("maxAttempts", f"must be between 1 and {MAX_ATTEMPTS}")
        _check_seconds(
            self.visibility_timeout_seconds,
            "visibilityTimeoutSeconds",
            low=0.01,
            high=MAX_VISIBILITY_SECONDS,
        )
        _check_seconds(
            self.retry_backoff_seconds, "retryBackoffSeconds", low=0, high=MAX_BACKOFF_SECONDS
        )
        _check_seconds(
            self.max_retry_backoff_seconds,
            "maxRetryBackoffSeconds",
            low=0,
            high=MAX_BACKOFF_SECONDS,
        )
        if self.max_retry_backoff_seconds < self.retry_backoff_seconds:
            raise InvalidInput("maxRetryBackoffSeconds", "must be at least retryBackoffSeconds")


class GetConsumerGroup(Message, service=SERVICE):
    """Replies :class:`ConsumerGroupView` with its counts."""

    tenant_id: str
    name: str


class ListConsumerGroups(PageRequest, service=SERVICE):
    """Replies ``Page[ConsumerGroupView]``, oldest first, with counts."""

    tenant_id: str


class DeleteConsumerGroup(Message, service=SERVICE):
    """Delete a group and its deliveries (dead letters included); replies the last view."""

    tenant_id: str
    name: str


class ClaimEvents(Message, service=SERVICE):
    """Lease up to ``limit`` claimable events; replies ``tuple[DeliveryView, ...]`` in stream
    order (possibly empty). ``visibility_timeout_seconds`` defaults to the group's."""

    tenant_id: str
    group: str
    limit: int = 10
    visibility_timeout_seconds: float | None = None
    #: each event's ``payload_json`` (the stored JSON text) instead of its decoded ``payload``:
    #: for a consumer that passes the payload on as JSON (a decode and an encode fewer)
    raw_payloads: bool = False

    def validate(self) -> None:
        _check_group_name(self.group)
        if not 1 <= self.limit <= MAX_BATCH:
            raise InvalidInput("limit", f"must be between 1 and {MAX_BATCH}")
        _check_seconds(
            self.visibility_timeout_seconds,
            "visibilityTimeoutSeconds",
            low=0.01,
            high=MAX_VISIBILITY_SECONDS,
        )


class _LeaseMessage(Message, abstract=True):
    tenant_id: str
    group: str
    event_id: str
    lease_id: str

    def validate(self) -> None:
        _check_group_name(self.group)
        _check_id(self.event_id, "eventId")
        _check_id(self.lease_id, "leaseId")


class AckEvent(_LeaseMessage, service=SERVICE):
    """Ack one leased event; replies the acked :class:`DeliveryView`. ``Conflict`` when the
    lease is not current (expired, or the event was claimed again)."""


class LeaseRef(Message, service=SERVICE):
    """One ``(event, lease)`` pair of :class:`AckEvents` (never sent alone)."""

    event_id: str
    lease_id: str

    def validate(self) -> None:
        _check_id(self.event_id, "eventId")
        _check_id(self.lease_id, "leaseId")


class AckEvents(Message, service=SERVICE):
    """Ack up to 100 leased events at once; replies :class:`AckResult` (stale leases are
    reported, not raised, so one late event does not undo the rest)."""

    tenant_id: str
    group: str
    leases: tuple[LeaseRef, ...]

    def validate(self) -> None:
        _check_group_name(self.group)
        if not 1 <= len(self.leases) <= MAX_BATCH:
            raise InvalidInput("leases", f"must hold 1 to {MAX_BATCH} leases")
        for i, lease in enumerate(self.leases):
            if not isinstance(lease, LeaseRef):
                raise InvalidInput(f"leases[{i}]", "must be a LeaseRef")


class NackEvent(_LeaseMessage, service=SERVICE):
    """Give a leased event back: ``pending`` again after ``delay_seconds`` (default: the group's
    backoff for this attempt), or ``dead_letter`` if it has had its max attempts."""

    delay_seconds: float | None = None
    error: str | None = None

    def validate(self) -> None:
        _LeaseMessage.validate(self)
        _check_seconds(self.delay_seconds, "delaySeconds", low=0, high=MAX_VISIBILITY_SECONDS)
        if self.error is not None and len(self.error) > MAX_ERROR_LENGTH:
            raise InvalidInput("error", f"must be at most {MAX_ERROR_LENGTH} characters")


class ExtendLease(_LeaseMessage, service=SERVICE):
    """Keep a lease for ``visibility_timeout_seconds`` from now; replies the delivery."""

    visibility_timeout_seconds: float

    def validate(self) -> None:
        _LeaseMessage.validate(self)
        _check_seconds(
            self.visibility_timeout_seconds,
            "visibilityTimeoutSeconds",
            low=0.01,
            high=MAX_VISIBILITY_SECONDS,
        )


class ListDeadLetters(PageRequest, service=SERVICE):
    """Replies ``Page[DeliveryView]`` of the group's dead letters in stream order."""

    tenant_id: str
    group: str


class RedriveDeadLetters(Message, service=SERVICE):
    """Make dead letters ``pending`` again with a fresh attempt count: the named ones, or all
    of the group's when ``event_ids`` is ``None``. Replies :class:`ChangedDeliveries`."""

    tenant_id: str
    group: str
    event_ids: tuple[str, ...] | None = None

    def validate(self) -> None:
        _check_group_name(self.group)
        if self.event_ids is not None and not 1 <= len(self.event_ids) <= MAX_BATCH:
            raise InvalidInput("eventIds", f"must hold 1 to {MAX_BATCH} ids (or be omitted)")


class DeleteDeadLetters(Message, service=SERVICE):
    """Delete the named dead letters of a group; replies :class:`ChangedDeliveries`."""

    tenant_id: str
    group: str
    event_ids: tuple[str, ...]

    def validate(self) -> None:
        _check_group_name(self.group)
        if not 1 <= len(self.event_ids) <= MAX_BATCH:
            raise InvalidInput("eventIds", f"must hold 1 to {MAX_BATCH} ids")


class StreamPosition(Message, service=SERVICE):
    """Where a subscription starts: the ``seq`` of event ``after_event_id`` (``NotFound`` if it
    is not the tenant's or no longer kept), or the stream's current end. Replies ``int``."""

    tenant_id: str
    after_event_id: str | None = None


class ReadStream(Message, service=SERVICE):
    """Read the tenant's stream after ``after_seq`` (at most ``limit`` events scanned, none past
    ``up_to_seq``), keeping those matching ``topics``; replies :class:`StreamChunk`."""

    tenant_id: str
    after_seq: int
    topics: tuple[str, ...] = ("#",)
    limit: int = 500
    up_to_seq: int | None = None

    def validate(self) -> None:
        if self.after_seq < 0:
            raise InvalidInput("afterSeq", "must be >= 0")
        if not 1 <= self.limit <= 1000:
            raise InvalidInput("limit", "must be between 1 and 1000")
        check_topic_patterns(self.topics)


__all__ = [
    "DELIVERY_STATES",
    "MAX_PAYLOAD_BYTES",
    "PLATFORM_GROUP_PREFIX",
    "SERVICE",
    "AckEvent",
    "AckEvents",
    "AckResult",
    "ChangedDeliveries",
    "ClaimEvents",
    "ConsumerGroupView",
    "CreateConsumerGroup",
    "DeleteConsumerGroup",
    "DeleteDeadLetters",
    "DeliveryView",
    "EventDraft",
    "EventView",
    "ExtendLease",
    "GetConsumerGroup",
    "GetEvent",
    "GroupCounts",
    "LeaseRef",
    "ListConsumerGroups",
    "ListDeadLetters",
    "ListEvents",
    "NackEvent",
    "Page",
    "PublishEvent",
    "PublishEvents",
    "ReadStream",
    "RedriveDeadLetters",
    "StreamChunk",
    "StreamPosition",
    "check_topic",
    "check_topic_patterns",
    "check_user_group",
    "encode_payload",
    "events_channel",
    "topic_matcher",
]
