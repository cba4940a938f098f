"""Master key rotation on both engines: the sealing services re-wrap under the new key (secrets'
data keys, webhook signing secrets), the values keep opening, the old key can then be retired,
and afterwards everything still opens and signs, with the key file and with the variables."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from synapsex.actors.webhook.egress import ALLOW_PRIVATE_ENV
from synapsex.config import Settings, load_master_key
from synapsex.config.master_key import (
    MASTER_KEY_VARIABLE,
    PREVIOUS_KEYS_VARIABLE,
    retire_previous_keys,
    rotate_key_file,
)
from synapsex.contracts.events import PublishEvent
from synapsex.contracts.keys import RESEAL_MESSAGES, ResealProgress, ResealSecretValues
from synapsex.contracts.secrets import PutSecret, RevealSecret
from synapsex.contracts.webhooks import CreateWebhookSubscription, RotateWebhookSecret
from synapsex.runtime import Runtime
from synapsex.runtime.testing import raw_sql
from tests.actors.webhook.receiver import Receiver

pytestmark = pytest.mark.usefixtures("db_environ")

SERVICES = ["secrets-service", "webhook-service", "event-bus-service", "audit-service"]
A = "ten_a"
B = "ten_b"


def embedded(tmp_path: Path, db_environ: dict[str, str], **environ: str) -> Runtime:
    env = {ALLOW_PRIVATE_ENV: "true", **db_environ, **environ}
    return Runtime.embedded(data_dir=tmp_path, services=SERVICES, environ=env)


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def reseal_all(rt: Runtime, limit: int = 2) -> dict[str, int]:
    """Every sealing service, batch by batch (small batches: the cursor is exercised)."""
    totals = {"examined": 0, "resealed": 0, "changed_meanwhile": 0, "unreadable": 0}
    for message in RESEAL_MESSAGES:
        after = None
        while True:
            progress: ResealProgress = await rt.ask(message(after=after, limit=limit))
            for name in totals:
                totals[name] += getattr(progress, name)
            after = progress.next_after
            if after is None:
                break
    return totals


async def stored_key_ids(rt: Runtime) -> set[str]:
    """The master key ids of every sealed token in both services' tables."""
    async with raw_sql(rt, "secrets-service") as sql:
        tokens = [r["data_key_sealed"] for r in await sql("SELECT * FROM secret_versions")]
    async with raw_sql(rt, "webhook-service") as sql:
        for row in await sql("SELECT * FROM webhook_subscriptions"):
            tokens += [t for t in (row["secret_sealed"], row["previous_secret_sealed"]) if t]
    return {t.split(".")[1] for t in tokens}


async def seed(rt: Runtime, url: str) -> dict[str, str]:
    """Secrets in two tenants (several versions) and a webhook whose secret was rotated once
    (so both its secret columns hold tokens); returns what must still open afterwards."""
    for version in range(3):
        await rt.ask(PutSecret(tenant_id=A, name="api", value=f"a-{version}"))
    await rt.ask(PutSecret(tenant_id=B, name="api", value="b-0"))
    created = await rt.ask(
        CreateWebhookSubscription(tenant_id=A, url=url, event_types=("orders.#",))
    )
    rotated = await rt.ask(RotateWebhookSecret(tenant_id=A, id=created.subscription.id))
    return {"previous": created.secret, "current": rotated.secret}


async def assert_everything_opens(rt: Runtime, receiver: Receiver, webhook: dict[str, str]):
    for version in range(3):
        revealed = await rt.ask(RevealSecret(tenant_id=A, name="api", version=version + 1))
        assert revealed.value == f"a-{version}"
    assert (await rt.ask(RevealSecret(tenant_id=B, name="api"))).value == "b-0"
    # the webhook actor opens its secrets and signs with both (the rotation overlap)
    await rt.ask(PublishEvent(tenant_id=A, source="test", topic="orders.created", payload={}))
    count = len(receiver.at("/hook")) + 1
    request = (await receiver.wait_for(count, path="/hook"))[-1]
    assert len(request.signatures) == 2
    assert request.verify(webhook["current"]) == request.json
    assert request.verify(webhook["previous"]) == request.json


async def test_key_file_rotation_rewraps_then_the_old_key_retires(tmp_path, db_environ):
    settings = Settings(data_dir=tmp_path)
    async with Receiver() as receiver:
        async with embedded(tmp_path, db_environ) as rt:
            webhook = await seed(rt, receiver.url("/hook"))
            old = load_master_key(settings).key_id
            assert await stored_key_ids(rt) == {old}

            ring = rotate_key_file(settings)  # while the services run: they follow the file
            assert ring.previous_key_ids == (old,)
            await rt.ask(PutSecret(tenant_id=A, name="after", value="sealed under the new key"))
            totals = await reseal_all(rt)
            assert totals == {
                "examined": 7,  # 5 data keys, 2 webhook secrets
                "resealed": 6,  # all but the one put after the rotation
                "changed_meanwhile": 0,
                "unreadable": 0,
            }
            assert await stored_key_ids(rt) == {ring.key_id}
            assert (await reseal_all(rt))["resealed"] == 0  # a second pass has nothing to do
            await assert_everything_opens(rt, receiver, webhook)

            assert retire_previous_keys(settings, keep=ring.key_id) == (old,)
            assert load_master_key(settings).previous_key_ids == ()
            await assert_everything_opens(rt, receiver, webhook)

        async with embedded(tmp_path, db_environ) as rt:  # a fresh start: only the new key
            await assert_everything_opens(rt, receiver, webhook)
            after = await rt.ask(RevealSecret(tenant_id=A, name="after"))
            assert after.value == "sealed under the new key"


async def test_variable_rotation_rewraps_under_the_new_key_and_previous_can_go(
    tmp_path, db_environ
):
    first, second = new_key(), new_key()
    async with Receiver() as receiver:
        async with embedded(tmp_path, db_environ, **{MASTER_KEY_VARIABLE: first}) as rt:
            webhook = await seed(rt, receiver.url("/hook"))
        rotated = {MASTER_KEY_VARIABLE: second, PREVIOUS_KEYS_VARIABLE: first}
        async with embedded(tmp_path, db_environ, **rotated) as rt:
            await assert_everything_opens(rt, receiver, webhook)  # opens under the old key
            totals = await reseal_all(rt, limit=100)
            assert (totals["resealed"], totals["unreadable"]) == (6, 0)
        async with embedded(tmp_path, db_environ, **{MASTER_KEY_VARIABLE: second}) as rt:
            assert not list(tmp_path.glob("master.key*"))  # the key file was never involved
            await assert_everything_opens(rt, receiver, webhook)


async def test_values_under_a_key_not_in_the_ring_are_counted_unreadable(tmp_path, db_environ):
    async with embedded(tmp_path, db_environ, **{MASTER_KEY_VARIABLE: new_key()}) as rt:
        await rt.ask(PutSecret(tenant_id=A, name="lost", value="v"))
    async with embedded(tmp_path, db_environ, **{MASTER_KEY_VARIABLE: new_key()}) as rt:
        progress = await rt.ask(ResealSecretValues())
        assert (progress.examined, progress.resealed, progress.unreadable) == (1, 0, 1)
        assert progress.next_after is None
