"""The runtime's in-process broadcast: ordered fan-out, bounded buffers, clean endings."""

from __future__ import annotations

import asyncio

from synapsex.runtime import Broadcast


async def test_every_listener_of_a_channel_gets_its_items_in_order():
    broadcast = Broadcast()
    async with broadcast.listen("a") as first, broadcast.listen("a") as second:
        assert broadcast.publish("a", 1) == 2
        broadcast.publish("a", 2)
        assert [await first.__anext__(), await first.__anext__()] == [1, 2]
        assert [await second.__anext__(), await second.__anext__()] == [1, 2]


async def test_other_channels_and_late_listeners_see_nothing_published_before():
    broadcast = Broadcast()
    assert broadcast.publish("a", "lost") == 0
    async with broadcast.listen("a") as a, broadcast.listen("b") as b:
        broadcast.publish("b", "for b")
        assert await a.next(0.01) is None
        assert await b.next(0.01) == "for b"


async def test_a_listener_that_falls_behind_loses_its_oldest_items_and_knows_it():
    broadcast = Broadcast()
    async with broadcast.listen("a", capacity=3) as slow:
        for i in range(5):
            broadcast.publish("a", i)
        assert slow.dropped == 2
        assert [await slow.next(0.01) for _ in range(3)] == [2, 3, 4]


async def test_channels_with_listeners_are_listed_and_forgotten_when_the_last_leaves():
    broadcast = Broadcast()
    async with broadcast.listen("events/t1"), broadcast.listen("other"):
        assert sorted(broadcast.channels()) == ["events/t1", "other"]
        assert list(broadcast.channels("events/")) == ["events/t1"]
        assert broadcast.has_listeners("events/t1")
    assert not broadcast.has_listeners("events/t1")
    assert list(broadcast.channels()) == []


async def test_closing_ends_every_listener_after_what_it_buffered():
    broadcast = Broadcast()
    async with broadcast.listen("a") as listener:
        broadcast.publish("a", "last")
        waiting = asyncio.ensure_future(listener.__anext__())
        assert await asyncio.wait_for(waiting, 1) == "last"
        rest = asyncio.ensure_future(_collect(listener))
        broadcast.close()
        assert await asyncio.wait_for(rest, 1) == []
    async with broadcast.listen("a") as after_close:
        assert await _collect(after_close) == []


async def _collect(listener) -> list:
    return [item async for item in listener]
