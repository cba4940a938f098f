"""The model catalog: platform models every tenant sees, the tenant's own models, and
effective-dated prices (USD per million tokens) with the tenant's own overrides."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum

import strawberry
from strawberry.types import Info

from synapsex.contracts import models as contract
from synapsex.contracts.auth import Principal
from synapsex.contracts.errors import NotFound
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.guard import guarded
from synapsex.graphql.relay import Connection, tenant_connection
from synapsex.graphql.tenants import First

Ctx = Info[GatewayContext, None]

CAPABILITY_LIST = ", ".join(contract.CAPABILITIES)
MODALITY_LIST = ", ".join(contract.MODALITIES)


# ---------------------------------------------------------------------------- types


@strawberry.enum(description="Whose a model or a price is.")
class ModelScope(Enum):
    PLATFORM = "platform"
    TENANT = "tenant"


@strawberry.type(
    description="A price of a model in USD per million tokens, in force from "
    "effectiveFrom until the next price of the same scope."
)
class ModelPrice:
    input_per_mtok: Decimal = strawberry.field(name="inputPerMTok")
    output_per_mtok: Decimal = strawberry.field(name="outputPerMTok")
    cached_input_per_mtok: Decimal | None = strawberry.field(
        name="cachedInputPerMTok",
        description="Cached input tokens (cache reads); null: priced as input tokens.",
    )
    effective_from: datetime
    source: str = strawberry.field(description="Where the figure comes from (a URL or a note).")
    scope: ModelScope = strawberry.field(
        description="PLATFORM: the platform's price; TENANT: the tenant's own (its override)."
    )

    @classmethod
    def of(cls, view: contract.PriceView) -> ModelPrice:
        return cls(
            input_per_mtok=view.input_per_mtok,
            output_per_mtok=view.output_per_mtok,
            cached_input_per_mtok=view.cached_input_per_mtok,
            effective_from=view.effective_from,
            source=view.source,
            scope=ModelScope(view.scope),
        )


@strawberry.type(description="A model of the catalog as the caller's tenant sees it.")
class Model:
    id: strawberry.ID
    provider: str
    name: str
    display_name: str
    modality: str = strawberry.field(description=f"One of: {MODALITY_LIST}.")
    capabilities: list[str] = strawberry.field(description=f"Some of: {CAPABILITY_LIST}.")
    context_window: int
    max_output_tokens: int | None = strawberry.field(
        description="Null when the provider publishes no separate output limit (embeddings)."
    )
    deprecation_date: date | None = strawberry.field(
        description="The day the model stops being offered, when announced."
    )
    successor_id: strawberry.ID | None
    scope: ModelScope = strawberry.field(
        description="PLATFORM: seen by every tenant; TENANT: the tenant's own model."
    )
    created_at: datetime
    current_price: ModelPrice | None = strawberry.field(
        description="The price in force now for the tenant (its own override where it has one)."
    )
    price_history: list[ModelPrice] = strawberry.field(
        description="Every price the tenant can see on the model (the platform's and its own), "
        "oldest first."
    )

    @strawberry.field(description="The model recommended in its place.")
    async def successor(self, info: Ctx) -> Model | None:
        if self.successor_id is None:
            return None
        p = await info.context.principal()
        try:
            view = await info.context.ask(
                contract.GetModel(tenant_id=p.tenant_id, model=str(self.successor_id))
            )
        except NotFound:
            return None
        return Model.of(view)

    @classmethod
    def of(cls, view: contract.ModelView) -> Model:
        return cls(
            id=strawberry.ID(view.id),
            provider=view.provider,
            name=view.name,
            display_name=view.display_name,
            modality=view.modality,
            capabilities=list(view.capabilities),
            context_window=view.context_window,
            max_output_tokens=view.max_output_tokens,
            deprecation_date=view.deprecation_date,
            successor_id=None if view.successor_id is None else strawberry.ID(view.successor_id),
            scope=ModelScope(view.scope),
            created_at=view.created_at,
            current_price=None if view.current_price is None else ModelPrice.of(view.current_price),
            price_history=[ModelPrice.of(p) for p in view.price_history],
        )


# ---------------------------------------------------------------------------- inputs


@strawberry.input
class RegisterModelInput:
    provider: str = strawberry.field(description="Lower-case, e.g. openai.")
    name: str = strawberry.field(description="The provider's model name, e.g. gpt-4o.")
    display_name: str
    modality: str = strawberry.field(description=f"One of: {MODALITY_LIST}.")
    capabilities: list[str] = strawberry.field(description=f"Some of: {CAPABILITY_LIST}.")
    context_window: int
    max_output_tokens: int | None = None


@strawberry.input
class SetModelPriceInput:
    model_id: strawberry.ID = strawberry.field(description="A model id or <provider>/<name>.")
    input_per_mtok: Decimal = strawberry.field(name="inputPerMTok")
    output_per_mtok: Decimal = strawberry.field(name="outputPerMTok")
    cached_input_per_mtok: Decimal | None = strawberry.field(
        default=None,
        name="cachedInputPerMTok",
        description="Null or omitted: cached input tokens are priced as input tokens.",
    )
    effective_from: datetime | None = strawberry.field(
        default=None,
        description="When the price starts (omitted: now); a time without an offset is UTC. "
        "It may not be in the past.",
    )
    source: str = strawberry.field(description="Where the figure comes from (a URL or a note).")


@strawberry.input
class DeprecateModelInput:
    id: strawberry.ID
    date: date = strawberry.field(description="The day the model stops being offered.")
    successor_id: strawberry.ID | None = strawberry.field(
        default=None, description="A model the tenant sees, recommended in its place."
    )


# ---------------------------------------------------------------------------- resolvers


@strawberry.type
class ModelQuery:
    @strawberry.field(
        description="The models the tenant sees (the platform's and its own), oldest first. "
        "search matches the provider, name or display name (case-insensitive)."
    )
    async def models(
        self,
        info: Ctx,
        provider: str | None = None,
        capability: str | None = None,
        search: str | None = None,
        first: First = 50,
        after: str | None = None,
    ) -> Connection[Model]:
        return await tenant_connection(
            info,
            contract.ListModels,
            Model.of,
            provider=provider,
            capability=capability,
            search=search,
            first=first,
            after=after,
        )

    @strawberry.field(description="One model the tenant sees, by id or <provider>/<name>.")
    async def model(self, info: Ctx, id: strawberry.ID) -> Model:
        p = await info.context.principal()
        view = await info.context.ask(contract.GetModel(tenant_id=p.tenant_id, model=str(id)))
        return Model.of(view)


@strawberry.type
class ModelMutation:
    @strawberry.mutation(description="Register a model of the tenant's own (only it sees it).")
    async def register_model(self, info: Ctx, input: RegisterModelInput) -> Model:
        async def run(p: Principal) -> contract.ModelView:
            return await info.context.ask(
                contract.RegisterModel(
                    tenant_id=p.tenant_id,
                    provider=input.provider,
                    name=input.name,
                    display_name=input.display_name,
                    modality=input.modality,
                    capabilities=tuple(input.capabilities),
                    context_window=input.context_window,
                    max_output_tokens=input.max_output_tokens,
                )
            )

        view = await guarded(info, action="model.create", resource_type="model", run=run)
        return Model.of(view)

    @strawberry.mutation(
        description="Add a price of the tenant's own to a model: on a platform model it is the "
        "tenant's override from effectiveFrom on. Prices are never changed, only added."
    )
    async def set_model_price(self, info: Ctx, input: SetModelPriceInput) -> Model:
        model = str(input.model_id)

        async def run(p: Principal) -> contract.ModelView:
            await info.context.ask(
                contract.SetModelPrice(
                    tenant_id=p.tenant_id,
                    model_id=model,
                    input_per_mtok=input.input_per_mtok,
                    output_per_mtok=input.output_per_mtok,
                    cached_input_per_mtok=input.cached_input_per_mtok,
                    effective_from=input.effective_from or datetime.now(UTC),
                    source=input.source,
                )
            )
            return await info.context.ask(contract.GetModel(tenant_id=p.tenant_id, model=model))

        view = await guarded(
            info, action="model.price.set", resource_type="model", resource_id=model, run=run
        )
        return Model.of(view)

    @strawberry.mutation(
        description="Set the deprecation date and successor of one of the tenant's own models."
    )
    async def deprecate_model(self, info: Ctx, input: DeprecateModelInput) -> Model:
        async def run(p: Principal) -> contract.ModelView:
            return await info.context.ask(
                contract.DeprecateModel(
                    tenant_id=p.tenant_id,
                    id=str(input.id),
                    deprecation_date=input.date,
                    successor_id=None if input.successor_id is None else str(input.successor_id),
                )
            )

        view = await guarded(
            info,
            action="model.deprecate",
            resource_type="model",
            resource_id=str(input.id),
            run=run,
        )
        return Model.of(view)
