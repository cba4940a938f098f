"""Identifiers: sortable, opaque, prefixed by kind (``ten_01J…``).

48 bits of milliseconds since the epoch then 80 random bits, in Crockford base32 (26 characters),
so ids sort by creation time and make good pagination cursors. Within one process ids are also
strictly increasing: a second id in the same millisecond is the previous one plus one (as in
monotonic ULIDs), so "oldest first" by id is creation order. ``new_id`` does not wait.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_last = 0


def new_id(prefix: str) -> str:
    """A new id such as ``ten_01JD3Q6V0Z9X8Y7W6V5T4S3R2Q``."""
    global _last
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    if value <= _last:
        value = _last + 1
    _last = value
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
