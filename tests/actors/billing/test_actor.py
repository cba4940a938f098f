"""billing-service on both engines, with the event bus, tenant-service and a stand-in model
registry (exact, known price timelines): idempotent usage, usage from events (redelivered,
backfilled, invalid, from the gateway), effective-dated costs, cached tokens, Decimal
exactness, grouping, validation, tenant isolation, restarts, and the daily tool-call limit
under 50 concurrent reservations, in one runtime and in two sharing one database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from synapsex.contracts.billing import (
    USAGE_GROUP,
    USAGE_TOPIC,
    GetToolCallAllowance,
    GetUsageSummary,
    ListUsageRecords,
    RecordUsage,
    ReleaseToolCalls,
    ReserveToolCalls,
    UsageRecordView,
    UsageSummary,
)
from synapsex.contracts.errors import InvalidInput, LimitExceeded, NotFound
from synapsex.contracts.events import (
    DeleteConsumerGroup,
    EventView,
    GetConsumerGroup,
    PublishEvent,
)
from synapsex.contracts.tenant import CreateTenant
from synapsex.runtime import Runtime
from synapsex.runtime.testing import raw_sql, wait_until

from .fake_registry import FakeModelRegistry, price

pytestmark = pytest.mark.usefixtures("db_environ")

SERVICES = ["event-bus-service", "tenant-service", "billing-service"]
DEADLINE = 10.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 10, 12, tzinfo=UTC)
MONTH = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))


@pytest.fixture(autouse=True)
def registry():
    """gpt-x: $1 in / $2 out / $0.5 cached from T0, $3 / $6 / none from T1 (cached input then
    at the input price); alias openai/gpt-x. cheap: $0.1 in / $0.2 out from T0."""
    FakeModelRegistry.models.clear()
    FakeModelRegistry.add(
        "mdl_gptx",
        "openai/gpt-x",
        price("mdl_gptx", T0, "1", "2", "0.5"),
        price("mdl_gptx", T1, "3", "6"),
    )
    FakeModelRegistry.add("mdl_cheap", "acme/cheap", price("mdl_cheap", T0, "0.1", "0.2"))
    FakeModelRegistry.add("mdl_unpriced", "acme/unpriced")
    yield FakeModelRegistry
    FakeModelRegistry.models.clear()


def embedded(tmp_path, db_environ, services=SERVICES) -> Runtime:
    return Runtime.embedded(
        data_dir=tmp_path, services=services, actors=[FakeModelRegistry], environ=db_environ
    )


async def tenant(rt: Runtime, name: str = "Acme", **limits: int) -> str:
    return (await rt.ask(CreateTenant(name=name, limits=limits or None))).id


async def record(rt: Runtime, tenant_id: str, kind: str, quantity: int, **kw) -> UsageRecordView:
    """Report usage (by default at T1, inside the month the summaries cover)."""
    kw.setdefault("at", T1)
    return await rt.ask(
        RecordUsage(tenant_id=tenant_id, kind=kind, quantity=quantity, source="test", **kw)
    )


async def records(rt: Runtime, tenant_id: str) -> list[UsageRecordView]:
    return list((await rt.ask(ListUsageRecords(tenant_id=tenant_id, first=100))).items)


async def summary(rt: Runtime, tenant_id: str, *group_by: str) -> UsageSummary:
    return await rt.ask(
        GetUsageSummary(
            tenant_id=tenant_id,
            start=MONTH[0],
            end=MONTH[1],
            group_by=group_by or ("kind", "model"),
        )
    )


async def publish_usage(
    rt: Runtime, tenant_id: str, payload: object, *, source: str = "mcp-router-service"
) -> EventView:
    return await rt.ask(
        PublishEvent(tenant_id=tenant_id, source=source, topic=USAGE_TOPIC, payload=payload)
    )


async def serving(rt: Runtime, tenant_id: str) -> UsageRecordView:
    """Have billing read the tenant's usage through its consumer group: it makes the group
    once the tenant has a usage event (this one, a warm-up, recorded and returned)."""
    warm_up = await publish_usage(rt, tenant_id, {"kind": "EVENT", "quantity": 1})

    async def group_exists() -> bool:
        try:
            await rt.ask(GetConsumerGroup(tenant_id=tenant_id, name=USAGE_GROUP))
        except NotFound:
            return False
        return True

    await wait_until(group_exists, deadline=DEADLINE, message="billing's consumer group")
    (first,) = await recorded(rt, tenant_id, 1)
    assert first.idempotency_key == warm_up.id
    return first


async def recorded(rt: Runtime, tenant_id: str, count: int) -> list[UsageRecordView]:
    async def enough() -> list[UsageRecordView] | None:
        found = await records(rt, tenant_id)
        return found if len(found) >= count else None

    return await wait_until(enough, deadline=DEADLINE, message=f"{count} usage records")


# ---------------------------------------------------------------------------- idempotency


async def test_the_same_idempotency_key_twice_counts_once_and_answers_the_first_record(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        first = await record(rt, acme, "TOOL_CALL", 3, idempotency_key="call-1")
        again = await record(rt, acme, "TOOL_CALL", 5, idempotency_key="call-1")
        assert again == first
        assert again.quantity == 3
        assert [r.id for r in await records(rt, acme)] == [first.id]
        (line,) = (await summary(rt, acme)).lines
        assert line.quantity == 3


async def test_concurrent_reports_with_one_key_leave_one_record(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        answers = await asyncio.gather(
            *(record(rt, acme, "EVENT", 1, idempotency_key="dup") for _ in range(20))
        )
        assert len({a.id for a in answers}) == 1
        assert len(await records(rt, acme)) == 1


async def test_reports_without_a_key_are_each_new_usage(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        a = await record(rt, acme, "EVENT", 1, at=None)
        b = await record(rt, acme, "EVENT", 1, at=None)
        assert a.id != b.id
        assert a.idempotency_key != b.idempotency_key


async def test_the_same_key_in_two_tenants_is_two_records_and_each_sees_only_its_own(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as rt:
        acme, globex = await tenant(rt, "Acme"), await tenant(rt, "Globex")
        a = await record(rt, acme, "TOOL_CALL", 1, idempotency_key="k")
        g = await record(rt, globex, "TOOL_CALL", 7, idempotency_key="k")
        assert a.id != g.id
        assert [r.id for r in await records(rt, acme)] == [a.id]
        assert [r.id for r in await records(rt, globex)] == [g.id]
        assert (await summary(rt, acme)).lines[0].quantity == 1
        assert (await summary(rt, globex)).lines[0].quantity == 7


async def test_usage_records_survive_a_restart(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        first = await record(rt, acme, "STORAGE_BYTES", 4096, idempotency_key="s")
    async with embedded(tmp_path, db_environ) as rt:
        assert await records(rt, acme) == [first]
        assert await record(rt, acme, "STORAGE_BYTES", 1, idempotency_key="s") == first


# ---------------------------------------------------------------------------- usage events


async def test_usage_events_are_recorded_with_the_event_id_as_key(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        at = T0 + timedelta(days=2)
        event = await publish_usage(
            rt,
            acme,
            {
                "kind": "INPUT_TOKENS",
                "quantity": 1500,
                "model": "openai/gpt-x",
                "at": at.isoformat(),
            },
        )
        (usage,) = await recorded(rt, acme, 1)
        assert usage.idempotency_key == event.id
        assert usage.source == "mcp-router-service"
        assert (usage.kind, usage.quantity, usage.model, usage.at) == (
            "INPUT_TOKENS",
            1500,
            "mdl_gptx",  # the registry's id, whatever name it was reported under
            at,
        )


async def test_an_event_delivered_again_after_a_lost_ack_is_recorded_once(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        await serving(rt, acme)
        event = await publish_usage(rt, acme, {"kind": "TOOL_CALL", "quantity": 2})
        await recorded(rt, acme, 2)
        async with raw_sql(rt, "event-bus-service") as sql:

            async def delivery() -> dict:
                (row,) = await sql(
                    "SELECT state, attempt FROM event_deliveries WHERE event_id = ?", event.id
                )
                return row

            await wait_until(lambda: _is(delivery(), state="acked"), deadline=DEADLINE)
            # as if the ack had never committed: the bus hands the event out again
            await sql(
                "UPDATE event_deliveries SET state = 'pending', available_at_ms = 0, "
                "lease_id = NULL, lease_expires_at_ms = NULL WHERE event_id = ?",
                event.id,
            )
            await wait_until(lambda: _is(delivery(), state="acked", attempt=2), deadline=DEADLINE)
        assert len(await records(rt, acme)) == 2  # the warm-up and this one


async def _is(row, **expected) -> bool:
    found = await row
    return all(found[k] == v for k, v in expected.items())


async def test_events_sharing_an_idempotency_key_and_a_direct_report_count_once(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        payload = {"kind": "WEBHOOK_DELIVERY", "quantity": 1, "idempotencyKey": "whd_1"}
        await publish_usage(rt, acme, payload)
        await publish_usage(rt, acme, payload)
        await publish_usage(rt, acme, {"kind": "EVENT", "quantity": 1})  # a witness
        await recorded(rt, acme, 2)
        direct = await record(rt, acme, "WEBHOOK_DELIVERY", 1, idempotency_key="whd_1")
        assert sorted(r.kind for r in await records(rt, acme)) == ["EVENT", "WEBHOOK_DELIVERY"]
        assert direct.idempotency_key == "whd_1"


async def test_invalid_and_gateway_published_usage_events_are_not_recorded(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        await serving(rt, acme)
        await publish_usage(rt, acme, {"kind": "BANANAS", "quantity": 1})
        await publish_usage(rt, acme, {"kind": "TOOL_CALL", "quantity": -4})
        await publish_usage(rt, acme, {"kind": "INPUT_TOKENS", "quantity": 9, "model": "nope/x"})
        await publish_usage(rt, acme, "not an object")
        await publish_usage(rt, acme, {"kind": "TOOL_CALL", "quantity": 1}, source="apikey:k1")
        witness = await publish_usage(rt, acme, {"kind": "TOOL_CALL", "quantity": 5})
        (_warm_up, usage) = await recorded(rt, acme, 2)
        assert usage.idempotency_key == witness.id

        # every one of them was taken off the group: none waits to be retried
        async def settled() -> bool:
            group = await rt.ask(GetConsumerGroup(tenant_id=acme, name=USAGE_GROUP))
            return group.counts.acked == 6  # the warm-up came before the group: read back

        await wait_until(settled, deadline=DEADLINE)
        assert len(await records(rt, acme)) == 2


async def test_a_tenant_without_usage_events_gets_no_consumer_group(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        quiet, busy = await tenant(rt, "Quiet"), await tenant(rt, "Busy")
        await record(rt, quiet, "TOOL_CALL", 1)  # direct reports need no group
        await serving(rt, busy)  # busy gets its group; quiet, swept alike, never does
        with pytest.raises(NotFound):
            await rt.ask(GetConsumerGroup(tenant_id=quiet, name=USAGE_GROUP))


async def test_usage_published_before_billing_ran_is_read_back_once(tmp_path, db_environ):
    async with Runtime.embedded(
        data_dir=tmp_path, services=["event-bus-service", "tenant-service"], environ=db_environ
    ) as rt:
        acme = await tenant(rt)
        early = await publish_usage(rt, acme, {"kind": "TOOL_CALL", "quantity": 4})
    async with embedded(tmp_path, db_environ) as rt:
        (usage,) = await recorded(rt, acme, 1)
        assert usage.idempotency_key == early.id
        later = await publish_usage(rt, acme, {"kind": "TOOL_CALL", "quantity": 1})
        await recorded(rt, acme, 2)
        assert {r.idempotency_key for r in await records(rt, acme)} == {early.id, later.id}


async def test_a_deleted_group_is_made_again_and_nothing_published_meanwhile_is_missed(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        await publish_usage(rt, acme, {"kind": "TOOL_CALL", "quantity": 1})
        await recorded(rt, acme, 1)
        await rt.ask(DeleteConsumerGroup(tenant_id=acme, name=USAGE_GROUP))
        meanwhile = await publish_usage(rt, acme, {"kind": "TOOL_CALL", "quantity": 2})
        found = await recorded(rt, acme, 2)
        assert meanwhile.id in {r.idempotency_key for r in found}
        await publish_usage(rt, acme, {"kind": "TOOL_CALL", "quantity": 3})
        assert len(await recorded(rt, acme, 3)) == 3


# ---------------------------------------------------------------------------- costs


async def test_a_price_change_mid_period_prices_earlier_usage_at_the_old_price(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        before, after = T1 - timedelta(microseconds=1), T1
        await record(rt, acme, "INPUT_TOKENS", 1_000_000, model="mdl_gptx", at=before)
        await record(rt, acme, "INPUT_TOKENS", 1_000_000, model="openai/gpt-x", at=after)
        await record(rt, acme, "OUTPUT_TOKENS", 500_000, model="mdl_gptx", at=before)
        await record(rt, acme, "OUTPUT_TOKENS", 500_000, model="mdl_gptx", at=after)
        result = await summary(rt, acme, "kind", "model")
        costs = {(line.kind, line.model): line.cost for line in result.lines}
        assert costs == {
            ("INPUT_TOKENS", "mdl_gptx"): Decimal("4"),  # 1 + 3
            ("OUTPUT_TOKENS", "mdl_gptx"): Decimal("4"),  # 0.5 * 2 + 0.5 * 6
        }
        assert result.total_cost == Decimal("8")
        assert all(line.pricing == "priced" for line in result.lines)


async def test_cached_input_uses_the_cached_price_else_the_input_price(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        await record(rt, acme, "CACHED_INPUT_TOKENS", 2_000_000, model="mdl_gptx", at=T0)
        await record(rt, acme, "CACHED_INPUT_TOKENS", 1_000_000, model="mdl_gptx", at=T1)
        (line,) = (await summary(rt, acme)).lines
        assert line.cost == Decimal("4")  # 2 * 0.5 cached, then 1 * 3 (no cached price: input)
        assert line.quantity == 3_000_000


async def test_costs_are_exact_decimals_where_floats_would_drift(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        await record(rt, acme, "INPUT_TOKENS", 1_000_000, model="mdl_cheap", at=T0)
        await record(rt, acme, "OUTPUT_TOKENS", 1_000_000, model="mdl_cheap", at=T0)
        for i in range(10):  # ten times 0.00001 USD (100 tokens at $0.1 per million)
            await record(rt, acme, "INPUT_TOKENS", 100, model="mdl_cheap", at=T0 + timedelta(i))
        result = await summary(rt, acme, "kind", "model", "day")
        assert 0.1 + 0.2 != 0.3  # what a float total would be
        assert result.total_cost == Decimal("0.3001")
        assert isinstance(result.total_cost, Decimal)
        assert all(isinstance(line.cost, Decimal) for line in result.lines)


async def test_kinds_and_models_without_a_price_cost_zero_and_say_so(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        await record(rt, acme, "TOOL_CALL", 12, at=T1)
        await record(rt, acme, "INPUT_TOKENS", 10, model="acme/unpriced", at=T1)
        # gpt-x has no price before T0: part of the month before it is unpriced
        await record(
            rt, acme, "INPUT_TOKENS", 1_000_000, model="mdl_gptx", at=T0 - timedelta(seconds=1)
        )
        await record(rt, acme, "INPUT_TOKENS", 1_000_000, model="mdl_gptx", at=T0)
        result = await rt.ask(
            GetUsageSummary(
                tenant_id=acme,
                start=T0 - timedelta(days=1),
                end=MONTH[1],
                group_by=("model",),
            )
        )
        lines = {(line.kind, line.model): line for line in result.lines}
        assert lines[("TOOL_CALL", None)].pricing == "not_priced"
        assert lines[("TOOL_CALL", None)].cost == 0
        assert lines[("INPUT_TOKENS", "mdl_unpriced")].pricing == "not_priced"
        gptx = lines[("INPUT_TOKENS", "mdl_gptx")]
        assert (gptx.pricing, gptx.cost, gptx.unpriced_quantity) == (
            "partially_priced",
            Decimal("1"),
            1_000_000,
        )
        assert result.total_cost == Decimal("1")


async def test_group_by_day_and_model_splits_lines_and_the_period_bounds_hold(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        d1, d2 = T0 + timedelta(hours=1), T0 + timedelta(days=1, hours=1)
        await record(rt, acme, "INPUT_TOKENS", 1_000_000, model="mdl_gptx", at=d1)
        await record(rt, acme, "INPUT_TOKENS", 1_000_000, model="mdl_cheap", at=d1)
        await record(rt, acme, "INPUT_TOKENS", 2_000_000, model="mdl_gptx", at=d2)
        await record(rt, acme, "INPUT_TOKENS", 5, model="mdl_gptx", at=MONTH[1])  # excluded
        by_day = await summary(rt, acme, "kind", "day")
        assert [(str(line.day), line.model, line.quantity, line.cost) for line in by_day.lines] == [
            ("2026-01-01", None, 2_000_000, Decimal("1.1")),
            ("2026-01-02", None, 2_000_000, Decimal("2")),
        ]
        by_model = await summary(rt, acme, "model")
        assert [(line.model, line.day, line.quantity) for line in by_model.lines] == [
            ("mdl_cheap", None, 1_000_000),
            ("mdl_gptx", None, 3_000_000),
        ]
        assert by_model.total_cost == by_day.total_cost == Decimal("3.1")


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "BANANAS", "quantity": 1}, "kind"),
        ({"kind": "TOOL_CALL", "quantity": 0}, "quantity"),
        ({"kind": "TOOL_CALL", "quantity": 10**16}, "quantity"),
        ({"kind": "INPUT_TOKENS", "quantity": 1}, "model"),
        ({"kind": "TOOL_CALL", "quantity": 1, "model": "mdl_gptx"}, "model"),
        ({"kind": "TOOL_CALL", "quantity": 1, "idempotency_key": " "}, "idempotencyKey"),
        (
            {"kind": "TOOL_CALL", "quantity": 1, "at": datetime.now(UTC) + timedelta(hours=1)},
            "at",
        ),
    ],
    ids=["kind", "zero", "huge", "no-model", "model-on-tool-call", "blank-key", "future"],
)
async def test_bad_usage_is_refused_naming_the_field(fields, field):
    with pytest.raises(InvalidInput) as err:
        RecordUsage(tenant_id="ten_a", source="test", **fields)
    assert err.value.field == field


async def test_an_unknown_model_is_refused_naming_the_field(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt)
        with pytest.raises(InvalidInput) as err:
            await record(rt, acme, "OUTPUT_TOKENS", 5, model="nope/nothing")
        assert err.value.field == "model"
        assert await records(rt, acme) == []


def test_a_summary_period_must_run_forward_and_group_by_known_dimensions():
    with pytest.raises(InvalidInput) as err:
        GetUsageSummary(tenant_id="t", start=MONTH[1], end=MONTH[0])
    assert err.value.field == "to"
    with pytest.raises(InvalidInput) as err:
        GetUsageSummary(tenant_id="t", start=MONTH[0], end=MONTH[1], group_by=("week",))
    assert err.value.field == "groupBy[0]"


# ---------------------------------------------------------------------------- the daily limit


async def reserve_many(runtimes: list[Runtime], tenant_id: str, n: int) -> list[object]:
    return await asyncio.gather(
        *(runtimes[i % len(runtimes)].ask(ReserveToolCalls(tenant_id=tenant_id)) for i in range(n)),
        return_exceptions=True,
    )


def granted(results: list[object]) -> int:
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, LimitExceeded) for r in refused), refused
    return len(results) - len(refused)


async def test_fifty_concurrent_reservations_at_the_limit_admit_exactly_the_limit(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt, tool_calls_per_day=20)
        assert granted(await reserve_many([rt], acme, 50)) == 20
        allowance = await rt.ask(GetToolCallAllowance(tenant_id=acme))
        assert (allowance.used, allowance.limit, allowance.remaining) == (20, 20, 0)
        with pytest.raises(LimitExceeded) as err:
            await rt.ask(ReserveToolCalls(tenant_id=acme))
        assert err.value.details["limit"] == "tool_calls_per_day"
        assert err.value.details["used"] == 20


async def test_fifty_concurrent_reservations_from_two_runtimes_admit_exactly_the_limit(
    tmp_path, db_environ
):
    # two runtimes on one database stand for two `synapsex serve` processes
    async with embedded(tmp_path, db_environ) as a, embedded(tmp_path, db_environ) as b:
        for attempt in range(3):
            acme = await tenant(a, f"Race {attempt}", tool_calls_per_day=25)
            assert granted(await reserve_many([a, b], acme, 50)) == 25
            assert (await b.ask(GetToolCallAllowance(tenant_id=acme))).used == 25


async def test_a_reservation_that_does_not_fit_takes_nothing_and_released_calls_return(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as rt:
        acme = await tenant(rt, tool_calls_per_day=10)
        taken = await rt.ask(ReserveToolCalls(tenant_id=acme, count=8))
        assert (taken.used, taken.remaining) == (8, 2)
        with pytest.raises(LimitExceeded):
            await rt.ask(ReserveToolCalls(tenant_id=acme, count=3))
        assert (await rt.ask(GetToolCallAllowance(tenant_id=acme))).used == 8
        back = await rt.ask(ReleaseToolCalls(tenant_id=acme, day=taken.day, count=5))
        assert back.used == 3
        assert (await rt.ask(ReserveToolCalls(tenant_id=acme, count=7))).remaining == 0
        assert (await rt.ask(ReleaseToolCalls(tenant_id=acme, day=taken.day, count=99))).used == 0


async def test_each_tenant_has_its_own_daily_count_from_its_plan(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as rt:
        small, free = await tenant(rt, "Small", tool_calls_per_day=1), await tenant(rt, "Free")
        await rt.ask(ReserveToolCalls(tenant_id=small))
        with pytest.raises(LimitExceeded):
            await rt.ask(ReserveToolCalls(tenant_id=small))
        other = await rt.ask(ReserveToolCalls(tenant_id=free))
        assert (other.used, other.limit) == (1, 1_000)  # the free plan's default
