"""model-registry-service on both engines: the seeded catalog, filters and pages, tenant models
and their isolation, effective-dated prices with tenant overrides (the price timeline billing
prices usage with), deprecation, validation, and seeding that adds nothing twice across a
restart and across two runtimes starting together on one PostgreSQL database."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from synapsex.actors.model_registry.seed import CATALOG
from synapsex.contracts.errors import Conflict, Forbidden, InvalidInput, NotFound
from synapsex.contracts.models import (
    DeprecateModel,
    GetModel,
    GetPriceTimeline,
    ListModels,
    ModelView,
    PriceView,
    RegisterModel,
    SetModelPrice,
)
from synapsex.runtime import Runtime
from synapsex.runtime.testing import raw_sql

SERVICE = "model-registry-service"
A = "ten_a"
B = "ten_b"
SOURCE = "https://example.com/negotiated-rates"


def embedded(tmp_path, environ: dict[str, str]) -> Runtime:
    return Runtime.embedded(data_dir=tmp_path, services=[SERVICE], environ=environ)


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as runtime:
        yield runtime


async def all_models(rt: Runtime, tenant: str = A, **filters) -> list[ModelView]:
    items: list[ModelView] = []
    after = None
    while True:
        page = await rt.ask(ListModels(tenant_id=tenant, first=100, after=after, **filters))
        items += page.items
        if not page.has_next_page:
            return items
        after = page.end_cursor


async def register(rt: Runtime, tenant: str = A, name: str = "house-llm", **kw) -> ModelView:
    fields = {
        "provider": "acme",
        "display_name": "House LLM",
        "modality": "text",
        "capabilities": ("chat", "tools"),
        "context_window": 32_000,
        "max_output_tokens": 4_000,
        **kw,
    }
    return await rt.ask(RegisterModel(tenant_id=tenant, name=name, **fields))


async def set_price(
    rt: Runtime,
    model: str,
    at: datetime,
    input: str,
    output: str = "1",
    *,
    tenant: str = A,
    cached: str | None = None,
) -> PriceView:
    return await rt.ask(
        SetModelPrice(
            tenant_id=tenant,
            model_id=model,
            input_per_mtok=Decimal(input),
            output_per_mtok=Decimal(output),
            cached_input_per_mtok=None if cached is None else Decimal(cached),
            effective_from=at,
            source=SOURCE,
        )
    )


def priced_at(prices: tuple[PriceView, ...], at: datetime) -> PriceView | None:
    """What billing does with a timeline: the latest entry not after ``at``."""
    current = None
    for price in prices:
        if price.effective_from <= at:
            current = price
    return current


def soon(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


# ---------------------------------------------------------------------------- the catalog


async def test_seeded_catalog_is_seen_by_every_tenant(rt):
    seen_a = await all_models(rt, A)
    seen_b = await all_models(rt, B)
    assert [m.id for m in seen_a] == [m.id for m in seen_b]
    assert len(seen_a) == len(CATALOG) >= 15
    assert {m.provider for m in seen_a} >= {"openai", "anthropic", "google", "mistral", "groq"}
    for model in seen_a:
        assert model.scope == "platform"
        assert model.current_price is not None, model.name
        assert model.current_price.scope == "platform"
        assert model.current_price.source.startswith("https://")
        assert model.context_window > 0


async def test_a_seeded_model_carries_its_price_and_lifecycle(rt):
    gpt = await rt.ask(GetModel(tenant_id=A, model="openai/gpt-4o-mini"))
    assert (gpt.display_name, gpt.modality) == ("GPT-4o mini", "multimodal")
    assert gpt.current_price is not None
    price = gpt.current_price
    assert (price.input_per_mtok, price.output_per_mtok, price.cached_input_per_mtok) == (
        Decimal("0.15"),
        Decimal("0.6"),
        Decimal("0.075"),
    )
    assert price.source == "https://developers.openai.com/api/docs/pricing"
    old = await rt.ask(GetModel(tenant_id=A, model="anthropic/claude-sonnet-4-5"))
    successor = await rt.ask(GetModel(tenant_id=A, model="anthropic/claude-sonnet-5-5"))
    assert (old.deprecation_date, old.successor_id) == (date(2026, 11, 30), successor.id)
    assert (await rt.ask(GetModel(tenant_id=B, model=old.id))).id == old.id


async def test_filters_by_provider_capability_and_search(rt):
    anthropic = await all_models(rt, provider="anthropic")
    assert anthropic
    assert {m.provider for m in anthropic} == {"anthropic"}
    embeddings = await all_models(rt, capability="embeddings")
    assert {m.name for m in embeddings} == {
        "text-embedding-3-small",
        "text-embedding-3-large",
        "mistral-embed",
    }
    # search covers the provider, the name and the display name, whatever the case
    assert {m.name for m in await all_models(rt, search="FLASH-lite")} == {"gemini-2.5-flash-lite"}
    assert {m.provider for m in await all_models(rt, search="GROQ")} == {"groq"}
    assert {m.name for m in await all_models(rt, search="Versatile (Groq)")} == {
        "llama-3.3-70b-versatile"
    }
    vision_openai = await all_models(rt, provider="openai", capability="vision", search="mini")
    assert {m.name for m in vision_openai} == {"gpt-4o-mini", "gpt-4.1-mini"}
    assert await all_models(rt, search="no such model") == []


async def test_pages_walk_the_catalog_once_in_order(rt):
    everything = [m.id for m in await all_models(rt)]
    walked: list[str] = []
    after = None
    while True:
        page = await rt.ask(ListModels(tenant_id=A, first=4, after=after))
        assert len(page.items) <= 4
        walked += [m.id for m in page.items]
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert walked == everything == sorted(everything)


# ---------------------------------------------------------------------------- tenant models


async def test_a_tenant_model_is_invisible_to_another_tenant(rt):
    own = await register(rt, A)
    assert (own.scope, own.current_price, own.capabilities) == ("tenant", None, ("chat", "tools"))
    assert own.id in [m.id for m in await all_models(rt, A, provider="acme")]
    assert await all_models(rt, B, provider="acme") == []
    assert await all_models(rt, B, search="house") == []
    for lookup in (own.id, "acme/house-llm"):
        with pytest.raises(NotFound):
            await rt.ask(GetModel(tenant_id=B, model=lookup))
        with pytest.raises(NotFound):
            await rt.ask(GetPriceTimeline(tenant_id=B, model=lookup))
    with pytest.raises(NotFound):
        await set_price(rt, own.id, soon(1), "1", tenant=B)
    with pytest.raises(NotFound):
        await rt.ask(DeprecateModel(tenant_id=B, id=own.id, deprecation_date=date(2027, 1, 1)))
    # the other tenant may register the same name for itself
    theirs = await register(rt, B)
    assert theirs.id != own.id


async def test_a_name_a_tenant_already_sees_is_a_conflict(rt):
    await register(rt, A)
    with pytest.raises(Conflict):
        await register(rt, A)
    with pytest.raises(Conflict):
        await register(rt, A, provider="openai", name="gpt-4o")


# ---------------------------------------------------------------------------- prices


async def test_a_new_price_does_not_change_what_an_earlier_time_is_priced_at(rt):
    own = await register(rt, A)
    t1, t2 = soon(1), soon(2)
    await set_price(rt, own.id, t1, "1.00", "2.00", cached="0.10")
    before = await rt.ask(GetPriceTimeline(tenant_id=A, model=own.id))
    await set_price(rt, own.id, t2, "3.00", "4.00")
    after = await rt.ask(GetPriceTimeline(tenant_id=A, model="acme/house-llm"))
    assert after[: len(before)] == before
    for at in (t1, t1 + timedelta(hours=12), t2 - timedelta(microseconds=1)):
        assert priced_at(after, at) == priced_at(before, at)
        assert priced_at(after, at).input_per_mtok == Decimal("1")
    assert priced_at(after, t2).input_per_mtok == Decimal("3")
    assert priced_at(after, t1 - timedelta(seconds=1)) is None
    assert [p.scope for p in after] == ["tenant", "tenant"]


async def test_the_timeline_gives_the_tenant_override_where_it_is_in_force(rt):
    sonnet = await rt.ask(GetModel(tenant_id=A, model="anthropic/claude-sonnet-4-5"))
    platform = await rt.ask(GetPriceTimeline(tenant_id=A, model=sonnet.id))
    assert [p.scope for p in platform] == ["platform"]
    start = soon(1)
    override = await set_price(rt, sonnet.id, start, "2.40", "12", cached="0.24")
    assert (override.scope, override.model_id) == ("tenant", sonnet.id)

    mine = await rt.ask(GetPriceTimeline(tenant_id=A, model="anthropic/claude-sonnet-4-5"))
    assert mine == (*platform, override)
    assert priced_at(mine, start - timedelta(seconds=1)) == platform[0]
    assert priced_at(mine, start) == override
    assert priced_at(mine, start + timedelta(days=30)) == override
    # the other tenant still pays the platform's price, and never sees the override
    theirs = await rt.ask(GetPriceTimeline(tenant_id=B, model=sonnet.id))
    assert theirs == platform
    seen_by_b = await rt.ask(GetModel(tenant_id=B, model=sonnet.id))
    assert [p.scope for p in seen_by_b.price_history] == ["platform"]
    seen_by_a = await rt.ask(GetModel(tenant_id=A, model=sonnet.id))
    assert seen_by_a.price_history == (*platform, override)
    assert seen_by_a.current_price == platform[0]  # the override starts tomorrow


async def test_an_override_in_force_now_is_the_current_price(rt):
    mini = await rt.ask(GetModel(tenant_id=A, model="openai/gpt-4o-mini"))
    override = await set_price(rt, mini.id, datetime.now(UTC), "0.12", "0.48")
    assert (await rt.ask(GetModel(tenant_id=A, model=mini.id))).current_price == override
    assert (await rt.ask(GetModel(tenant_id=B, model=mini.id))).current_price.scope == "platform"


async def test_a_second_price_for_the_same_scope_and_start_is_a_conflict(rt):
    own = await register(rt, A)
    at = soon(1)
    await set_price(rt, own.id, at, "1")
    with pytest.raises(Conflict) as raised:
        await set_price(rt, own.id, at, "2")
    assert raised.value.details["field"] == "effectiveFrom"
    # the same start in another scope is another price
    await set_price(rt, "openai/gpt-4o", at, "2", tenant=A)
    await set_price(rt, "openai/gpt-4o", at, "2", tenant=B)


async def test_a_price_without_an_offset_is_taken_as_utc(rt):
    own = await register(rt, A)
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None, microsecond=0)
    price = await set_price(rt, own.id, naive, "1")
    assert price.effective_from == naive.replace(tzinfo=UTC)


async def test_a_price_may_not_start_in_the_past(rt):
    own = await register(rt, A)
    with pytest.raises(InvalidInput) as raised:
        await set_price(rt, own.id, datetime.now(UTC) - timedelta(days=1), "1")
    assert raised.value.field == "effectiveFrom"


# ---------------------------------------------------------------------------- deprecation


async def test_deprecation_names_a_visible_successor(rt):
    old = await register(rt, A, name="house-llm-1")
    new = await register(rt, A, name="house-llm-2")
    deprecated = await rt.ask(
        DeprecateModel(
            tenant_id=A, id=old.id, deprecation_date=date(2027, 3, 1), successor_id=new.id
        )
    )
    assert (deprecated.deprecation_date, deprecated.successor_id) == (date(2027, 3, 1), new.id)
    assert (await rt.ask(GetModel(tenant_id=A, model=old.id))).successor_id == new.id
    # a platform model may succeed a tenant's own, by id or by name
    by_name = await rt.ask(
        DeprecateModel(
            tenant_id=A,
            id=new.id,
            deprecation_date=date(2027, 6, 1),
            successor_id="openai/gpt-4.1",
        )
    )
    gpt = await rt.ask(GetModel(tenant_id=A, model="openai/gpt-4.1"))
    assert by_name.successor_id == gpt.id


async def test_deprecation_refuses_platform_models_and_invisible_successors(rt):
    own = await register(rt, A)
    foreign = await register(rt, B, name="their-llm")
    gpt = await rt.ask(GetModel(tenant_id=A, model="openai/gpt-4o"))
    with pytest.raises(Forbidden):
        await rt.ask(DeprecateModel(tenant_id=A, id=gpt.id, deprecation_date=date(2027, 1, 1)))
    for successor in (foreign.id, "mdl_missing", own.id):
        with pytest.raises(InvalidInput) as raised:
            await rt.ask(
                DeprecateModel(
                    tenant_id=A,
                    id=own.id,
                    deprecation_date=date(2027, 1, 1),
                    successor_id=successor,
                )
            )
        assert raised.value.field == "successorId"
    assert (await rt.ask(GetModel(tenant_id=A, model=own.id))).deprecation_date is None


# ---------------------------------------------------------------------------- validation

BAD_REGISTRATIONS = [
    ("capabilities", {"capabilities": ("chat", "telepathy")}),
    ("capabilities", {"capabilities": ("chat", "chat")}),
    ("contextWindow", {"context_window": 0}),
    ("maxOutputTokens", {"max_output_tokens": -1}),
    ("maxOutputTokens", {"context_window": 1000, "max_output_tokens": 2000}),
    ("modality", {"modality": "smell"}),
    ("provider", {"provider": "Open AI"}),
    ("displayName", {"display_name": ""}),
]


@pytest.mark.parametrize(
    ("field", "change"),
    BAD_REGISTRATIONS,
    ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_REGISTRATIONS)],
)
def test_a_bad_registration_names_its_field(field, change):
    fields = {
        "tenant_id": A,
        "provider": "acme",
        "name": "x",
        "display_name": "X",
        "modality": "text",
        "capabilities": ("chat",),
        "context_window": 1000,
        **change,
    }
    with pytest.raises(InvalidInput) as raised:
        RegisterModel(**fields)
    assert raised.value.field == field


BAD_PRICES = [
    ("inputPerMTok", {"input_per_mtok": Decimal("-0.01")}),
    ("outputPerMTok", {"output_per_mtok": Decimal("NaN")}),
    ("cachedInputPerMTok", {"cached_input_per_mtok": Decimal("-1")}),
    ("inputPerMTok", {"input_per_mtok": Decimal("0.0000000001")}),
    ("source", {"source": ""}),
]


@pytest.mark.parametrize(
    ("field", "change"), BAD_PRICES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_PRICES)]
)
def test_a_bad_price_names_its_field(field, change):
    fields = {
        "tenant_id": A,
        "model_id": "mdl_x",
        "input_per_mtok": Decimal("1"),
        "output_per_mtok": Decimal("1"),
        "cached_input_per_mtok": None,
        "effective_from": datetime.now(UTC),
        "source": SOURCE,
        **change,
    }
    with pytest.raises(InvalidInput) as raised:
        SetModelPrice(**fields)
    assert raised.value.field == field


async def test_a_price_for_an_unknown_model_is_not_found(rt):
    with pytest.raises(NotFound) as raised:
        await set_price(rt, "mdl_missing", soon(1), "1")
    assert raised.value.details["field"] == "modelId"


# ---------------------------------------------------------------------------- seeding


async def row_counts(rt: Runtime) -> tuple[int, int]:
    async with raw_sql(rt, SERVICE) as run:
        models = await run("SELECT COUNT(*) AS n FROM models")
        prices = await run("SELECT COUNT(*) AS n FROM model_prices")
    return models[0]["n"], prices[0]["n"]


SEEDED = (len(CATALOG), sum(len(m.prices) for m in CATALOG))


async def test_seeding_adds_nothing_twice_across_a_restart(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ) as first:
        ids = [m.id for m in await all_models(first)]
        assert await row_counts(first) == SEEDED
        override = await set_price(first, ids[0], soon(1), "9")
    async with embedded(tmp_path, db_environ) as second:
        assert [m.id for m in await all_models(second)] == ids
        assert await row_counts(second) == (SEEDED[0], SEEDED[1] + 1)
        timeline = await second.ask(GetPriceTimeline(tenant_id=A, model=ids[0]))
        assert timeline[-1] == override


async def test_two_runtimes_starting_together_on_one_postgresql_seed_once(tmp_path, pg_url):
    environ = {"DATABASE_URL": pg_url}
    # `synapsex migrate` runs before the servers start on PostgreSQL
    migrator = embedded(tmp_path, environ)
    for db in migrator.databases():
        await db.open()
        try:
            await db.migrate()
        finally:
            await db.aclose()
    first, second = embedded(tmp_path / "a", environ), embedded(tmp_path / "b", environ)
    await asyncio.gather(first.start(), second.start())
    try:
        assert await row_counts(first) == SEEDED
        assert [m.id for m in await all_models(first)] == [m.id for m in await all_models(second)]
    finally:
        await asyncio.gather(first.stop(), second.stop())
