"""Crashes, restarts, strategies, restart types, intensity, backoff and escalation."""

from __future__ import annotations

import asyncio

import pytest

from synapsex.contracts import Message
from synapsex.contracts.errors import ServiceFailure, Unavailable
from synapsex.runtime import (
    Actor,
    ActorState,
    Backoff,
    Runtime,
    RuntimeState,
    SupervisorPolicy,
    handler,
)
from synapsex.runtime.testing import FakeClock, wait_until

from .support import NO_BACKOFF, Boom, Echo, Ping, reset_echo


@pytest.fixture(autouse=True)
def _fresh_echo():
    reset_echo()


def stats_of(rt: Runtime, service: str):
    (stats,) = [s for s in rt.statistics() if s.service == service]
    return stats


async def test_unexpected_error_answers_service_failure_and_restarts_the_actor(tmp_path):
    Echo.failures_left = 1
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo], policy=NO_BACKOFF) as rt:
        with pytest.raises(ServiceFailure) as err:
            await rt.ask(Boom(text="a"))
        assert "boom" not in str(err.value)  # no internals leak to the asker
        assert err.value.details["reference"].startswith("msg_")
        await wait_until(lambda: stats_of(rt, "echo-service").state == "running")
        assert await rt.ask(Ping(text="after")) == "after"
        stats = stats_of(rt, "echo-service")
        assert (stats.failed, stats.restarts) == (1, 1)
        assert Echo.starts == 2


async def test_a_crashed_ask_goes_to_the_dead_letters_at_once(tmp_path):
    Echo.failures_left = 1
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo], policy=NO_BACKOFF) as rt:
        with pytest.raises(ServiceFailure):
            await rt.ask(Boom(text="a"))
        (letter,) = await wait_until(lambda: rt.dead_letters("echo-service"))
    assert letter.was_ask
    assert letter.attempts == 1
    assert letter.payload == {"text": "a"}
    assert letter.error == "RuntimeError: boom a"
    assert "ok a" not in Echo.log  # not retried: the asker already has its answer


async def test_a_crashed_tell_is_retried_once_then_succeeds(tmp_path):
    Echo.failures_left = 1
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo], policy=NO_BACKOFF) as rt:
        await rt.tell(Boom(text="t"))
        await wait_until(lambda: "ok t" in Echo.log)
        assert await rt.dead_letters("echo-service") == []


async def test_a_tell_that_crashes_twice_is_dead_lettered_and_later_messages_still_run(tmp_path):
    Echo.failures_left = 2
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo], policy=NO_BACKOFF) as rt:
        await rt.tell(Boom(text="t"))
        await rt.tell(Ping(text="next"))
        (letter,) = await wait_until(lambda: rt.dead_letters("echo-service"))
        await wait_until(lambda: "next" in Echo.log)
    assert (letter.attempts, letter.was_ask) == (2, False)
    assert Echo.log == ["next"]


async def test_queued_messages_survive_a_restart(tmp_path):
    Echo.failures_left = 1
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo], policy=NO_BACKOFF) as rt:
        crash = asyncio.ensure_future(rt.ask(Boom(text="a")))
        queued = [asyncio.ensure_future(rt.ask(Ping(text=str(i)))) for i in range(5)]
        with pytest.raises(ServiceFailure):
            await crash
        assert await asyncio.gather(*queued) == [str(i) for i in range(5)]


# ---------------------------------------------------------------------------- strategies


class Crash(Message, service="b-service"):
    pass


def make_trio():
    """Three actors started in order a, b, c; `Crash` crashes b."""
    started: list[str] = []

    def actor(name: str) -> type[Actor]:
        class Member(Actor, service=f"{name}-service"):
            async def on_start(self) -> None:
                started.append(name)

        return Member

    a, c = actor("a"), actor("c")

    class B(Actor, service="b-service"):
        async def on_start(self) -> None:
            started.append("b")

        @handler
        async def crash(self, msg: Crash) -> None:
            raise RuntimeError("b crashed")

    return [a, B, c], started


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        ("one_for_one", ["b"]),
        ("one_for_all", ["a", "b", "c"]),
        ("rest_for_one", ["b", "c"]),
    ],
)
async def test_strategy_decides_which_children_restart(tmp_path, strategy, restarted):
    actors, started = make_trio()
    policy = SupervisorPolicy(strategy=strategy, backoff=Backoff(min_seconds=0, max_seconds=0))
    async with Runtime.embedded(data_dir=tmp_path, actors=actors, policy=policy) as rt:
        assert started == ["a", "b", "c"]
        with pytest.raises(ServiceFailure):
            await rt.ask(Crash())
        await wait_until(lambda: len(started) == 3 + len(restarted))
        await wait_until(lambda: rt.ready)
        assert started[3:] == restarted  # restarted in start order
        restarts = {s.service.removesuffix("-service"): s.restarts for s in rt.statistics()}
    assert restarts == {n: int(n in restarted) for n in ("a", "b", "c")}


# ---------------------------------------------------------------------------- restart types


class Quit(Message, service="quitter-service"):
    crash: bool


def make_quitter(restart: str) -> type[Actor]:
    class Quitter(Actor, service="quitter-service", restart=restart):
        @handler
        async def quit(self, msg: Quit) -> str:
            if msg.crash:
                raise RuntimeError("crash")
            self.actor_stop()
            return "bye"

    return Quitter


@pytest.mark.parametrize(
    ("restart", "crash", "restarted"),
    [
        ("permanent", False, True),
        ("permanent", True, True),
        ("transient", False, False),
        ("transient", True, True),
        ("temporary", False, False),
        ("temporary", True, False),
    ],
)
async def test_restart_type_decides_whether_a_child_comes_back(tmp_path, restart, crash, restarted):
    actor = make_quitter(restart)
    async with Runtime.embedded(data_dir=tmp_path, actors=[actor], policy=NO_BACKOFF) as rt:
        try:
            await rt.ask(Quit(crash=crash))
        except ServiceFailure:
            assert crash
        if restarted:
            await wait_until(lambda: stats_of(rt, "quitter-service").restarts == 1)
            await wait_until(lambda: rt.ready)
        else:
            expected = "failed" if crash else "stopped"
            await wait_until(lambda: stats_of(rt, "quitter-service").state == expected)
            assert rt.not_ready() == ["quitter-service"]
            with pytest.raises(Unavailable):
                await rt.ask(Quit(crash=False))


# ---------------------------------------------------------------------------- intensity


async def test_backoff_grows_exponentially_between_restarts(tmp_path):
    clock = FakeClock()
    policy = SupervisorPolicy(intensity=5, backoff=Backoff(min_seconds=0.1, max_seconds=0.3))
    Echo.failures_left = 4
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo], policy=policy, clock=clock) as rt:
        for n in range(4):
            with pytest.raises(ServiceFailure):
                await rt.ask(Boom(text=str(n)))
            await wait_until(lambda: clock.sleeping == 1)
            assert not rt.ready  # waiting out the backoff
            await clock.advance(clock.sleeps[-1])
            await wait_until(lambda: rt.ready)
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.3, 0.3])


def test_backoff_jitter_stays_within_its_factor():
    backoff = Backoff(min_seconds=1.0, max_seconds=8.0, jitter=0.2)
    assert backoff.delay(1, 0.0) == pytest.approx(0.8)
    assert backoff.delay(1, 1.0) == pytest.approx(1.2)
    assert backoff.delay(3, 0.5) == pytest.approx(4.0)
    assert backoff.delay(10, 0.5) == pytest.approx(8.0)


async def test_past_the_intensity_the_runtime_gives_up_and_stops_in_order(tmp_path):
    stopped: list[str] = []

    def actor(name: str) -> type[Actor]:
        class Member(Actor, service=f"{name}-service"):
            async def on_stop(self) -> None:
                stopped.append(name)

        return Member

    class Doomed(Echo, service="echo-service"):
        async def on_stop(self) -> None:
            stopped.append("echo")

    Echo.failures_left = 100
    clock = FakeClock()
    policy = SupervisorPolicy(intensity=2, period=5.0, backoff=Backoff(min_seconds=0.0))
    actors = [actor("first"), Doomed, actor("last")]
    rt = Runtime.embedded(data_dir=tmp_path, actors=actors, policy=policy, clock=clock)
    await rt.start()
    for n in range(3):
        with pytest.raises(ServiceFailure):
            await rt.ask(Boom(text=str(n)))
        if n < 2:
            await wait_until(lambda n=n: stats_of(rt, "echo-service").restarts == n + 1)
            await wait_until(lambda: rt.ready)
            await clock.advance(1.0)  # all three crashes fall inside the 5 s period
    await asyncio.wait_for(rt.wait_stopped(), 5)
    assert rt.state is RuntimeState.FAILED
    assert not rt.ready
    assert "echo-service restarted more than 2 times" in rt.failure
    assert stopped == ["last", "first"]  # reverse start order; the failed one is not running
    assert [s.state for s in rt.statistics()] == ["stopped", "failed", "stopped"]


async def test_restarts_spread_beyond_the_period_do_not_add_up(tmp_path):
    clock = FakeClock()
    policy = SupervisorPolicy(intensity=1, period=5.0, backoff=Backoff(min_seconds=0.0))
    Echo.failures_left = 3
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo], policy=policy, clock=clock) as rt:
        for n in range(3):
            with pytest.raises(ServiceFailure):
                await rt.ask(Boom(text=str(n)))
            await wait_until(lambda n=n: stats_of(rt, "echo-service").restarts == n + 1)
            await wait_until(lambda: rt.ready)
            await clock.advance(6.0)
        assert rt.state is RuntimeState.RUNNING
        assert stats_of(rt, "echo-service").restarts == 3


async def test_a_failing_on_start_stops_the_boot_naming_the_actor(tmp_path):
    class Broken(Actor, service="broken-service"):
        async def on_start(self) -> None:
            raise RuntimeError("no")

    rt = Runtime.embedded(data_dir=tmp_path, actors=[Echo, Broken], policy=NO_BACKOFF)
    with pytest.raises(RuntimeError, match="broken-service"):
        await rt.start()
    assert rt.state is RuntimeState.STOPPED
    assert ActorState.RUNNING not in {s.state for s in rt.statistics()}
