"""Pricing usage: split a period at a model's price changes, and add up exact costs.

A record is priced at the price in force at its ``at``: the latest entry of the model's
timeline whose ``effective_from`` is not after it. Rather than price records one by one, the
summary cuts the period into **segments** at the timeline's changes; inside a segment one price
holds, so the quantities summed there (by the database) times that price is exactly the sum of
the records' costs. Every figure is a ``Decimal`` computed in a context wide enough that no
product or sum is ever rounded.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal

from synapsex.contracts.billing import TOKEN_KINDS, USAGE_KINDS, UsageLine
from synapsex.contracts.models import PriceView

#: prices are per million tokens
PER = Decimal(1_000_000)
#: 80 significant digits: a sum of 10^15-unit quantities times any sane price stays exact
EXACT = Context(prec=80)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)


def to_us(at: datetime) -> int:
    """Epoch microseconds of an aware time, exactly (no float on the way)."""
    return (at - EPOCH) // ONE_US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class Segment:
    """``[start_us, end_us)`` during which ``price`` (``None``: no price yet) is in force."""

    start_us: int
    end_us: int
    price: PriceView | None


def in_force(timeline: tuple[PriceView, ...], at_us: int) -> PriceView | None:
    """The price in force at ``at_us``: the latest entry not effective after it."""
    found = None
    for price in timeline:  # oldest first; among equal times the later entry wins
        if to_us(price.effective_from) <= at_us:
            found = price
    return found


def segments(timeline: tuple[PriceView, ...], start_us: int, end_us: int) -> list[Segment]:
    """``[start_us, end_us)`` cut wherever the price in force changes."""
    cuts = sorted({us for p in timeline if start_us < (us := to_us(p.effective_from)) < end_us})
    points = [start_us, *cuts, end_us]
    return [Segment(s, e, in_force(timeline, s)) for s, e in itertools.pairwise(points)]


def unit_price(kind: str, price: PriceView | None) -> Decimal | None:
    """USD per million units of ``kind`` under ``price``; ``None`` when it has no price."""
    if price is None or kind not in TOKEN_KINDS:
        return None
    if kind == "INPUT_TOKENS":
        return price.input_per_mtok
    if kind == "OUTPUT_TOKENS":
        return price.output_per_mtok
    cached = price.cached_input_per_mtok
    return price.input_per_mtok if cached is None else cached


def cost_of(quantity: int, per_million: Decimal) -> Decimal:
    return EXACT.divide(EXACT.multiply(Decimal(quantity), per_million), PER)


@dataclass(slots=True)
class _Line:
    quantity: int = 0
    cost: Decimal = field(default_factory=Decimal)
    unpriced: int = 0


class SummaryLines:
    """Lines of a summary, keyed by kind and (when grouped by them) model and day."""

    def __init__(self, group_by: tuple[str, ...]) -> None:
        self._by_model = "model" in group_by
        self._by_day = "day" in group_by
        self._lines: dict[tuple[str, str | None, str | None], _Line] = {}

    def add(
        self, kind: str, model: str | None, day: str, quantity: int, per_million: Decimal | None
    ) -> None:
        key = (kind, model if self._by_model else None, day if self._by_day else None)
        line = self._lines.setdefault(key, _Line())
        line.quantity += quantity
        if per_million is None:
            line.unpriced += quantity
        else:
            line.cost = EXACT.add(line.cost, cost_of(quantity, per_million))

    def lines(self) -> tuple[UsageLine, ...]:
        """Ordered by kind (as listed in the contract), then model, then day."""
        order = {k: i for i, k in enumerate(USAGE_KINDS)}
        keys = sorted(self._lines, key=lambda k: (order[k[0]], k[1] or "", k[2] or ""))
        return tuple(self._view(key, self._lines[key]) for key in keys)

    @staticmethod
    def _view(key: tuple[str, str | None, str | None], line: _Line) -> UsageLine:
        kind, model, day = key
        if line.unpriced == 0:
            pricing = "priced"
        elif line.unpriced == line.quantity:
            pricing = "not_priced"
        else:
            pricing = "partially_priced"
        return UsageLine(
            kind=kind,  # type: ignore[arg-type]
            model=model,
            day=date.fromisoformat(day) if day else None,
            quantity=line.quantity,
            cost=plain(line.cost),
            unpriced_quantity=line.unpriced,
            pricing=pricing,  # type: ignore[arg-type]
        )


def plain(value: Decimal) -> Decimal:
    """Without trailing zeros (prices may carry a stored scale: ``1.100000000`` is ``1.1``)."""
    return EXACT.normalize(value) if value else Decimal(0)


def total(lines: tuple[UsageLine, ...]) -> Decimal:
    result = Decimal(0)
    for line in lines:
        result = EXACT.add(result, line.cost)
    return plain(result)
