from __future__ import annotations

import base64
import hashlib
import os
import pickle
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from synapsex.config import ConfigError, Settings
from synapsex.config import master_key as master_key_module
from synapsex.config.master_key import MasterKey, SealError, load_master_key

KEY = bytes(range(32))
KEY_ID = hashlib.sha256(KEY).hexdigest()[:8]
CONTEXT = "webhook-secret:sub_123"
SECRET = b"whsec_do-not-leak-this-value"
TOKEN = re.compile(r"v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+")


def env_settings(value: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, environ={"SYNAPSEX_MASTER_KEY": value})


def file_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def write_key_file(path: Path, content: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(mode)


def assert_leaks_nothing(text: str, *secrets: bytes) -> None:
    for value in secrets:
        for form in (
            value,
            value.hex().encode(),
            base64.b64encode(value),
            base64.urlsafe_b64encode(value).rstrip(b"="),
        ):
            assert form.decode("latin-1") not in text


# -- sealing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [SECRET, b"", bytes(range(256)) * 4])
def test_seal_then_open_returns_the_plaintext(plaintext):
    key = MasterKey(KEY)
    assert key.open(key.seal(plaintext, context=CONTEXT), context=CONTEXT) == plaintext


def test_seal_text_then_open_text_round_trips_unicode():
    key = MasterKey.generate()
    text = "clé secrète ✓ 🔑"
    assert key.open_text(key.seal_text(text, context=CONTEXT), context=CONTEXT) == text


def test_another_instance_of_the_same_key_opens_the_token():
    token = MasterKey(KEY).seal(SECRET, context=CONTEXT)
    assert MasterKey(KEY).open(token, context=CONTEXT) == SECRET


def test_token_is_version_key_id_and_unpadded_base64url():
    token = MasterKey(KEY).seal(SECRET, context=CONTEXT)
    assert TOKEN.fullmatch(token)
    version, key_id, body = token.split(".")
    assert (version, key_id) == ("v1", KEY_ID)
    assert len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) == 12 + len(SECRET) + 16


def test_sealing_the_same_value_twice_gives_different_tokens():
    key = MasterKey(KEY)
    assert key.seal(SECRET, context=CONTEXT) != key.seal(SECRET, context=CONTEXT)


def test_token_never_contains_the_plaintext_or_the_key():
    key = MasterKey(KEY)
    for _ in range(20):
        assert_leaks_nothing(key.seal(SECRET, context=CONTEXT), SECRET, KEY)
        assert_leaks_nothing(key.seal_text(SECRET.decode(), context=CONTEXT), SECRET, KEY)


def test_token_opened_with_another_context_is_refused():
    key = MasterKey(KEY)
    token = key.seal(SECRET, context="webhook-secret:sub_123")
    with pytest.raises(SealError, match="another context or altered") as caught:
        key.open(token, context="webhook-secret:sub_124")
    assert caught.value.reason == "not-authentic"


def test_every_altered_character_of_the_token_is_refused():
    key = MasterKey(KEY)
    token = key.seal(SECRET, context=CONTEXT)
    for index, char in enumerate(token):
        if char == ".":
            continue
        replacement = "B" if char != "B" else "C"
        if index < 2:  # the version
            replacement = "w" if char == "v" else "2"
        altered = token[:index] + replacement + token[index + 1 :]
        with pytest.raises(SealError):
            key.open(altered, context=CONTEXT)


def test_truncated_or_extended_token_is_refused():
    key = MasterKey(KEY)
    token = key.seal(SECRET, context=CONTEXT)
    for altered in (token[:-4], token + "AAAA", token[:-1]):
        with pytest.raises(SealError):
            key.open(altered, context=CONTEXT)


def test_token_sealed_with_another_key_is_refused_naming_both_key_ids():
    other = MasterKey.generate()
    token = other.seal(SECRET, context=CONTEXT)
    key = MasterKey(KEY)
    with pytest.raises(SealError) as caught:
        key.open(token, context=CONTEXT)
    assert caught.value.reason == "other-key"
    assert other.key_id in str(caught.value)
    assert key.key_id in str(caught.value)


def test_token_relabelled_with_this_key_id_is_refused():
    token = MasterKey.generate().seal(SECRET, context=CONTEXT)
    relabelled = f"v1.{KEY_ID}.{token.split('.')[2]}"
    with pytest.raises(SealError) as caught:
        MasterKey(KEY).open(relabelled, context=CONTEXT)
    assert caught.value.reason == "not-authentic"


def _body(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


STANDARD_BODY = base64.b64encode(b"\xfb" * 40).decode()


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "malformed"),
        ("v1", "malformed"),
        (f"v1.{KEY_ID}", "malformed"),
        (f"v1.{KEY_ID}.{_body(bytes(40))}.extra", "malformed"),
        (f"x1.{KEY_ID}.{_body(bytes(40))}", "malformed"),
        (f"v2.{KEY_ID}.{_body(bytes(40))}", "unsupported-version"),
        (f"v1.{KEY_ID.upper()}.{_body(bytes(40))}", "malformed"),
        (f"v1.{KEY_ID[:7]}.{_body(bytes(40))}", "malformed"),
        (f"v1.{KEY_ID}.", "malformed"),
        (f"v1.{KEY_ID}.{_body(bytes(27))}", "malformed"),  # shorter than nonce + tag
        (f"v1.{KEY_ID}.{_body(bytes(40))}==", "malformed"),  # padding is not part of the format
        (f"v1.{KEY_ID}.{STANDARD_BODY}", "malformed"),  # + and / are not base64url
        (f"v1.{KEY_ID}.AAAAA", "malformed"),  # not a base64 length
        (f"v1.{KEY_ID}.{_body(bytes(40))[:-1]}B", "malformed"),  # non-canonical final character
        (f"v1.{KEY_ID}.{_body(bytes(40))} ", "malformed"),
        (f"v1.{KEY_ID}.{_body(bytes(40))}", "not-authentic"),
        (None, "malformed"),
        (b"v1.00000000.AAAA", "malformed"),
    ],
)
def test_malformed_tokens_are_refused_with_seal_error(token, reason):
    with pytest.raises(SealError) as caught:
        MasterKey(KEY).open(token, context=CONTEXT)
    assert caught.value.reason == reason


def test_seal_error_messages_hold_no_plaintext_token_or_key():
    key = MasterKey(KEY)
    token = key.seal(SECRET, context=CONTEXT)
    body = token.split(".")[2]
    attempts = [
        (key, token, "webhook-secret:other"),
        (key, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), CONTEXT),
        (MasterKey.generate(), token, CONTEXT),
        (key, f"v9.{KEY_ID}.{body}", CONTEXT),
        (key, f"v1.{KEY_ID}.{body}!", CONTEXT),
    ]
    for opener, candidate, context in attempts:
        with pytest.raises(SealError) as caught:
            opener.open(candidate, context=context)
        message = str(caught.value)
        assert_leaks_nothing(message, SECRET, KEY)
        assert body not in message
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__ or caught.value.__context__ is None


def test_open_text_of_a_value_that_is_not_utf8_raises_seal_error_without_the_bytes():
    key = MasterKey(KEY)
    token = key.seal(b"\xff\xfeSECRETBYTES", context=CONTEXT)
    with pytest.raises(SealError) as caught:
        key.open_text(token, context=CONTEXT)
    assert caught.value.reason == "not-text"
    assert "SECRETBYTES" not in str(caught.value)
    assert "\\xff" not in str(caught.value)
    assert caught.value.__suppress_context__


def test_seal_text_of_unencodable_text_does_not_chain_the_text():
    with pytest.raises(ValueError, match="UTF-8") as caught:
        MasterKey(KEY).seal_text("SECRET\ud800", context=CONTEXT)
    assert "SECRET" not in str(caught.value)
    assert caught.value.__suppress_context__


def test_seal_takes_bytes_and_seal_text_takes_str():
    key = MasterKey(KEY)
    with pytest.raises(TypeError, match="seal_text"):
        key.seal("text", context=CONTEXT)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seal\\(\\)"):
        key.seal_text(b"bytes", context=CONTEXT)  # type: ignore[arg-type]


@pytest.mark.parametrize("context", ["", None, b"webhook-secret:1"])
def test_context_must_be_a_non_empty_str(context):
    key = MasterKey(KEY)
    token = key.seal(SECRET, context=CONTEXT)
    with pytest.raises((ValueError, TypeError)):
        key.seal(SECRET, context=context)
    with pytest.raises((ValueError, TypeError)):
        key.open(token, context=context)


# -- the key object ----------------------------------------------------------------------------


def test_key_id_is_the_first_8_hex_digits_of_sha256_of_the_key():
    assert MasterKey(KEY).key_id == KEY_ID


def test_repr_and_str_show_the_key_id_and_never_the_key():
    key = MasterKey(KEY, source="SYNAPSEX_MASTER_KEY")
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert KEY_ID in text
        assert_leaks_nothing(text, KEY)
        assert repr(KEY) not in text
    assert repr(key) == f"<MasterKey key_id={KEY_ID} source=SYNAPSEX_MASTER_KEY>"


def test_master_key_has_no_attribute_holding_the_key():
    key = MasterKey(KEY)
    assert not hasattr(key, "__dict__")
    for name in MasterKey.__slots__:
        assert getattr(key, name) != KEY


def test_master_key_cannot_be_pickled():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(MasterKey(KEY))


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_master_key_is_exactly_32_bytes(length):
    with pytest.raises(ValueError, match="exactly 32 bytes"):
        MasterKey(bytes(length))


# -- SYNAPSEX_MASTER_KEY ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        base64.b64encode(KEY).decode(),
        base64.urlsafe_b64encode(KEY).decode(),
        base64.urlsafe_b64encode(KEY).decode().rstrip("="),
        f"  {base64.b64encode(KEY).decode()}\n",
    ],
    ids=["standard", "url-safe", "url-safe-unpadded", "surrounded-by-whitespace"],
)
def test_environment_key_in_standard_or_url_safe_base64_is_accepted(value, tmp_path):
    key = load_master_key(env_settings(value, tmp_path))
    assert key.key_id == KEY_ID
    assert key.source == "SYNAPSEX_MASTER_KEY"


def test_standard_and_url_safe_forms_of_one_key_are_one_key(tmp_path):
    key_bytes = b"\xfb\xff" * 16  # encodes with + and / (standard) or - and _ (url-safe)
    standard = base64.b64encode(key_bytes).decode()
    url_safe = base64.urlsafe_b64encode(key_bytes).decode()
    assert standard != url_safe
    sealed = load_master_key(env_settings(standard, tmp_path)).seal(SECRET, context=CONTEXT)
    opener = load_master_key(env_settings(url_safe, tmp_path))
    assert opener.open(sealed, context=CONTEXT) == SECRET


def test_environment_key_wins_and_no_key_file_is_created(tmp_path):
    key = load_master_key(env_settings(base64.b64encode(KEY).decode(), tmp_path))
    assert key.key_id == KEY_ID
    assert not (tmp_path / "master.key").exists()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (base64.b64encode(bytes(range(16))).decode(), "decodes to 16 bytes"),
        (base64.b64encode(bytes(range(31))).decode(), "decodes to 31 bytes"),
        (base64.b64encode(bytes(range(48))).decode(), "decodes to 48 bytes"),
        ("not a key at all, sorry!", "is not base64"),
        ("c2VjcmV0LWtleS12YWx1ZQ=x", "is not base64"),
        ("c2VjcmV0LWtleS12YWx1ZQ===", "is not base64"),
        ("clé" * 15, "is not base64"),
        (bytes(range(32, 64)).hex(), "64 hex digits"),
        ("", "is empty; unset it to use the key file"),
        ("   ", "is empty; unset it to use the key file"),
    ],
)
def test_bad_environment_key_names_the_variable_and_never_the_value(value, problem, tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_master_key(env_settings(value, tmp_path))
    error = caught.value
    assert error.variable == "SYNAPSEX_MASTER_KEY"
    assert problem in error.problem
    assert str(error).startswith("SYNAPSEX_MASTER_KEY: ")
    if value.strip():
        assert value.strip() not in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert not (tmp_path / "master.key").exists()


def test_bad_environment_key_message_says_how_to_generate_one(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("base64.b64encode(os.urandom(32))")):
        load_master_key(env_settings("short", tmp_path))


# -- the key file -------------------------------------------------------------------------------


def test_key_file_is_created_0600_with_32_random_bytes_in_base64(tmp_path):
    settings = file_settings(tmp_path)
    key = load_master_key(settings)
    path = tmp_path / "data" / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_bytes()
    assert content.endswith(b"\n")
    raw = base64.b64decode(content.strip(), validate=True)
    assert len(raw) == 32
    assert key.key_id == hashlib.sha256(raw).hexdigest()[:8]
    assert key.source == str(path)


def test_key_file_gives_the_same_key_on_every_load(tmp_path):
    settings = file_settings(tmp_path)
    first = load_master_key(settings)
    content = (tmp_path / "data" / "master.key").read_bytes()
    second = load_master_key(settings)
    assert second.key_id == first.key_id
    assert second.open(first.seal(SECRET, context=CONTEXT), context=CONTEXT) == SECRET
    assert (tmp_path / "data" / "master.key").read_bytes() == content


def test_key_file_creation_leaves_no_temporary_file(tmp_path):
    load_master_key(file_settings(tmp_path))
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["master.key"]


def test_key_file_creation_is_logged_with_key_id_and_never_the_key(tmp_path):
    with capture_logs() as logs:
        key = load_master_key(file_settings(tmp_path))
        load_master_key(file_settings(tmp_path))
    assert len(logs) == 1
    assert logs[0]["key_id"] == key.key_id
    assert logs[0]["path"] == str(tmp_path / "data" / "master.key")
    raw = base64.b64decode((tmp_path / "data" / "master.key").read_bytes())
    assert_leaks_nothing(repr(logs), raw)


def test_an_existing_key_file_is_used(tmp_path):
    path = tmp_path / "data" / "master.key"
    write_key_file(path, base64.urlsafe_b64encode(KEY))
    assert load_master_key(file_settings(tmp_path)).key_id == KEY_ID


@pytest.mark.parametrize("mode", [0o400, 0o600, 0o700])
def test_key_file_open_only_to_its_owner_is_accepted(mode, tmp_path):
    path = tmp_path / "data" / "master.key"
    write_key_file(path, base64.b64encode(KEY) + b"\n", mode)
    assert load_master_key(file_settings(tmp_path)).key_id == KEY_ID


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o620, 0o602, 0o660, 0o666, 0o610])
def test_key_file_open_to_group_or_others_is_refused_naming_the_file(mode, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_key_file(tmp_path / "data" / "master.key", base64.b64encode(KEY) + b"\n", mode)
    with pytest.raises(ConfigError) as caught:
        load_master_key(Settings(data_dir=Path("data")))
    error = caught.value
    assert error.variable == "SYNAPSEX_MASTER_KEY"
    assert "data/master.key" in error.problem
    assert "SYNAPSEX_DATA_DIR" in error.problem
    assert f"mode {mode:04o}" in error.problem
    assert "chmod 600 data/master.key" in error.problem
    assert_leaks_nothing(str(error), KEY)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"not base64 at all!\n", "is not base64"),
        (base64.b64encode(bytes(16)) + b"\n", "decodes to 16 bytes"),
        (b"\xff\xfe" + bytes(42), "is not base64 text"),
        (b"A" * 10_000, "is not base64"),
    ],
)
def test_malformed_key_file_is_refused_naming_the_file(content, problem, tmp_path):
    path = tmp_path / "data" / "master.key"
    write_key_file(path, content)
    with pytest.raises(ConfigError) as caught:
        load_master_key(file_settings(tmp_path))
    error = caught.value
    assert error.variable == "SYNAPSEX_MASTER_KEY"
    assert str(path) in error.problem
    assert "malformed" in error.problem
    assert problem in error.problem
    assert "0xff" not in error.problem
    if content.strip():
        assert content.strip().decode("latin-1") not in error.problem
    assert path.read_bytes() == content  # never overwritten


def test_key_file_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / "data" / "master.key").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"Is a directory|not a regular file"):
        load_master_key(file_settings(tmp_path))


def test_key_file_in_a_data_folder_that_is_a_file_is_refused_naming_the_file(tmp_path):
    (tmp_path / "data").write_text("a file where the data folder should be")
    with pytest.raises(ConfigError, match="cannot be read") as caught:
        load_master_key(file_settings(tmp_path))
    assert str(tmp_path / "data" / "master.key") in caught.value.problem


def test_key_file_on_a_filesystem_without_hard_links_asks_for_the_variable(tmp_path, monkeypatch):
    def no_hard_links(source, target):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(master_key_module.os, "link", no_hard_links)
    with pytest.raises(ConfigError, match="cannot be created") as caught:
        load_master_key(file_settings(tmp_path))
    assert str(tmp_path / "data" / "master.key") in caught.value.problem
    assert "set SYNAPSEX_MASTER_KEY instead" in caught.value.problem
    assert list((tmp_path / "data").iterdir()) == []  # the temporary file is gone


# -- creating the key file concurrently ---------------------------------------------------------


def test_a_process_that_loses_the_creation_race_reads_the_winners_key(tmp_path, monkeypatch):
    path = tmp_path / "data" / "master.key"
    real_link = os.link

    def winner_links_first(source, target):
        # Another process names its complete file between our "not found" and our link.
        write_key_file(path, base64.b64encode(KEY) + b"\n")
        real_link(source, target)

    monkeypatch.setattr(master_key_module.os, "link", winner_links_first)
    with capture_logs() as logs:
        key = load_master_key(file_settings(tmp_path))
    assert key.key_id == KEY_ID
    assert path.read_bytes() == base64.b64encode(KEY) + b"\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["master.key"]
    assert logs == []  # only the winner announces a new key


def test_threads_creating_the_key_file_together_end_up_with_one_key(tmp_path):
    settings = file_settings(tmp_path)
    count = 16
    barrier = threading.Barrier(count)
    key_ids: list[str] = []
    errors: list[BaseException] = []

    def load() -> None:
        barrier.wait(timeout=10)
        try:
            key_ids.append(load_master_key(settings).key_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert len(key_ids) == count
    assert len(set(key_ids)) == 1
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["master.key"]


_LOAD_ON_GO = """
import sys
from pathlib import Path
from synapsex.config import Settings
from synapsex.config.master_key import load_master_key
settings = Settings(data_dir=Path(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
print("key_id", load_master_key(settings).key_id, flush=True)
"""


def test_processes_starting_together_end_up_with_one_key(tmp_path):
    data_dir = tmp_path / "data"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _LOAD_ON_GO, str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for process in processes:  # every process imported everything and waits for "go"
            assert process.stdout.readline() == "ready\n"
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        # The winner also logs its new key (structlog prints to stdout when unconfigured).
        outputs = [process.communicate(timeout=30)[0].splitlines()[-1] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [process.returncode for process in processes] == [0] * 4
    assert len(set(outputs)) == 1
    assert outputs[0] == f"key_id {load_master_key(Settings(data_dir=data_dir)).key_id}"
