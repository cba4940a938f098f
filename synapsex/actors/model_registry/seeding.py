"""Seeding the platform catalog: idempotent, and safe when processes start together.

Every insert is ``INSERT … ON CONFLICT DO NOTHING`` (``INSERT OR IGNORE`` on SQLite) against
the unique constraints of ``models`` (scope, provider, name) and ``model_prices`` (model,
scope, start), so a second start, or a second process seeding at the same moment on the same
PostgreSQL database, adds nothing twice. The platform models' descriptive fields (display
name, capabilities, limits, deprecation, successor) follow the seed: they are updated to it on
every start. Prices are never updated: a refreshed price is a new entry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import structlog

from synapsex.runtime import new_id

from .models import PLATFORM_SCOPE, CatalogModel, ModelPrice, capabilities_json
from .seed import SeedModel, SeedPrice

log = structlog.get_logger("synapsex.model_registry")


def _described(model: SeedModel) -> dict[str, object]:
    return {
        "display_name": model.display_name,
        "modality": model.modality,
        "capabilities": capabilities_json(model.capabilities),
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "deprecation_date": model.deprecation_date,
    }


def _price_row(model_id: str, price: SeedPrice, now: datetime) -> ModelPrice:
    return ModelPrice(
        id=new_id("mpr"),
        model_id=model_id,
        scope_key=PLATFORM_SCOPE,
        tenant_id=None,
        input_per_mtok=Decimal(price.input),
        output_per_mtok=Decimal(price.output),
        cached_input_per_mtok=None if price.cached is None else Decimal(price.cached),
        effective_from=datetime.fromisoformat(price.effective_from).astimezone(UTC),
        source=price.source,
        created_at=now,
    )


async def seed_catalog(catalog: tuple[SeedModel, ...]) -> None:
    """Add the missing platform models and prices of ``catalog``; update the descriptions."""
    now = datetime.now(UTC)
    await CatalogModel.bulk_create(
        [
            CatalogModel(
                id=new_id("mdl"),
                scope_key=PLATFORM_SCOPE,
                tenant_id=None,
                provider=m.provider,
                name=m.name,
                created_at=now,
                updated_at=now,
                **_described(m),
            )
            for m in catalog
        ],
        ignore_conflicts=True,
    )
    ids = {
        f"{row.provider}/{row.name}": row.id
        for row in await CatalogModel.filter(scope_key=PLATFORM_SCOPE)
    }
    for m in catalog:
        await CatalogModel.filter(id=ids[f"{m.provider}/{m.name}"]).update(
            **_described(m), successor_id=ids[m.successor] if m.successor else None
        )
    await ModelPrice.bulk_create(
        [_price_row(ids[f"{m.provider}/{m.name}"], p, now) for m in catalog for p in m.prices],
        ignore_conflicts=True,
    )
    log.info("model catalog seeded", models=len(catalog))
