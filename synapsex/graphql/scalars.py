"""Custom scalars: ``JSON`` for free-form data, ``BigInt`` for counts beyond 32 bits.

Annotate fields with the ``NewType``s; :data:`SCALAR_MAP` (passed to the schema's config) says
how each crosses the wire.
"""

from __future__ import annotations

from typing import Any, NewType

import strawberry

JSON = NewType("JSON", object)
BigInt = NewType("BigInt", int)


def _parse_big_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("BigInt must be an integer")
    return int(value)


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
}
