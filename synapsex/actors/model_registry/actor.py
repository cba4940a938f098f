"""model-registry-service handlers: the catalog, tenant models, effective-dated prices.

Visibility is one rule applied everywhere: a tenant sees rows whose ``scope_key`` is the
platform's (``*``) or its own id; anything else is ``NOT_FOUND``. The price a tenant pays at a
moment is its own latest price not after that moment, else the platform's (see
:func:`timeline`). Reads run side by side (``concurrency=4``); writes run alone, and what must
hold across processes (one model per scope, provider and name; one price per model, scope and
start) is a unique constraint, not a check in memory.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from synapsex.contracts.common import Page, as_utc
from synapsex.contracts.errors import Conflict, Forbidden, InvalidInput, NotFound
from synapsex.contracts.models import (
    PRICE_START_GRACE_SECONDS,
    SERVICE,
    DeprecateModel,
    GetModel,
    GetPriceTimeline,
    ListModels,
    ModelView,
    PriceView,
    RegisterModel,
    SetModelPrice,
)
from synapsex.runtime import Actor, handler, new_id
from synapsex.runtime.orm import paginate

from .models import PLATFORM_SCOPE, CatalogModel, ModelPrice, capabilities_json
from .seed import CATALOG
from .seeding import seed_catalog

# ---------------------------------------------------------------------------- prices


def timeline(prices: list[ModelPrice]) -> list[ModelPrice]:
    """The prices one tenant pays, oldest first: from its first own price on only its own
    prices count; before that, the platform's."""
    platform = sorted(
        (p for p in prices if p.scope_key == PLATFORM_SCOPE), key=lambda p: p.effective_from
    )
    own = sorted(
        (p for p in prices if p.scope_key != PLATFORM_SCOPE), key=lambda p: p.effective_from
    )
    if not own:
        return platform
    start = own[0].effective_from
    return [p for p in platform if p.effective_from < start] + own


def in_force(prices: list[ModelPrice], at: datetime) -> ModelPrice | None:
    """The entry of a timeline in force at ``at``."""
    current = None
    for price in prices:
        if price.effective_from <= at:
            current = price
    return current


def plain(amount: Decimal) -> Decimal:
    """``amount`` without the trailing zeros of the stored scale (``2.500000000`` is ``2.5``)."""
    return (
        amount.quantize(Decimal(1)) if amount == amount.to_integral_value() else amount.normalize()
    )


def price_view(row: ModelPrice) -> PriceView:
    cached = row.cached_input_per_mtok
    return PriceView(
        model_id=row.model_id,
        input_per_mtok=plain(row.input_per_mtok),
        output_per_mtok=plain(row.output_per_mtok),
        cached_input_per_mtok=None if cached is None else plain(cached),
        effective_from=as_utc(row.effective_from),
        source=row.source,
        scope="platform" if row.scope_key == PLATFORM_SCOPE else "tenant",
    )


def model_view(row: CatalogModel, prices: list[ModelPrice], now: datetime) -> ModelView:
    for price in prices:
        price.effective_from = as_utc(price.effective_from)
    history = sorted(prices, key=lambda p: (p.effective_from, p.scope_key != PLATFORM_SCOPE))
    current = in_force(timeline(prices), now)
    return ModelView(
        id=row.id,
        provider=row.provider,
        name=row.name,
        display_name=row.display_name,
        modality=row.modality,
        capabilities=tuple(json.loads(row.capabilities)),
        context_window=row.context_window,
        max_output_tokens=row.max_output_tokens,
        deprecation_date=row.deprecation_date,
        successor_id=row.successor_id,
        scope="platform" if row.scope_key == PLATFORM_SCOPE else "tenant",
        created_at=as_utc(row.created_at),
        current_price=None if current is None else price_view(current),
        price_history=tuple(price_view(p) for p in history),
    )


def _scopes(tenant_id: str) -> list[str]:
    return [PLATFORM_SCOPE, tenant_id]


# ---------------------------------------------------------------------------- actor


class ModelRegistryActor(
    Actor,
    service=SERVICE,
    models="synapsex.actors.model_registry.models",
    concurrency=4,
):
    """Owns ``models`` and ``model_prices``; seeds the platform catalog on start."""

    async def on_start(self) -> None:
        await seed_catalog(CATALOG)

    # ------------------------------------------------------------------ lookups

    async def _visible(self, tenant_id: str, model: str, field: str = "model") -> CatalogModel:
        """The model ``tenant_id`` sees by id or ``<provider>/<name>`` (its own first)."""
        rows: list[CatalogModel]
        if "/" in model:
            provider, _, name = model.partition("/")
            rows = await CatalogModel.filter(
                scope_key__in=_scopes(tenant_id), provider=provider, name=name
            )
            rows.sort(key=lambda r: r.scope_key == PLATFORM_SCOPE)
        else:
            rows = await CatalogModel.filter(id=model, scope_key__in=_scopes(tenant_id))
        if not rows:
            raise NotFound("model not found", field=field, id=model)
        return rows[0]

    async def _prices(self, tenant_id: str, model_ids: list[str]) -> dict[str, list[ModelPrice]]:
        by_model: dict[str, list[ModelPrice]] = {i: [] for i in model_ids}
        if model_ids:
            rows = await ModelPrice.filter(model_id__in=model_ids, scope_key__in=_scopes(tenant_id))
            for row in rows:
                by_model[row.model_id].append(row)
        return by_model

    async def _view(self, tenant_id: str, row: CatalogModel) -> ModelView:
        prices = await self._prices(tenant_id, [row.id])
        return model_view(row, prices[row.id], datetime.now(UTC))

    # ------------------------------------------------------------------ reads

    @handler(read_only=True)
    async def get_model(self, msg: GetModel) -> ModelView:
        return await self._view(msg.tenant_id, await self._visible(msg.tenant_id, msg.model))

    @handler(read_only=True)
    async def list_models(self, msg: ListModels) -> Page[ModelView]:
        query = CatalogModel.filter(scope_key__in=_scopes(msg.tenant_id))
        if msg.provider is not None:
            query = query.filter(provider=msg.provider)
        if msg.capability is not None:
            query = query.filter(capabilities__contains=json.dumps(msg.capability))
        if msg.search is not None:
            query = query.filter(
                Q(provider__icontains=msg.search)
                | Q(name__icontains=msg.search)
                | Q(display_name__icontains=msg.search)
            )
        page = await paginate(query, first=msg.first, after=msg.after, view=lambda row: row)
        prices = await self._prices(msg.tenant_id, [row.id for row in page.items])
        now = datetime.now(UTC)
        return Page(
            items=tuple(model_view(row, prices[row.id], now) for row in page.items),
            has_next_page=page.has_next_page,
            end_cursor=page.end_cursor,
        )

    @handler(read_only=True)
    async def price_timeline(self, msg: GetPriceTimeline) -> tuple[PriceView, ...]:
        row = await self._visible(msg.tenant_id, msg.model)
        prices = (await self._prices(msg.tenant_id, [row.id]))[row.id]
        for price in prices:
            price.effective_from = as_utc(price.effective_from)
        return tuple(price_view(p) for p in timeline(prices))

    # ------------------------------------------------------------------ writes

    @handler
    async def register_model(self, msg: RegisterModel) -> ModelView:
        taken = await CatalogModel.filter(
            scope_key__in=_scopes(msg.tenant_id), provider=msg.provider, name=msg.name
        ).exists()
        if taken:
            raise Conflict(f"a model {msg.provider}/{msg.name} already exists", field="name")
        now = datetime.now(UTC)
        try:
            row = await CatalogModel.create(
                id=new_id("mdl"),
                scope_key=msg.tenant_id,
                tenant_id=msg.tenant_id,
                provider=msg.provider,
                name=msg.name,
                display_name=msg.display_name,
                modality=msg.modality,
                capabilities=capabilities_json(msg.capabilities),
                context_window=msg.context_window,
                max_output_tokens=msg.max_output_tokens,
                created_at=now,
                updated_at=now,
            )
        except IntegrityError:  # registered meanwhile by another process
            raise Conflict(
                f"a model {msg.provider}/{msg.name} already exists", field="name"
            ) from None
        return model_view(row, [], now)

    @handler
    async def set_model_price(self, msg: SetModelPrice) -> PriceView:
        row = await self._visible(msg.tenant_id, msg.model_id, field="modelId")
        now = datetime.now(UTC)
        effective_from = as_utc(msg.effective_from)
        if effective_from < now - timedelta(seconds=PRICE_START_GRACE_SECONDS):
            raise InvalidInput(
                "effectiveFrom",
                "must not be in the past: a new price never changes what earlier usage cost",
            )
        try:
            price = await ModelPrice.create(
                id=new_id("mpr"),
                model_id=row.id,
                scope_key=msg.tenant_id,
                tenant_id=msg.tenant_id,
                input_per_mtok=msg.input_per_mtok,
                output_per_mtok=msg.output_per_mtok,
                cached_input_per_mtok=msg.cached_input_per_mtok,
                effective_from=effective_from,
                source=msg.source,
                created_at=now,
            )
        except IntegrityError:
            raise Conflict(
                "the model already has a price of this scope from this moment",
                field="effectiveFrom",
            ) from None
        price.effective_from = effective_from
        return price_view(price)

    @handler
    async def deprecate_model(self, msg: DeprecateModel) -> ModelView:
        row = await self._visible(msg.tenant_id, msg.id, field="id")
        if row.scope_key != msg.tenant_id:
            raise Forbidden("only the tenant's own models can be deprecated", field="id")
        if msg.successor_id is not None:
            if msg.successor_id in (row.id, f"{row.provider}/{row.name}"):
                raise InvalidInput("successorId", "must be another model")
            try:
                successor = await self._visible(msg.tenant_id, msg.successor_id)
            except NotFound:
                raise InvalidInput("successorId", "no model with this id is visible") from None
            row.successor_id = successor.id
        else:
            row.successor_id = None
        row.deprecation_date = msg.deprecation_date
        row.updated_at = datetime.now(UTC)
        await CatalogModel.filter(id=row.id, scope_key=msg.tenant_id).update(
            deprecation_date=row.deprecation_date,
            successor_id=row.successor_id,
            updated_at=row.updated_at,
        )
        return await self._view(msg.tenant_id, row)
