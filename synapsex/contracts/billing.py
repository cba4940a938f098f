"""billing-service: metered usage per tenant, its cost, and the daily tool-call limit.

**Usage records** say that a tenant used ``quantity`` units of a ``kind`` at a time ``at``:
tool calls, input / output / cached input tokens of a model, storage bytes, webhook
deliveries, events. Each has an idempotency key unique per tenant: the same usage reported
twice is recorded once, and the second report answers the first record. Usage arrives through
:class:`RecordUsage` (the gateway's ``recordUsage``) and through ``usage.recorded`` events that
services publish on the tenant's stream (:data:`USAGE_TOPIC`; the payload is described in
``docs/billing.md``); for an event the key is the payload's ``idempotencyKey``, else the
event id.

**Costs** (:class:`GetUsageSummary`) price each record at the model-registry price in force at
its ``at`` (token kinds, USD per million tokens; cached input tokens at the cached price, else
the input price). Kinds without a price cost 0 and are marked so. Money is ``Decimal``
throughout, never a float.

**The daily tool-call limit** (``tool_calls_per_day`` of the tenant's plan, per UTC day) is
enforced by :class:`ReserveToolCalls`: one conditional update of a per-tenant, per-day counter,
so concurrent callers, even in several processes, never pass the limit together.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from synapsex.contracts.common import Page, PageRequest, as_utc, check_choice, check_text
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply

SERVICE = "billing-service"

UsageKind = Literal[
    "TOOL_CALL",
    "INPUT_TOKENS",
    "OUTPUT_TOKENS",
    "CACHED_INPUT_TOKENS",
    "STORAGE_BYTES",
    "WEBHOOK_DELIVERY",
    "EVENT",
]
USAGE_KINDS: tuple[str, ...] = (
    "TOOL_CALL",
    "INPUT_TOKENS",
    "OUTPUT_TOKENS",
    "CACHED_INPUT_TOKENS",
    "STORAGE_BYTES",
    "WEBHOOK_DELIVERY",
    "EVENT",
)
#: the kinds that name a model and are priced from its price timeline
TOKEN_KINDS: tuple[str, ...] = ("INPUT_TOKENS", "OUTPUT_TOKENS", "CACHED_INPUT_TOKENS")
#: what a summary may group by besides the kind (lines are always per kind)
GROUP_BY: tuple[str, ...] = ("kind", "model", "day")
#: how a summary line was priced
Pricing = Literal["priced", "partially_priced", "not_priced"]

#: the topic services publish usage on (payload: kind, quantity, model, at, idempotencyKey)
USAGE_TOPIC = "usage.recorded"
#: the consumer group billing-service reads each tenant's usage events through
USAGE_GROUP = "sx.billing"

#: a single report: at most 10^15 units (sums stay far below 2^63)
MAX_QUANTITY = 10**15
MAX_KEY_LENGTH = 200
MAX_MODEL_LENGTH = 200
MAX_SOURCE_LENGTH = 100
#: how far ahead of the server's clock a usage time may be (clock skew)
MAX_FUTURE_SKEW = timedelta(minutes=5)
#: the longest period one summary covers
MAX_SUMMARY_DAYS = 400
MAX_RESERVATION = 10_000


def check_usage(
    kind: str,
    quantity: int,
    model: str | None,
    at: datetime | None,
    idempotency_key: str | None,
) -> None:
    """The checks a usage report must pass, naming the field at fault."""
    check_choice(kind, USAGE_KINDS, "kind")
    if type(quantity) is not int or not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput("quantity", f"must be a whole number from 1 to {MAX_QUANTITY}")
    if kind in TOKEN_KINDS:
        if model is None:
            raise InvalidInput("model", f"is required for {kind}: a model id or provider/name")
        check_text(model, "model", max_length=MAX_MODEL_LENGTH)
    elif model is not None:
        raise InvalidInput("model", f"only token kinds name a model, not {kind}")
    if at is not None and as_utc(at) > datetime.now(UTC) + MAX_FUTURE_SKEW:
        raise InvalidInput("at", "must not be in the future")
    if idempotency_key is not None:
        check_text(idempotency_key, "idempotencyKey", max_length=MAX_KEY_LENGTH)


# ---------------------------------------------------------------------------- replies


class UsageRecordView(Reply):
    id: str
    tenant_id: str
    kind: UsageKind
    quantity: int
    #: for token kinds, the model id as the registry names it
    model: str | None
    at: datetime
    #: who reported it: a service name, or ``apikey:<key id>`` through the gateway
    source: str
    idempotency_key: str
    created_at: datetime


class UsageLine(Reply):
    """One line of a summary: one kind, and the model and day when grouped by them."""

    kind: UsageKind
    model: str | None
    day: date | None
    quantity: int
    #: USD, exact
    cost: Decimal
    #: the part of ``quantity`` that had no price in force (counted at 0)
    unpriced_quantity: int
    pricing: Pricing


class UsageSummary(Reply):
    tenant_id: str
    start: datetime
    end: datetime
    group_by: tuple[str, ...]
    lines: tuple[UsageLine, ...]
    #: USD, exact: the sum of the lines' costs
    total_cost: Decimal
    currency: str = "USD"


class ToolCallAllowance(Reply):
    """The tenant's tool calls on one UTC day against its plan's daily limit."""

    tenant_id: str
    day: date
    used: int
    limit: int
    remaining: int
    #: when the day ends (UTC midnight): a new day starts from 0
    resets_at: datetime


# ---------------------------------------------------------------------------- messages


class RecordUsage(Message, service=SERVICE):
    """Record usage; replies :class:`UsageRecordView`. The same ``idempotency_key`` again
    (per tenant) records nothing and answers the first record. ``InvalidInput`` naming the
    field; ``model`` is checked against the model registry (unknown: ``InvalidInput``)."""

    tenant_id: str
    kind: str
    quantity: int
    source: str
    model: str | None = None
    #: when the usage happened; ``None``: now
    at: datetime | None = None
    #: ``None``: a fresh key (every such report is new usage)
    idempotency_key: str | None = None

    def validate(self) -> None:
        check_text(self.tenant_id, "tenant_id", max_length=40)
        check_text(self.source, "source", max_length=MAX_SOURCE_LENGTH)
        check_usage(self.kind, self.quantity, self.model, self.at, self.idempotency_key)


class ListUsageRecords(PageRequest, service=SERVICE):
    """Replies ``Page[UsageRecordView]``, in the order they were recorded."""

    tenant_id: str
    kind: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        if self.kind is not None:
            check_choice(self.kind, USAGE_KINDS, "kind")


class GetUsageSummary(Message, service=SERVICE):
    """Usage with ``start <= at < end``, per kind and the chosen groups, priced at the price
    in force at each record's time; replies :class:`UsageSummary`. ``UNAVAILABLE`` when the
    model registry cannot be asked (never a guessed price)."""

    tenant_id: str
    start: datetime
    end: datetime
    group_by: tuple[str, ...] = ("kind", "model")

    def validate(self) -> None:
        if as_utc(self.end) <= as_utc(self.start):
            raise InvalidInput("to", "must be after from")
        if as_utc(self.end) - as_utc(self.start) > timedelta(days=MAX_SUMMARY_DAYS):
            raise InvalidInput("to", f"a summary covers at most {MAX_SUMMARY_DAYS} days")
        for i, group in enumerate(self.group_by):
            check_choice(group, GROUP_BY, f"groupBy[{i}]")


class ReserveToolCalls(Message, service=SERVICE):
    """Take ``count`` tool calls of today's (UTC) allowance before running them; replies
    :class:`ToolCallAllowance` after the reservation. ``LimitExceeded`` (``limit``:
    ``tool_calls_per_day``) when they do not all fit: then nothing is taken."""

    tenant_id: str
    count: int = 1

    def validate(self) -> None:
        check_text(self.tenant_id, "tenant_id", max_length=40)
        if not 1 <= self.count <= MAX_RESERVATION:
            raise InvalidInput("count", f"must be between 1 and {MAX_RESERVATION}")


class ReleaseToolCalls(Message, service=SERVICE):
    """Give back ``count`` reserved tool calls of ``day`` that did not run (never below 0);
    replies :class:`ToolCallAllowance` of that day."""

    tenant_id: str
    day: date
    count: int = 1

    def validate(self) -> None:
        if not 1 <= self.count <= MAX_RESERVATION:
            raise InvalidInput("count", f"must be between 1 and {MAX_RESERVATION}")


class GetToolCallAllowance(Message, service=SERVICE):
    """Replies today's (UTC) :class:`ToolCallAllowance`."""

    tenant_id: str


__all__ = [
    "GROUP_BY",
    "SERVICE",
    "TOKEN_KINDS",
    "USAGE_GROUP",
    "USAGE_KINDS",
    "USAGE_TOPIC",
    "GetToolCallAllowance",
    "GetUsageSummary",
    "ListUsageRecords",
    "Page",
    "RecordUsage",
    "ReleaseToolCalls",
    "ReserveToolCalls",
    "ToolCallAllowance",
    "UsageLine",
    "UsageRecordView",
    "UsageSummary",
    "check_usage",
]
