"""``synapsex rotate-master-key`` as an operator runs it: a new key in the key file's ring,
every sealed value re-wrapped, the old key retired, and everything still opening afterwards; the
variables' flow; help and exit codes."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from synapsex.actors.webhook.egress import ALLOW_PRIVATE_ENV
from synapsex.config import Settings, load_master_key
from synapsex.contracts.secrets import PutSecret, RevealSecret
from synapsex.contracts.webhooks import CreateWebhookSubscription
from synapsex.runtime import Runtime
from synapsex.runtime.testing import raw_sql

from .conftest import json_lines

SERVICES = ["secrets-service", "webhook-service", "event-bus-service", "audit-service"]
A = "ten_a"


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def embedded(tmp_path: Path, environ: dict[str, str]) -> Runtime:
    env = {ALLOW_PRIVATE_ENV: "true", **environ}
    return Runtime.embedded(data_dir=tmp_path / "data", services=SERVICES, environ=env)


async def seed(tmp_path: Path, environ: dict[str, str]) -> tuple[str, str]:
    """Two versions of a secret and a webhook subscription; returns (subscription id, secret)."""
    async with embedded(tmp_path, environ) as rt:
        await rt.ask(PutSecret(tenant_id=A, name="api", value="first value"))
        await rt.ask(PutSecret(tenant_id=A, name="api", value="second value"))
        created = await rt.ask(
            CreateWebhookSubscription(
                tenant_id=A, url="http://127.0.0.1:9/hook", event_types=("orders.#",)
            )
        )
    return created.subscription.id, created.secret


async def assert_opens(tmp_path: Path, environ: dict[str, str], webhook: tuple[str, str]):
    async with embedded(tmp_path, environ) as rt:
        for version, value in ((1, "first value"), (2, "second value")):
            revealed = await rt.ask(RevealSecret(tenant_id=A, name="api", version=version))
            assert revealed.value == value
        async with raw_sql(rt, "webhook-service") as sql:
            (row,) = await sql("SELECT secret_sealed FROM webhook_subscriptions")
        settings = Settings(data_dir=tmp_path / "data", environ=environ)
        subscription_id, secret = webhook
        opened = load_master_key(settings).open_text(
            row["secret_sealed"], context=f"webhook-secret:{subscription_id}"
        )
        assert opened == secret


@pytest.mark.parametrize("command", [["rotate-master-key"], []])
def test_help_describes_the_command(cli, command):
    result = cli(*command, "--help")
    assert result.returncode == 0
    assert "rotate-master-key" in result.stdout


async def test_key_file_rotation_then_retirement_keeps_everything_readable(
    cli, tmp_path, db_environ
):
    webhook = await seed(tmp_path, db_environ)
    key_file = tmp_path / "data" / "master.key"
    old = load_master_key(Settings(data_dir=tmp_path / "data")).key_id

    rotated = cli("rotate-master-key", "--batch", "1", env=db_environ)
    assert rotated.returncode == 0, rotated.stderr
    lines = json_lines(rotated.stdout)
    assert lines[0]["step"] == "rotated"
    assert lines[0]["previous"] == [old]
    new = lines[0]["key_id"]
    batches = [line for line in lines if line["step"] == "batch"]
    assert {b["service"] for b in batches} == {"secrets-service", "webhook-service"}
    assert lines[-1] == {
        "step": "rewrapped",
        "key_id": new,
        "examined": 3,
        "resealed": 3,
        "changed_meanwhile": 0,
        "unreadable": 0,
    }
    assert len(key_file.read_text().split()) == 2
    await assert_opens(tmp_path, db_environ, webhook)

    retired = cli("rotate-master-key", "--retire", env=db_environ)
    assert retired.returncode == 0, retired.stderr
    assert json_lines(retired.stdout)[-1] == {"step": "retired", "key_id": new, "retired": [old]}
    assert len(key_file.read_text().split()) == 1
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    await assert_opens(tmp_path, db_environ, webhook)
    for key in key_file.read_text().split():
        assert key not in rotated.stdout + rotated.stderr + retired.stdout + retired.stderr


async def test_variable_rotation_rewraps_and_retire_says_to_unset_previous(cli, tmp_path):
    first, second = new_key(), new_key()
    webhook = await seed(tmp_path, {"SYNAPSEX_MASTER_KEY": first})
    rotated = {"SYNAPSEX_MASTER_KEY": second, "SYNAPSEX_MASTER_KEY_PREVIOUS": first}
    result = cli("rotate-master-key", env=rotated)
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout)[-1]["resealed"] == 3
    retire = cli("rotate-master-key", "--retire", env=rotated)
    assert retire.returncode == 0, retire.stderr
    assert "remove SYNAPSEX_MASTER_KEY_PREVIOUS" in retire.stderr
    await assert_opens(tmp_path, {"SYNAPSEX_MASTER_KEY": second}, webhook)
    assert not (tmp_path / "data" / "master.key").exists()
    for key in (first, second):
        assert key not in result.stdout + result.stderr + retire.stdout + retire.stderr


async def test_values_under_a_key_not_in_the_ring_exit_1_and_nothing_is_retired(cli, tmp_path):
    await seed(tmp_path, {"SYNAPSEX_MASTER_KEY": new_key()})
    result = cli("rotate-master-key", "--retire", env={"SYNAPSEX_MASTER_KEY": new_key()})
    assert result.returncode == 1
    assert "3 sealed values open under no key of the ring" in result.stderr
    assert all(line["step"] != "retired" for line in json_lines(result.stdout))


@pytest.mark.parametrize(
    ("args", "env", "problem"),
    [
        ([], {}, "there is no key to rotate yet"),
        ([], {"SYNAPSEX_MASTER_KEY_PREVIOUS": "x"}, "SYNAPSEX_MASTER_KEY_PREVIOUS: is set but"),
        (["--retire"], {"SYNAPSEX_MASTER_KEY": "short"}, "SYNAPSEX_MASTER_KEY: is not base64"),
        (["--batch", "0"], {}, "--batch: must be 1 to 500"),
    ],
    ids=["no-key-file", "previous-alone", "bad-key", "bad-batch"],
)
def test_bad_configuration_exits_2_naming_what_to_fix(cli, args, env, problem):
    result = cli("rotate-master-key", *args, env=env)
    assert result.returncode == 2, result.stderr
    assert problem in result.stderr
    assert "Traceback" not in result.stderr


def test_retire_and_rewrap_only_are_exclusive(cli):
    result = cli("rotate-master-key", "--retire", "--rewrap-only")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr
