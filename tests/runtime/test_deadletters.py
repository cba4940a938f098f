"""Dead letters: kept in the owning service's own database, listable, redrivable; shutdown."""

from __future__ import annotations

import asyncio

import pytest

from synapsex.contracts import Message, NotFound
from synapsex.contracts.auth import Authenticate
from synapsex.contracts.errors import Conflict, ServiceFailure, Unavailable
from synapsex.runtime import Actor, Runtime, handler
from synapsex.runtime.deadletters import dead_letter_from
from synapsex.runtime.envelope import Envelope
from synapsex.runtime.testing import wait_until

from .support import NO_BACKOFF, Echo, Ping, Slow, reset_echo


@pytest.fixture(autouse=True)
def _fresh_echo():
    reset_echo()


class Record(Message, service="ledger-service"):
    text: str


class Ledger(Actor, service="ledger-service", models="tests.runtime.ledger.models"):
    """A service with a database whose handler fails while ``broken`` is set."""

    broken = True

    @handler
    async def record(self, msg: Record) -> str:
        from tests.runtime.ledger.models import Entry

        if type(self).broken:
            raise RuntimeError("disk on fire")
        await Entry.create(text=msg.text)
        return msg.text


async def test_dead_letters_live_in_the_services_database_and_survive_a_restart(
    tmp_path, db_environ
):
    Ledger.broken = True
    options = {"data_dir": tmp_path, "actors": [Ledger], "environ": db_environ}
    async with Runtime.embedded(**options, policy=NO_BACKOFF) as rt:
        await rt.tell(Record(text="lost?"))
        (letter,) = await wait_until(lambda: rt.dead_letters("ledger-service"))
        db = rt.databases()[0]
    async with Runtime.embedded(**options) as rt:
        (kept,) = await rt.dead_letters("ledger-service")
        assert kept == letter
        assert kept.error == "RuntimeError: disk on fire"
        assert kept.attempts == 2
        assert (await rt.dead_letter("ledger-service", kept.id)).payload == {"text": "lost?"}
        Ledger.broken = False
        await rt.redrive("ledger-service", kept.id)
        assert await rt.dead_letters("ledger-service") == []
        assert await rt.ask(Record(text="fine")) == "fine"
    if db.config.is_sqlite:
        assert (tmp_path / "ledger.db").exists()
    else:
        assert db.config.schema == "ledger"


async def test_unknown_dead_letters_are_not_found(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo]) as rt:
        with pytest.raises(NotFound):
            await rt.dead_letter("echo-service", "dl_nope")
        with pytest.raises(NotFound):
            await rt.redrive("echo-service", "dl_nope")
        with pytest.raises(NotFound):
            await rt.discard_dead_letter("echo-service", "dl_nope")
        with pytest.raises(NotFound):
            await rt.dead_letters("nope-service")


async def test_discard_removes_a_dead_letter(tmp_path):
    Echo.failures_left = 1
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo], policy=NO_BACKOFF) as rt:
        from .support import Boom

        with pytest.raises(ServiceFailure):
            await rt.ask(Boom(text="x"))
        (letter,) = await wait_until(lambda: rt.dead_letters("echo-service"))
        await rt.discard_dead_letter("echo-service", letter.id)
        assert await rt.dead_letters("echo-service") == []


def test_secret_fields_are_redacted_and_cannot_be_redriven():
    letter = dead_letter_from(
        Envelope(
            Authenticate(key="sx_secret"),
            service="auth-service",
            reply=None,
            deadline=None,
            parent=None,
            sender=None,
        ),
        RuntimeError("x"),
    )
    assert letter.payload == {"key": "***"}
    assert letter.redacted
    assert "sx_secret" not in repr(letter)


async def test_redrive_refuses_a_redacted_message(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo]) as rt:
        envelope = Envelope(
            Authenticate(key="sx_secret"),
            service="echo-service",
            reply=None,
            deadline=None,
            parent=None,
            sender=None,
        )
        letter = dead_letter_from(envelope, "boom")
        cell = rt._cells["echo-service"]
        await cell.dead_letters.add(letter)
        with pytest.raises(Conflict, match="redacted"):
            await rt.redrive("echo-service", letter.id)


async def test_shutdown_drains_queued_messages_before_stopping(tmp_path):
    rt = Runtime.embedded(data_dir=tmp_path, actors=[Echo])
    await rt.start()
    for i in range(20):
        await rt.tell(Ping(text=str(i)))
    await rt.stop()
    assert Echo.log == [str(i) for i in range(20)]
    assert await _dead_letters_after_stop(rt) == []


async def _dead_letters_after_stop(rt: Runtime):
    return await rt._cells["echo-service"].dead_letters.list()


async def test_what_the_drain_timeout_cuts_off_is_kept_or_answered(tmp_path):
    rt = Runtime.embedded(data_dir=tmp_path, actors=[Echo], drain_timeout=0.05)
    await rt.start()
    stuck = asyncio.ensure_future(rt.ask(Slow(text="stuck", gate="never"), timeout=10))
    await wait_until(lambda: "start stuck" in Echo.log)
    waiting_ask = asyncio.ensure_future(rt.ask(Ping(text="asked"), timeout=10))
    await rt.tell(Ping(text="told"))
    await rt.stop()
    with pytest.raises(Unavailable):
        await stuck
    with pytest.raises(Unavailable):
        await waiting_ask
    letters = await _dead_letters_after_stop(rt)
    assert [(d.payload, d.error) for d in letters] == [
        ({"text": "told"}, "not handled before shutdown")
    ]
    assert "told" not in Echo.log
