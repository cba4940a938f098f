"""A lane tells its actor at most one message at a time, never runs its work twice at once,
and runs it once more when asked while it ran."""

from __future__ import annotations

import asyncio

import pytest

from synapsex.contracts.errors import Unavailable
from synapsex.contracts.message import Message
from synapsex.runtime import Lane


class Go(Message, service="lane-test"):
    pass


class FakeRuntime:
    """Records what the lane tells; refuses while ``full``."""

    def __init__(self) -> None:
        self.told: list[Message] = []
        self.full = False

    def tell_nowait(self, message: Message) -> None:
        if self.full:
            raise Unavailable("mailbox full", service="lane-test")
        self.told.append(message)


def test_requests_before_the_run_make_one_message():
    rt = FakeRuntime()
    lane = Lane(rt, Go)  # type: ignore[arg-type]
    lane.request()
    lane.request()
    assert len(rt.told) == 1


async def test_a_request_during_the_run_runs_the_work_once_more_afterwards():
    rt = FakeRuntime()
    lane = Lane(rt, Go)  # type: ignore[arg-type]
    lane.request()
    started, release = asyncio.Event(), asyncio.Event()
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1
        started.set()
        lane.request()  # asked while running: no second message now
        lane.request()
        assert len(rt.told) == 1
        await release.wait()

    running = asyncio.create_task(lane.run(work))
    await started.wait()
    assert lane.running
    await lane.run(work)  # a second delivery of the message while it runs: returns at once
    assert runs == 1
    release.set()
    await running
    assert not lane.running
    assert len(rt.told) == 2  # one more message: the requests made during the run


async def test_a_refused_message_is_asked_for_again_by_the_next_request():
    rt = FakeRuntime()
    lane = Lane(rt, Go)  # type: ignore[arg-type]
    rt.full = True
    lane.request()
    assert rt.told == []
    rt.full = False
    lane.request()
    assert len(rt.told) == 1


async def test_work_that_fails_leaves_the_lane_usable():
    rt = FakeRuntime()
    lane = Lane(rt, Go)  # type: ignore[arg-type]

    async def broken() -> None:
        raise RuntimeError("boom")

    lane.request()
    with pytest.raises(RuntimeError):
        await lane.run(broken)
    assert not lane.running
    lane.request()
    assert len(rt.told) == 2
