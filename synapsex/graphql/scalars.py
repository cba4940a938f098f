"""Custom scalars: ``JSON`` for free-form data, ``BigInt`` for counts beyond 32 bits,
``Decimal`` for money (fields annotated ``decimal.Decimal``).

Annotate fields with the ``NewType``s; :data:`SCALAR_MAP` (passed to the schema's config) says
how each crosses the wire.
"""

from __future__ import annotations

import decimal
from typing import Any, NewType

import strawberry

JSON = NewType("JSON", object)
BigInt = NewType("BigInt", int)


def _parse_big_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("BigInt must be an integer")
    return int(value)


def _parse_decimal(value: Any) -> decimal.Decimal:
    """A string such as ``"2.50"`` (preferred) or an integer; a JSON float is read from its
    shortest text form (``2.5`` is exactly ``2.5``), never from its binary value."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError('Decimal must be a string such as "2.50" or a number')
    try:
        parsed = decimal.Decimal(repr(value) if isinstance(value, float) else value)
    except decimal.InvalidOperation:
        raise ValueError(f"Decimal cannot be {value!r}") from None
    if not parsed.is_finite():
        raise ValueError("Decimal must be finite")
    return parsed


SCALAR_MAP = {
    JSON: strawberry.scalar(
        name="JSON",
        description="Free-form JSON: payloads, arguments, attributes.",
        serialize=lambda v: v,
        parse_value=lambda v: v,
    ),
    BigInt: strawberry.scalar(
        name="BigInt",
        description="An integer that may exceed 32 bits (serialized as a JSON number).",
        serialize=int,
        parse_value=_parse_big_int,
    ),
    decimal.Decimal: strawberry.scalar(
        name="Decimal",
        description=(
            'An exact decimal number, serialized as a string ("2.50"); money is USD. '
            "Send strings; integers and JSON numbers are read from their text."
        ),
        serialize=lambda v: format(v, "f"),
        parse_value=_parse_decimal,
    ),
}
