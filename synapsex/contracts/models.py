"""model-registry-service: the model catalog and its effective-dated prices.

A model is ``<provider>/<name>`` with a display name, a modality, capabilities, limits, prices
and a lifecycle (deprecation date, successor). **Platform** models (no tenant) are seen by every
tenant; a tenant may register **its own** models, seen only by it, and set **its own prices**
on any model it sees (on a platform model that is its override; the platform's prices stay as
they are for everyone else).

Prices are effective-dated: USD per million input, output and cached input tokens, in force
from ``effective_from`` until the next price of the same scope. A price is never changed nor
deleted, and a new one may not start in the past (:data:`PRICE_START_GRACE_SECONDS` of clock
skew aside), so what a moment was priced at never changes once it has passed.
:class:`GetPriceTimeline` is what billing-service prices usage with.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

from synapsex.contracts.common import PageRequest, check_choice, check_text
from synapsex.contracts.errors import InvalidInput
from synapsex.contracts.message import Message, Reply

SERVICE = "model-registry-service"

#: what a model can do; a registered model names some of these
CAPABILITIES: tuple[str, ...] = (
    "chat",
    "completion",
    "tools",
    "vision",
    "embeddings",
    "json_mode",
    "reasoning",
    "prompt_caching",
    "audio_input",
    "audio_output",
    "image_generation",
    "pdf_input",
    "web_search",
    "computer_use",
)
#: what a model takes in and gives back
MODALITIES: tuple[str, ...] = (
    "text",  # text in, text out
    "multimodal",  # text and images (or more) in, text out
    "embedding",  # text in, vectors out
    "image",  # image generation
    "audio",  # speech in or out
    "rerank",
    "moderation",
)
#: the scope of a price: the platform's, or one tenant's own
PRICE_SCOPES: tuple[str, ...] = ("platform", "tenant")
#: a new price may start this long before now (clocks of callers drift)
PRICE_START_GRACE_SECONDS = 300.0
MAX_PRICE_PER_MTOK = Decimal("1000000")
#: decimal places kept for a price per million tokens
PRICE_DECIMAL_PLACES = 9
MAX_CONTEXT_WINDOW = 100_000_000
MAX_SOURCE_LENGTH = 2000
MAX_SEARCH_LENGTH = 200

_PROVIDER_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,49}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+/-]{0,199}")


# ---------------------------------------------------------------------------- checks


def check_provider(value: str, field: str = "provider") -> None:
    if not _PROVIDER_RE.fullmatch(value):
        raise InvalidInput(
            field, "must be 1 to 50 lower-case letters, digits, '.', '_' or '-' (e.g. openai)"
        )


def check_model_name(value: str, field: str = "name") -> None:
    if not _NAME_RE.fullmatch(value):
        raise InvalidInput(
            field,
            "must be 1 to 200 letters, digits or . _ : @ + / - starting with a letter or digit",
        )


def check_capabilities(values: tuple[str, ...], field: str = "capabilities") -> None:
    unknown = [v for v in values if v not in CAPABILITIES]
    if unknown:
        raise InvalidInput(
            field, f"unknown capability {unknown[0]!r}; known: {', '.join(CAPABILITIES)}"
        )
    if len(set(values)) != len(values):
        raise InvalidInput(field, "must not repeat a capability")


def check_positive_tokens(value: int | None, field: str) -> None:
    if value is not None and not 1 <= value <= MAX_CONTEXT_WINDOW:
        raise InvalidInput(
            field, f"must be a positive number of tokens (at most {MAX_CONTEXT_WINDOW:,})"
        )


def check_price(value: Decimal | None, field: str) -> None:
    """A finite, non-negative amount of USD per million tokens with at most nine decimals."""
    if value is None:
        return
    if not value.is_finite():
        raise InvalidInput(field, "must be a finite amount")
    if value < 0:
        raise InvalidInput(field, "must not be negative")
    if value > MAX_PRICE_PER_MTOK:
        raise InvalidInput(field, f"must be at most {MAX_PRICE_PER_MTOK} USD per million tokens")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > PRICE_DECIMAL_PLACES:
        raise InvalidInput(field, f"must have at most {PRICE_DECIMAL_PLACES} decimal places")


# ---------------------------------------------------------------------------- replies


class PriceView(Reply):
    """One price of a model, in force from ``effective_from`` until the next one (USD per
    million tokens)."""

    model_id: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    #: ``None``: cached input tokens are priced as input tokens
    cached_input_per_mtok: Decimal | None
    effective_from: datetime
    #: where the figure comes from (a URL or a note), as registered
    source: str
    #: ``"platform"`` or ``"tenant"`` (the tenant's own override)
    scope: str


class ModelView(Reply):
    """A model as one tenant sees it."""

    id: str
    provider: str
    name: str
    display_name: str
    modality: str
    #: in the order of :data:`CAPABILITIES`
    capabilities: tuple[str, ...]
    context_window: int
    #: ``None``: the provider publishes no separate output limit (embedding models)
    max_output_tokens: int | None
    #: the day the model stops being offered, when announced
    deprecation_date: date | None
    successor_id: str | None
    #: ``"platform"`` (every tenant sees it) or ``"tenant"`` (the tenant's own)
    scope: str
    created_at: datetime
    #: the price in force now for this tenant (its override where it has one)
    current_price: PriceView | None
    #: every price this tenant can see on the model (the platform's and its own), oldest first
    price_history: tuple[PriceView, ...]


# ---------------------------------------------------------------------------- messages


class GetPriceTimeline(Message, service=SERVICE):
    """The prices of one model as ``tenant_id`` pays them, oldest first: at any time, the
    latest entry whose ``effective_from`` is not after it is in force (the tenant's own price
    when it has one in force then, else the platform's). ``model`` is a model id or its
    ``<provider>/<name>``. Replies ``tuple[PriceView, ...]`` (empty when the model has no
    price); ``NOT_FOUND`` on ``model`` when the tenant cannot see such a model."""

    tenant_id: str
    model: str

    def validate(self) -> None:
        check_text(self.tenant_id, "tenant_id", max_length=40)
        check_text(self.model, "model", max_length=200)


class RegisterModel(Message, service=SERVICE):
    """Register a model of ``tenant_id``'s own (seen only by that tenant). Replies
    :class:`ModelView`; ``CONFLICT`` when the tenant already sees a model with this provider
    and name."""

    tenant_id: str
    provider: str
    name: str
    display_name: str
    modality: str
    capabilities: tuple[str, ...]
    context_window: int
    max_output_tokens: int | None = None

    def validate(self) -> None:
        check_provider(self.provider)
        check_model_name(self.name)
        check_text(self.display_name, "displayName", max_length=200)
        check_choice(self.modality, MODALITIES, "modality")
        check_capabilities(self.capabilities)
        check_positive_tokens(self.context_window, "contextWindow")
        check_positive_tokens(self.max_output_tokens, "maxOutputTokens")
        if self.max_output_tokens is not None and self.max_output_tokens > self.context_window:
            raise InvalidInput("maxOutputTokens", "must not exceed contextWindow")


class GetModel(Message, service=SERVICE):
    """One model the tenant sees, by id or ``<provider>/<name>``; ``NOT_FOUND`` otherwise."""

    tenant_id: str
    model: str

    def validate(self) -> None:
        check_text(self.tenant_id, "tenant_id", max_length=40)
        check_text(self.model, "model", max_length=260)


class ListModels(PageRequest, service=SERVICE):
    """Replies ``Page[ModelView]`` of the models the tenant sees (the platform's and its own),
    oldest first, narrowed by ``provider`` (exact), ``capability`` and ``search`` (a
    case-insensitive substring of the provider, name or display name)."""

    tenant_id: str
    provider: str | None = None
    capability: str | None = None
    search: str | None = None

    def validate(self) -> None:
        PageRequest.validate(self)
        if self.provider is not None:
            check_provider(self.provider)
        if self.capability is not None:
            check_choice(self.capability, CAPABILITIES, "capability")
        if self.search is not None:
            check_text(self.search, "search", max_length=MAX_SEARCH_LENGTH)


class SetModelPrice(Message, service=SERVICE):
    """Add a price of the tenant's own scope to a model it sees: on a platform model it is the
    tenant's override (from ``effective_from`` on, the tenant pays its own prices); on the
    tenant's own model it is simply the model's price. Replies the new :class:`PriceView`.

    ``effective_from`` (a time without an offset is UTC) may not be in the past (beyond
    :data:`PRICE_START_GRACE_SECONDS`): a price never changes what an earlier moment is priced
    at. ``CONFLICT`` when the model already has a price of this scope from that very moment."""

    tenant_id: str
    model_id: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    #: ``None``: cached input tokens are priced as input tokens
    cached_input_per_mtok: Decimal | None
    effective_from: datetime
    source: str

    def validate(self) -> None:
        check_text(self.model_id, "modelId", max_length=260)
        check_price(self.input_per_mtok, "inputPerMTok")
        check_price(self.output_per_mtok, "outputPerMTok")
        check_price(self.cached_input_per_mtok, "cachedInputPerMTok")
        check_text(self.source, "source", max_length=MAX_SOURCE_LENGTH)


class DeprecateModel(Message, service=SERVICE):
    """Set the deprecation date (and successor) of one of the tenant's **own** models; a
    platform model is ``FORBIDDEN``. ``successor_id`` must name another model the tenant sees
    (``INVALID_INPUT`` on ``successorId`` otherwise). Replies :class:`ModelView`."""

    tenant_id: str
    id: str
    deprecation_date: date
    successor_id: str | None = None

    def validate(self) -> None:
        check_text(self.id, "id", max_length=260)
        if isinstance(self.deprecation_date, datetime):
            raise InvalidInput("date", "must be a date without a time")
        if self.successor_id is not None:
            check_text(self.successor_id, "successorId", max_length=260)


__all__ = [
    "CAPABILITIES",
    "MODALITIES",
    "PRICE_SCOPES",
    "PRICE_START_GRACE_SECONDS",
    "SERVICE",
    "DeprecateModel",
    "GetModel",
    "GetPriceTimeline",
    "ListModels",
    "ModelView",
    "PriceView",
    "RegisterModel",
    "SetModelPrice",
]
