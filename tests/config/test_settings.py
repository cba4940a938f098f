from __future__ import annotations

import dataclasses
import io
import sys
from pathlib import Path

import pytest

from synapsex.config import ConfigError, Settings


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def stderr_is_a_terminal(monkeypatch, tty: bool) -> None:
    # Called in the test body: pytest's own capture replaces sys.stderr between phases.
    monkeypatch.setattr(sys, "stderr", _Terminal() if tty else io.StringIO())


def test_defaults_are_data_dir_data_level_info_and_json():
    settings = Settings()
    assert settings.data_dir == Path("data")
    assert settings.log_level == "info"
    assert settings.log_format == "json"
    assert dict(settings.environ) == {}


def test_empty_environment_gives_the_defaults(monkeypatch):
    stderr_is_a_terminal(monkeypatch, False)
    settings = Settings.from_env({})
    assert settings.data_dir == Path("data")
    assert settings.log_level == "info"
    assert settings.log_format == "json"


def test_log_format_defaults_to_console_on_a_terminal(monkeypatch):
    stderr_is_a_terminal(monkeypatch, True)
    assert Settings.from_env({}).log_format == "console"


def test_log_format_defaults_to_json_off_a_terminal(monkeypatch):
    stderr_is_a_terminal(monkeypatch, False)
    assert Settings.from_env({}).log_format == "json"


def test_explicit_log_format_wins_over_the_terminal_default(monkeypatch):
    stderr_is_a_terminal(monkeypatch, True)
    assert Settings.from_env({"SYNAPSEX_LOG_FORMAT": "json"}).log_format == "json"


def test_values_are_trimmed_and_case_insensitive():
    settings = Settings.from_env(
        {
            "SYNAPSEX_LOG_LEVEL": " WARNING ",
            "SYNAPSEX_LOG_FORMAT": " Console ",
            "SYNAPSEX_DATA_DIR": " /srv/synapsex ",
        }
    )
    assert settings.log_level == "warning"
    assert settings.log_format == "console"
    assert settings.data_dir == Path("/srv/synapsex")


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "critical"])
def test_every_log_level_is_accepted(level):
    assert Settings.from_env({"SYNAPSEX_LOG_LEVEL": level}).log_level == level


def test_blank_values_fall_back_to_the_defaults(monkeypatch):
    stderr_is_a_terminal(monkeypatch, False)
    settings = Settings.from_env(
        {"SYNAPSEX_LOG_LEVEL": "  ", "SYNAPSEX_LOG_FORMAT": "", "SYNAPSEX_DATA_DIR": " "}
    )
    assert settings.log_level == "info"
    assert settings.log_format == "json"
    assert settings.data_dir == Path("data")


@pytest.mark.parametrize("value", ["verbose", "warn", "0"])
def test_unknown_log_level_names_the_variable(value):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"SYNAPSEX_LOG_LEVEL": value})
    assert err.value.variable == "SYNAPSEX_LOG_LEVEL"
    assert str(err.value).startswith("SYNAPSEX_LOG_LEVEL: ")
    assert repr(value) in str(err.value)


@pytest.mark.parametrize("value", ["xml", "text", "pretty"])
def test_unknown_log_format_names_the_variable(value):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"SYNAPSEX_LOG_FORMAT": value})
    assert err.value.variable == "SYNAPSEX_LOG_FORMAT"
    assert str(err.value).startswith("SYNAPSEX_LOG_FORMAT: ")
    assert repr(value) in str(err.value)


def test_from_env_without_argument_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("SYNAPSEX_LOG_LEVEL", "error")
    monkeypatch.setenv("SYNAPSEX_DATA_DIR", "/tmp/sx-from-env")
    settings = Settings.from_env()
    assert settings.log_level == "error"
    assert settings.data_dir == Path("/tmp/sx-from-env")


def test_a_given_environment_ignores_the_process_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNAPSEX_LOG_LEVEL", "error")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///./process.db")
    settings = Settings.from_env({}).with_data_dir(tmp_path)
    assert settings.log_level == "info"
    assert settings.database("tenant-service").source is None


def test_settings_keep_a_copy_of_the_environment():
    env = {"DATABASE_URL": "sqlite:///./before.db"}
    settings = Settings.from_env(env)
    env["DATABASE_URL"] = "sqlite:///./after.db"
    assert settings.database("tenant-service").credentials["file_path"] == "./before.db"


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().log_level = "debug"  # type: ignore[misc]


def test_with_data_dir_returns_a_copy_with_another_folder(tmp_path):
    original = Settings.from_env({"SYNAPSEX_LOG_LEVEL": "debug", "DATABASE_URL": "x"})
    moved = original.with_data_dir(str(tmp_path))
    assert moved.data_dir == tmp_path
    assert isinstance(moved.data_dir, Path)
    assert moved.log_level == "debug"
    assert moved.environ == original.environ
    assert original.data_dir == Path("data")


def test_with_data_dir_none_keeps_the_settings():
    settings = Settings()
    assert settings.with_data_dir(None) is settings


def test_database_resolves_against_the_environment_given(tmp_path):
    settings = Settings.from_env(
        {
            "TENANT_DATABASE_URL": "sqlite:///./tenant-own.db",
            "DATABASE_URL": "postgresql://u:pw@pg/app",
        }
    ).with_data_dir(tmp_path)
    tenant = settings.database("tenant-service")
    assert tenant.source == "TENANT_DATABASE_URL"
    assert tenant.credentials["file_path"] == "./tenant-own.db"
    auth = settings.database("auth-service")
    assert auth.source == "DATABASE_URL"
    assert auth.engine == "postgres"
    assert auth.schema == "auth"


def test_database_defaults_to_a_file_in_the_data_dir(tmp_path):
    db = Settings.from_env({}).with_data_dir(tmp_path).database("auth-service")
    assert db.source is None
    assert db.credentials["file_path"] == str(tmp_path / "auth.db")


def test_database_errors_name_the_variable():
    settings = Settings.from_env({"AUTH_DATABASE_URL": "mysql://h/db"})
    with pytest.raises(ConfigError) as err:
        settings.database("auth-service")
    assert err.value.variable == "AUTH_DATABASE_URL"


def test_repr_does_not_show_the_environment():
    settings = Settings.from_env({"DATABASE_URL": "postgresql://u:s3cretpw@pg/app"})
    assert "s3cretpw" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("12h", 43_200.0), ("7d", 604_800.0)],
)
def test_event_retention_reads_durations(text, seconds):
    settings = Settings.from_env({"SYNAPSEX_EVENT_RETENTION": text})
    assert settings.event_retention_seconds == seconds


def test_event_retention_defaults_to_seven_days():
    assert Settings.from_env({}).event_retention_seconds == 7 * 86_400


@pytest.mark.parametrize("text", ["soon", "0", "-5m", "7w"])
def test_event_retention_refuses_what_is_not_a_positive_duration(text):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SYNAPSEX_EVENT_RETENTION": text})
    assert caught.value.variable == "SYNAPSEX_EVENT_RETENTION"
