"""Routing, ask/tell, bounded mailboxes, timeouts, turn-taking, cycles, tracing."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from synapsex.config import ConfigError
from synapsex.contracts import Message
from synapsex.contracts.errors import Conflict, Timeout, Unavailable
from synapsex.runtime import Actor, AskCycle, Runtime, RuntimeState, handler
from synapsex.runtime.testing import wait_until

from .support import (
    Bounce,
    Echo,
    EchoWithBounce,
    Ping,
    Refuse,
    Relay,
    RelayActor,
    Slow,
    Whoami,
    reset_echo,
)


@pytest.fixture(autouse=True)
def _fresh_echo():
    reset_echo()


@pytest.fixture
async def rt(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo, RelayActor]) as runtime:
        yield runtime


async def test_ask_returns_the_handlers_reply(rt):
    assert await rt.ask(Ping(text="hi"), timeout=1.0) == "hi"


async def test_tell_is_handled_without_a_reply(rt):
    assert await rt.tell(Ping(text="fire")) is None
    await wait_until(lambda: "fire" in Echo.log)


async def test_contract_error_answers_the_asker_and_the_actor_keeps_running(rt):
    with pytest.raises(Conflict, match="taken"):
        await rt.ask(Refuse(reason="taken"))
    assert await rt.ask(Ping(text="still here")) == "still here"
    (stats,) = [s for s in rt.statistics() if s.service == "echo-service"]
    assert (stats.errors, stats.failed, stats.restarts) == (1, 0, 0)


async def test_actor_without_models_needs_no_database(tmp_path, rt):
    assert rt.databases() == []
    assert list(tmp_path.iterdir()) == []


async def test_a_message_for_a_service_not_running_is_unavailable(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, actors=[RelayActor]) as rt:
        with pytest.raises(Unavailable, match="echo-service"):
            await rt.ask(Ping(text="x"))


async def test_messages_are_handled_one_at_a_time(rt):
    Echo.entered = asyncio.Queue()
    first = asyncio.ensure_future(rt.ask(Slow(text="a", gate="a")))
    second = asyncio.ensure_future(rt.ask(Slow(text="b", gate="b")))
    assert await asyncio.wait_for(Echo.entered.get(), 2) == "a"
    Echo.gates.setdefault("b", asyncio.Event()).set()  # b may go, but only after a
    await asyncio.sleep(0)
    assert Echo.entered.empty()
    Echo.gates["a"].set()
    assert await first == "a"
    assert await second == "b"
    assert Echo.log == ["start a", "end a", "start b", "end b"]


class Read(Message, service="reader-service"):
    gate: str


class Write(Message, service="reader-service"):
    text: str


class Take(Message, service="reader-service"):
    gate: str


class Reader(Actor, service="reader-service", concurrency=2):
    gates: dict[str, asyncio.Event] = {}
    running = 0
    peak = 0
    log: list[str] = []

    @handler(read_only=True)
    async def read(self, msg: Read) -> str:
        cls = type(self)
        cls.running += 1
        cls.peak = max(cls.peak, cls.running)
        await cls.gates.setdefault(msg.gate, asyncio.Event()).wait()
        cls.running -= 1
        cls.log.append(f"read {msg.gate}")
        return msg.gate

    @handler(concurrent=True)  # a write the database keeps consistent (e.g. SKIP LOCKED)
    async def take(self, msg: Take) -> str:
        return await self.read(Read(gate=msg.gate))

    @handler
    async def write(self, msg: Write) -> str:
        type(self).log.append(f"write {msg.text} while {type(self).running} reads")
        return msg.text


async def test_read_only_handlers_may_overlap_when_the_actor_opts_in(tmp_path):
    Reader.gates, Reader.running, Reader.peak, Reader.log = {}, 0, 0, []
    async with Runtime.embedded(data_dir=tmp_path, actors=[Reader]) as rt:
        reads = [asyncio.ensure_future(rt.ask(Read(gate=g))) for g in ("a", "b")]
        write = asyncio.ensure_future(rt.ask(Write(text="w")))
        await wait_until(lambda: Reader.running == 2)
        assert not write.done()  # a write waits for the reads in flight
        for gate in ("a", "b"):
            Reader.gates[gate].set()
        assert await asyncio.gather(*reads) == ["a", "b"]
        assert await write == "w"
    assert Reader.peak == 2
    assert Reader.log[-1] == "write w while 0 reads"


async def test_concurrent_writes_overlap_with_reads_and_plain_writes_wait_for_both(tmp_path):
    Reader.gates, Reader.running, Reader.peak, Reader.log = {}, 0, 0, []
    async with Runtime.embedded(data_dir=tmp_path, actors=[Reader]) as rt:
        both = [
            asyncio.ensure_future(rt.ask(Read(gate="r"))),
            asyncio.ensure_future(rt.ask(Take(gate="t"))),
        ]
        write = asyncio.ensure_future(rt.ask(Write(text="w")))
        await wait_until(lambda: Reader.running == 2)
        assert not write.done()
        for gate in ("r", "t"):
            Reader.gates[gate].set()
        assert await asyncio.gather(*both) == ["r", "t"]
        assert await write == "w"
    assert Reader.peak == 2
    assert Reader.log[-1] == "write w while 0 reads"


async def test_ask_times_out_and_the_late_reply_is_dropped(rt):
    with pytest.raises(Timeout):
        await rt.ask(Slow(text="late", gate="g"), timeout=0.05)
    Echo.gates["g"].set()
    # The next ask gets its own reply, never the late one.
    assert await rt.ask(Ping(text="mine"), timeout=1.0) == "mine"
    await wait_until(lambda: "end late" in Echo.log)


async def test_an_ask_whose_asker_gave_up_before_it_started_is_skipped(rt):
    blocker = asyncio.ensure_future(rt.ask(Slow(text="block", gate="g"), timeout=5))
    await wait_until(lambda: "start block" in Echo.log)
    with pytest.raises(Timeout):
        await rt.ask(Ping(text="expired"), timeout=0.01)
    Echo.gates["g"].set()
    await blocker
    await wait_until(lambda: rt.statistics()[0].expired == 1)
    assert "expired" not in Echo.log


async def test_outside_caller_gets_unavailable_at_once_when_the_mailbox_is_full(tmp_path):
    class Tiny(Echo, service="echo-service", mailbox_capacity=2):
        pass

    async with Runtime.embedded(data_dir=tmp_path, actors=[Tiny]) as rt:
        blocker = asyncio.ensure_future(rt.ask(Slow(text="b", gate="g")))
        await wait_until(lambda: "start b" in Echo.log)
        queued = [asyncio.ensure_future(rt.ask(Ping(text=str(i)))) for i in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(Unavailable, match="mailbox full"):
            await rt.ask(Ping(text="overflow"))
        with pytest.raises(Unavailable, match="mailbox full"):
            rt.tell_nowait(Ping(text="overflow"))
        Echo.gates["g"].set()
        assert await blocker == "b"
        assert await asyncio.gather(*queued) == ["0", "1"]


async def test_tell_waits_for_room_in_a_full_mailbox(tmp_path):
    class Tiny(Echo, service="echo-service", mailbox_capacity=1):
        pass

    async with Runtime.embedded(data_dir=tmp_path, actors=[Tiny]) as rt:
        await rt.tell(Slow(text="b", gate="g"))
        await wait_until(lambda: "start b" in Echo.log)
        await rt.tell(Ping(text="fills"))
        waiting = asyncio.ensure_future(rt.tell(Ping(text="waits")))
        await asyncio.sleep(0)
        assert not waiting.done()  # backpressure: no room yet
        Echo.gates["g"].set()
        await asyncio.wait_for(waiting, 2)
        await wait_until(lambda: Echo.log[-1] == "waits")
        assert Echo.log == ["start b", "end b", "fills", "waits"]


class Fill(Message, service="relay-service"):
    count: int


class Filler(Actor, service="relay-service"):
    @handler
    async def fill(self, msg: Fill) -> int:
        for i in range(msg.count):
            await self.actor_runtime.tell(Ping(text=str(i)))  # waits for room: backpressure
        return msg.count


async def test_tell_from_inside_a_handler_waits_for_room(tmp_path):
    class Tiny(Echo, service="echo-service", mailbox_capacity=2):
        pass

    async with Runtime.embedded(data_dir=tmp_path, actors=[Tiny, Filler]) as rt:
        assert await rt.ask(Fill(count=50)) == 50
        await wait_until(lambda: len(Echo.log) == 50)
    assert Echo.log == [str(i) for i in range(50)]


async def test_ask_cycle_fails_at_once_naming_the_chain(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, actors=[EchoWithBounce, RelayActor]) as rt:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AskCycle) as err:
            await rt.ask(Bounce(), timeout=5)
        assert loop.time() - started < 1.0
    assert err.value.chain == ("echo-service", "relay-service", "echo-service")
    assert "echo-service -> relay-service -> echo-service" in str(err.value)


async def test_nested_ask_carries_trace_correlation_and_the_remaining_deadline(rt):
    loop = asyncio.get_running_loop()
    before = loop.time()
    seen = await rt.ask(Relay(inner=Whoami()), timeout=2.0, trace_id="ab" * 16)
    assert seen["trace_id"] == "ab" * 16
    assert seen["correlation_id"].startswith("msg_")
    assert seen["chain"] == ("relay-service",)
    assert seen["sender"] == "relay-service"
    # The inner ask's default timeout is 5 s, but it inherits the outer 2 s deadline.
    assert before + 1.5 < seen["deadline"] <= before + 2.0 + 0.1


async def test_messages_after_stop_are_unavailable(tmp_path):
    rt = Runtime.embedded(data_dir=tmp_path, actors=[Echo])
    with pytest.raises(Unavailable):
        await rt.ask(Ping(text="too early"))
    async with rt:
        assert rt.state is RuntimeState.RUNNING
    assert rt.state is RuntimeState.STOPPED
    with pytest.raises(Unavailable):
        await rt.ask(Ping(text="too late"))
    with pytest.raises(Unavailable):
        await rt.tell(Ping(text="too late"))
    with pytest.raises(RuntimeError, match="starts once"):
        await rt.start()


async def test_embedded_without_a_choice_starts_every_registered_service(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path) as rt:
        assert {"tenant-service", "auth-service"} <= set(rt.services)
        assert rt.ready
        assert (tmp_path / "tenant.db").exists()


class Misconfigured(Actor, service="misconfigured-service"):
    async def on_start(self) -> None:
        raise ConfigError("SYNAPSEX_EXAMPLE_SETTING", "must be a number")


class Broken(Actor, service="broken-service"):
    async def on_start(self) -> None:
        raise ValueError("a bug")


async def test_a_setting_an_actor_refuses_at_start_stops_the_start_naming_the_variable(tmp_path):
    runtime = Runtime.embedded(data_dir=tmp_path, actors=[Misconfigured])
    with pytest.raises(ConfigError) as caught:
        await runtime.start()
    assert caught.value.variable == "SYNAPSEX_EXAMPLE_SETTING"
    assert runtime.state is RuntimeState.STOPPED


async def test_an_actor_failing_to_start_otherwise_is_named(tmp_path):
    runtime = Runtime.embedded(data_dir=tmp_path, actors=[Broken])
    with pytest.raises(RuntimeError, match="broken-service"):
        await runtime.start()


# ---------------------------------------------------------------------------- memory


class Blob:
    """Something big a message or a reply may carry (weakly referenceable)."""


class Keep(Message, service="keeper-service"):
    blob: Any


class Keeper(Actor, service="keeper-service"):
    """Schedules a long timer while handling, as asyncpg does when a connection goes back to
    its pool: the timer keeps the handler's context alive."""

    timers: list[asyncio.TimerHandle] = []

    @handler
    async def keep(self, msg: Keep) -> Blob:
        Keeper.timers.append(asyncio.get_running_loop().call_later(300, lambda: None))
        return Blob()


async def test_a_handled_message_and_its_reply_do_not_outlive_the_handling(tmp_path):
    """A callback scheduled by a handler keeps its context (and the envelope in it) alive; the
    message's payload and the reply must not stay with it."""
    async with Runtime.embedded(data_dir=tmp_path, actors=[Keeper]) as rt:
        sent = Blob()
        reply = await rt.ask(Keep(blob=sent))
        gone = [weakref.ref(sent), weakref.ref(reply)]
        del sent, reply

        def collected() -> bool:
            gc.collect()
            return all(ref() is None for ref in gone)

        await wait_until(collected, message="the message or the reply is still referenced")
        assert all(not timer.cancelled() for timer in Keeper.timers)  # the context is held
        for timer in Keeper.timers:
            timer.cancel()
