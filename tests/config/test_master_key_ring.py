"""The master key ring: the current key seals, older keys open; the previous keys variable; a
key file of several keys; rotation and retirement of the file; a running ring following it."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from synapsex.config import ConfigError, MasterKey, SealError, Settings
from synapsex.config.master_key import (
    MAX_RING_KEYS,
    load_master_key,
    retire_previous_keys,
    rotate_key_file,
)

OLD = bytes(range(32))
NEW = bytes(range(1, 33))
CONTEXT = "secret-data-key:ten_a/api/1/scv_1"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def file_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def test_a_ring_seals_under_the_current_key_and_opens_under_older_ones():
    old = MasterKey(OLD)
    token = old.seal(b"value", context=CONTEXT)
    ring = MasterKey(NEW, previous=[OLD])
    assert ring.open(token, context=CONTEXT) == b"value"
    assert ring.previous_key_ids == (old.key_id,)
    sealed = ring.seal(b"value", context=CONTEXT)
    assert MasterKey.key_id_of(sealed) == ring.key_id
    with pytest.raises(SealError) as caught:
        old.open(sealed, context=CONTEXT)
    assert caught.value.reason == "other-key"


def test_reseal_moves_a_token_to_the_current_key_and_keeps_its_context():
    token = MasterKey(OLD).seal(b"value", context=CONTEXT)
    ring = MasterKey(NEW, previous=[OLD])
    again = ring.reseal(token, context=CONTEXT)
    assert again is not None
    assert MasterKey.key_id_of(again) == ring.key_id
    assert MasterKey(NEW).open(again, context=CONTEXT) == b"value"
    assert ring.reseal(again, context=CONTEXT) is None  # already current
    with pytest.raises(SealError) as caught:
        ring.reseal(token, context="another-row")
    assert caught.value.reason == "not-authentic"


def test_a_token_under_a_key_outside_the_ring_names_the_ring():
    stranger = MasterKey.generate()
    ring = MasterKey(NEW, previous=[OLD])
    with pytest.raises(SealError) as caught:
        ring.open(stranger.seal(b"v", context=CONTEXT), context=CONTEXT)
    assert caught.value.reason == "other-key"
    assert stranger.key_id in str(caught.value)
    assert ring.key_id in str(caught.value)
    assert ring.previous_key_ids[0] in str(caught.value)


def test_repr_names_the_key_ids_only():
    ring = MasterKey(NEW, previous=[OLD, NEW])  # the current key among the previous is ignored
    assert repr(ring) == (
        f"<MasterKey key_id={ring.key_id} previous={MasterKey(OLD).key_id} source=memory>"
    )


def test_the_previous_keys_variable_adds_older_keys(tmp_path):
    environ = {
        "SYNAPSEX_MASTER_KEY": b64(NEW),
        "SYNAPSEX_MASTER_KEY_PREVIOUS": f" {b64(OLD)} ,,",
    }
    ring = load_master_key(Settings(data_dir=tmp_path, environ=environ))
    assert ring.previous_key_ids == (MasterKey(OLD).key_id,)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("environ", "variable", "problem"),
    [
        (
            {"SYNAPSEX_MASTER_KEY": b64(NEW), "SYNAPSEX_MASTER_KEY_PREVIOUS": f"{b64(OLD)},nope"},
            "SYNAPSEX_MASTER_KEY_PREVIOUS",
            "key 2 decodes to 3 bytes",
        ),
        ({"SYNAPSEX_MASTER_KEY_PREVIOUS": b64(OLD)}, "SYNAPSEX_MASTER_KEY_PREVIOUS", "is set but"),
    ],
    ids=["bad-entry", "without-current"],
)
def test_bad_previous_keys_are_refused_naming_the_variable(tmp_path, environ, variable, problem):
    with pytest.raises(ConfigError) as caught:
        load_master_key(Settings(data_dir=tmp_path, environ=environ))
    assert caught.value.variable == variable
    assert problem in caught.value.problem
    assert b64(OLD) not in str(caught.value)


def test_a_key_file_of_several_lines_is_a_ring_current_first(tmp_path):
    path = tmp_path / "master.key"
    path.write_text(f"{b64(NEW)}\n\n{b64(OLD)}\n")
    path.chmod(0o600)
    ring = load_master_key(file_settings(tmp_path))
    assert ring.key_id == MasterKey(NEW).key_id
    assert ring.previous_key_ids == (MasterKey(OLD).key_id,)


def test_a_malformed_line_of_a_ring_file_is_named(tmp_path):
    path = tmp_path / "master.key"
    path.write_text(f"{b64(NEW)}\nnot a key\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="is malformed: line 2 is not base64"):
        load_master_key(file_settings(tmp_path))


def test_rotating_the_file_keeps_the_old_key_and_writes_0600_atomically(tmp_path):
    first = load_master_key(file_settings(tmp_path))
    token = first.seal(b"v", context=CONTEXT)
    ring = rotate_key_file(file_settings(tmp_path))
    assert ring.key_id != first.key_id
    assert ring.previous_key_ids == (first.key_id,)
    assert ring.open(token, context=CONTEXT) == b"v"
    path = tmp_path / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.key", "master.key.lock"]
    again = rotate_key_file(file_settings(tmp_path))
    assert again.previous_key_ids == (ring.key_id, first.key_id)


def test_retiring_keeps_only_the_current_key_and_refuses_after_another_rotation(tmp_path):
    first = load_master_key(file_settings(tmp_path))
    ring = rotate_key_file(file_settings(tmp_path))
    with pytest.raises(ConfigError, match="changed meanwhile"):
        retire_previous_keys(file_settings(tmp_path), keep=first.key_id)
    assert retire_previous_keys(file_settings(tmp_path), keep=ring.key_id) == (first.key_id,)
    assert load_master_key(file_settings(tmp_path)).previous_key_ids == ()
    assert retire_previous_keys(file_settings(tmp_path), keep=ring.key_id) == ()


def test_a_full_ring_asks_for_retirement_first(tmp_path):
    path = tmp_path / "master.key"
    path.write_text("".join(f"{b64(os.urandom(32))}\n" for _ in range(MAX_RING_KEYS)))
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="retire the previous ones first"):
        rotate_key_file(file_settings(tmp_path))


def test_rotating_the_file_is_refused_when_the_variable_holds_the_key(tmp_path):
    settings = Settings(data_dir=tmp_path, environ={"SYNAPSEX_MASTER_KEY": b64(NEW)})
    with pytest.raises(ConfigError, match="SYNAPSEX_MASTER_KEY_PREVIOUS"):
        rotate_key_file(settings)


def test_a_running_ring_follows_the_file_it_was_read_from(tmp_path):
    running = load_master_key(file_settings(tmp_path))  # e.g. a server's
    rotated = rotate_key_file(file_settings(tmp_path))  # e.g. the command, meanwhile
    by_command = rotated.seal(b"new", context=CONTEXT)
    assert running.open(by_command, context=CONTEXT) == b"new"  # reads the file again
    assert running.key_id == rotated.key_id
    sealed = running.seal(b"v", context=CONTEXT)
    assert MasterKey.key_id_of(sealed) == rotated.key_id
    retire_previous_keys(file_settings(tmp_path), keep=rotated.key_id)
    running.seal(b"v", context=CONTEXT)  # a seal notices the retirement too
    assert running.previous_key_ids == ()


def test_a_ring_file_broken_later_keeps_the_keys_in_memory(tmp_path):
    running = load_master_key(file_settings(tmp_path))
    (tmp_path / "master.key").chmod(0o644)
    token = running.seal(b"v", context=CONTEXT)
    assert running.open(token, context=CONTEXT) == b"v"
