"""model-registry-service: the model catalog and its effective-dated prices.

(Being built. The price timeline below is the interface billing-service prices usage with;
keep it as it is.)
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from synapsex.contracts.common import check_text
from synapsex.contracts.message import Message, Reply

SERVICE = "model-registry-service"


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


__all__ = ["SERVICE", "GetPriceTimeline", "PriceView"]
