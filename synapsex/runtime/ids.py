"""Identifiers: sortable, opaque, prefixed by kind (``ten_01J…``).

48 bits of milliseconds since the epoch then 80 random bits, in Crockford base32 (26 characters),
so ids sort by creation time and make good pagination cursors. Within one process ids are also
strictly increasing: a second id in the same millisecond is the previous one plus one (as in
monotonic ULIDs), so "oldest first" by id is creation order. ``new_id`` does not wait.

The random bits come from ``os.urandom``, read a few kilobytes at a time (one system call per
400 ids rather than one each); a forked child starts with a fresh buffer, never its parent's.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: every 10-bit value as its two base32 characters
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_RANDOM_BYTES = 10  # 80 bits
_BUFFER_SIZE = 4000
_last = 0
_buffer = b""
_offset = 0


def _forget_buffer() -> None:
    global _buffer, _offset
    _buffer, _offset = b"", 0


os.register_at_fork(after_in_child=_forget_buffer)


def _random80() -> int:
    global _buffer, _offset
    if _offset + _RANDOM_BYTES > len(_buffer):
        _buffer, _offset = os.urandom(_BUFFER_SIZE), 0
    start = _offset
    _offset = start + _RANDOM_BYTES
    return int.from_bytes(_buffer[start:_offset], "big")


def new_id(prefix: str) -> str:
    """A new id such as ``ten_01JD3Q6V0Z9X8Y7W6V5T4S3R2Q``."""
    global _last
    value = (time.time_ns() // 1_000_000) << 80 | _random80()
    if value <= _last:
        value = _last + 1
    _last = value
    # 130 bits (the top two zero) as 13 pairs of characters, most significant first
    pairs = _PAIRS
    return prefix + "_" + "".join([pairs[(value >> s) & 1023] for s in range(120, -10, -10)])
