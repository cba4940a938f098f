"""A stand-in model-registry-service for billing's unit tests: price timelines set by the test,
answered through the real contract (``GetPriceTimeline``), so effective-dated pricing can be
checked with exact, known prices. The end-to-end tests use the real registry."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

from synapsex.contracts.errors import NotFound
from synapsex.contracts.models import SERVICE, GetModel, GetPriceTimeline, ModelView, PriceView
from synapsex.runtime import Actor, handler


def price(
    model_id: str,
    effective_from: datetime,
    input: str,
    output: str,
    cached: str | None = None,
) -> PriceView:
    return PriceView(
        model_id=model_id,
        input_per_mtok=Decimal(input),
        output_per_mtok=Decimal(output),
        cached_input_per_mtok=None if cached is None else Decimal(cached),
        effective_from=effective_from,
        source="test",
        scope="platform",
    )


class FakeModelRegistry(Actor, service=SERVICE):
    """Models by id, each with a ``provider/name`` alias and a timeline (oldest first)."""

    #: model id -> (provider/name, timeline); set by the test, cleared by the fixture
    models: ClassVar[dict[str, tuple[str, tuple[PriceView, ...]]]] = {}

    @classmethod
    def add(cls, model_id: str, alias: str, *prices: PriceView) -> None:
        cls.models[model_id] = (alias, tuple(sorted(prices, key=lambda p: p.effective_from)))

    @handler
    async def model(self, msg: GetModel) -> ModelView:
        for model_id, (alias, timeline) in self.models.items():
            if msg.model in (model_id, alias):
                provider, name = alias.split("/")
                return ModelView(
                    id=model_id,
                    provider=provider,
                    name=name,
                    display_name=name,
                    modality="text",
                    capabilities=("chat",),
                    context_window=8192,
                    max_output_tokens=None,
                    deprecation_date=None,
                    successor_id=None,
                    scope="platform",
                    created_at=datetime(2025, 1, 1, tzinfo=UTC),
                    current_price=timeline[-1] if timeline else None,
                    price_history=timeline,
                )
        raise NotFound(f"model {msg.model!r} not found", field="model")

    @handler
    async def timeline(self, msg: GetPriceTimeline) -> tuple[PriceView, ...]:
        for model_id, (alias, timeline) in self.models.items():
            if msg.model in (model_id, alias):
                return timeline
        raise NotFound(f"model {msg.model!r} not found", field="model")
