"""Billing: usage records, what they cost (exact ``Decimal`` USD, priced at the model-registry
price in force when each was used), and the daily tool-call limit."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from synapsex.contracts import billing as contract
from synapsex.contracts.auth import Principal
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.guard import guarded
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.scalars import BigInt
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]
#: lines per kind and model unless the query says otherwise
DEFAULT_GROUP_BY = ("kind", "model")


# ---------------------------------------------------------------------------- types


@strawberry.enum(description="What a usage record counts.")
class UsageKind(Enum):
    TOOL_CALL = "TOOL_CALL"
    INPUT_TOKENS = "INPUT_TOKENS"
    OUTPUT_TOKENS = "OUTPUT_TOKENS"
    CACHED_INPUT_TOKENS = "CACHED_INPUT_TOKENS"
    STORAGE_BYTES = "STORAGE_BYTES"
    WEBHOOK_DELIVERY = "WEBHOOK_DELIVERY"
    EVENT = "EVENT"


@strawberry.enum(description="What a usage summary splits its lines by, besides the kind.")
class UsageGroupBy(Enum):
    KIND = "kind"
    MODEL = "model"
    DAY = "day"


@strawberry.enum(description="How much of a summary line had a price in force.")
class UsagePricing(Enum):
    PRICED = "priced"
    PARTIALLY_PRICED = "partially_priced"
    NOT_PRICED = "not_priced"


@strawberry.type(description="Usage of one kind at one time, recorded once per idempotency key.")
class UsageRecord:
    id: strawberry.ID
    kind: UsageKind
    quantity: BigInt
    model: str | None = strawberry.field(description="The model id, for token kinds.")
    at: datetime
    source: str = strawberry.field(
        description="Who reported it: a service, or apikey:<key id> through the API."
    )
    idempotency_key: str
    created_at: datetime

    @classmethod
    def of(cls, view: contract.UsageRecordView) -> UsageRecord:
        return cls(
            id=strawberry.ID(view.id),
            kind=UsageKind(view.kind),
            quantity=view.quantity,
            model=view.model,
            at=view.at,
            source=view.source,
            idempotency_key=view.idempotency_key,
            created_at=view.created_at,
        )


@strawberry.type(description="One kind of usage (and one model and day, when grouped by them).")
class UsageLine:
    kind: UsageKind
    model: str | None
    day: date | None = strawberry.field(description="The UTC day, when grouped by day.")
    quantity: BigInt
    cost: Decimal = strawberry.field(description="USD, exact.")
    unpriced_quantity: BigInt = strawberry.field(
        description="The part of the quantity that had no price in force: it costs 0."
    )
    pricing: UsagePricing

    @classmethod
    def of(cls, view: contract.UsageLine) -> UsageLine:
        return cls(
            kind=UsageKind(view.kind),
            model=view.model,
            day=view.day,
            quantity=view.quantity,
            cost=view.cost,
            unpriced_quantity=view.unpriced_quantity,
            pricing=UsagePricing(view.pricing),
        )


@strawberry.type(description="Usage in [from, to), each record priced as it was when used.")
class UsageSummary:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    group_by: list[UsageGroupBy]
    lines: list[UsageLine]
    total_cost: Decimal = strawberry.field(description="USD, exact: the lines' costs added up.")
    currency: str

    @classmethod
    def of(cls, view: contract.UsageSummary) -> UsageSummary:
        return cls(
            from_=view.start,
            to=view.end,
            group_by=[UsageGroupBy(g) for g in view.group_by],
            lines=[UsageLine.of(line) for line in view.lines],
            total_cost=view.total_cost,
            currency=view.currency,
        )


@strawberry.type(description="Today's (UTC) tool calls against the plan's daily limit.")
class UsageLimits:
    day: date
    tool_calls_used: BigInt
    tool_calls_per_day: BigInt
    tool_calls_remaining: BigInt
    resets_at: datetime = strawberry.field(description="UTC midnight, when the count restarts.")

    @classmethod
    def of(cls, view: contract.ToolCallAllowance) -> UsageLimits:
        return cls(
            day=view.day,
            tool_calls_used=view.used,
            tool_calls_per_day=view.limit,
            tool_calls_remaining=view.remaining,
            resets_at=view.resets_at,
        )


@strawberry.input
class RecordUsageInput:
    kind: UsageKind
    quantity: BigInt = strawberry.field(description="A whole number from 1 to 10^15.")
    model: str | None = strawberry.field(
        default=None, description="For token kinds: a model id or <provider>/<name>."
    )
    at: datetime | None = strawberry.field(
        default=None, description="When it was used (default now; no offset: UTC)."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="The same key again records nothing and returns the first record.",
    )


# ---------------------------------------------------------------------------- resolvers


def _this_month() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


@strawberry.type
class BillingQuery:
    @strawberry.field(
        description="Usage and its cost in [from, to) (default: this UTC month), one line per "
        "kind and, if asked, per model and day."
    )
    async def usage_summary(
        self,
        info: Ctx,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
        group_by: list[UsageGroupBy] | None = None,
    ) -> UsageSummary:
        p = await info.context.principal()
        start, end = _this_month()
        view = await info.context.ask(
            contract.GetUsageSummary(
                tenant_id=p.tenant_id,
                start=from_ or start,
                end=to or end,
                group_by=DEFAULT_GROUP_BY if group_by is None else tuple(g.value for g in group_by),
            )
        )
        return UsageSummary.of(view)

    @strawberry.field(description="The tenant's usage records, in the order they were recorded.")
    async def usage_records(
        self,
        info: Ctx,
        first: First = 50,
        after: str | None = None,
        kind: UsageKind | None = None,
    ) -> Connection[UsageRecord]:
        return await tenant_connection(
            info,
            contract.ListUsageRecords,
            UsageRecord.of,
            first=first,
            after=after,
            kind=kind.value if kind else None,
        )

    @strawberry.field(description="Today's tool calls against the plan's daily limit.")
    async def usage_limits(self, info: Ctx) -> UsageLimits:
        p = await info.context.principal()
        view = await info.context.ask(contract.GetToolCallAllowance(tenant_id=p.tenant_id))
        return UsageLimits.of(view)


@strawberry.type
class BillingMutation:
    @strawberry.mutation(
        description="Report usage; the same idempotencyKey again returns the first record."
    )
    async def record_usage(self, info: Ctx, input: RecordUsageInput) -> UsageRecord:
        async def run(p: Principal) -> contract.UsageRecordView:
            return await info.context.ask(
                contract.RecordUsage(
                    tenant_id=p.tenant_id,
                    kind=input.kind.value,
                    quantity=input.quantity,
                    model=input.model,
                    at=input.at,
                    idempotency_key=input.idempotency_key,
                    source=f"apikey:{p.key_id}",
                )
            )

        view = await guarded(info, action="usage.record", resource_type="usage_record", run=run)
        return UsageRecord.of(view)
