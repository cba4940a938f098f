"""Ids: prefixed, 26 Crockford base32 characters, strictly increasing within a process, with
random bits a forked child never shares with its parent."""

from __future__ import annotations

import os
import time

from synapsex.runtime import new_id

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def decode(text: str) -> int:
    value = 0
    for char in text:
        value = value * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(char)
    return value


def test_an_id_is_its_prefix_then_26_base32_characters_starting_with_the_time():
    before = time.time_ns() // 1_000_000
    prefix, body = new_id("whd").split("_")
    after = time.time_ns() // 1_000_000
    assert prefix == "whd"
    assert len(body) == 26
    assert set(body) <= CROCKFORD
    assert before <= decode(body) >> 80 <= after + 1  # +1: a second id in the same ms


def test_ids_strictly_increase_within_a_process():
    ids = [new_id("x") for _ in range(5_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_reuse_the_parents_random_bits():
    new_id("x")  # the parent has random bytes buffered
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        try:
            os.write(write_end, new_id("x").encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 100).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    parent = new_id("x")
    assert child[-16:] != parent[-16:]  # the last 16 characters are the 80 random bits
