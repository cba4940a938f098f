from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

import synapsex.config.logging as sx_logging
from synapsex.config import configure_logging, log_context

NOISY = ("tortoise", "aiosqlite", "asyncpg")


@pytest.fixture(autouse=True)
def fresh_logging(monkeypatch) -> Iterator[None]:
    """Each test configures from scratch; logging is put back as it was afterwards."""
    monkeypatch.setattr(sx_logging, "_configured", None)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy_levels = {name: logging.getLogger(name).level for name in NOISY}
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    yield
    structlog.reset_defaults()
    if was_configured:
        structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, noisy_level in noisy_levels.items():
        logging.getLogger(name).setLevel(noisy_level)


class _Fields:
    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    def log_fields(self) -> dict[str, Any]:
        return dict(self.fields)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_structlog_line_is_json_on_stderr_with_level_event_and_timestamp(capsys):
    configure_logging("info", "json")
    structlog.get_logger("sx.test").info("tenant created", tenant_id="ten_1")
    out = capsys.readouterr()
    assert out.out == ""
    [line] = json_lines(out.err)
    assert line["event"] == "tenant created"
    assert line["level"] == "info"
    assert line["tenant_id"] == "ten_1"
    assert line["logger"] == "sx.test"
    assert line["timestamp"].endswith("Z")  # ISO, UTC


def test_stdlib_logging_comes_out_as_json_too(capsys):
    configure_logging("info", "json")
    logging.getLogger("x").warning("disk %s", "full")
    [line] = json_lines(capsys.readouterr().err)
    assert line["event"] == "disk full"
    assert line["level"] == "warning"
    assert line["logger"] == "x"
    assert "timestamp" in line


def test_lines_below_the_level_are_dropped(capsys):
    configure_logging("warning", "json")
    structlog.get_logger("sx.test").info("quiet")
    logging.getLogger("x").info("quiet too")
    structlog.get_logger("sx.test").error("loud")
    events = [line["event"] for line in json_lines(capsys.readouterr().err)]
    assert events == ["loud"]


def test_debug_level_lets_debug_lines_through(capsys):
    configure_logging("debug", "json")
    structlog.get_logger("sx.test").debug("details")
    [line] = json_lines(capsys.readouterr().err)
    assert line["level"] == "debug"


def test_driver_loggers_stay_at_warning_even_at_debug_level(capsys):
    configure_logging("debug", "json")
    for name in NOISY:
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
    logging.getLogger("aiosqlite").debug("executing SELECT secret")
    assert capsys.readouterr().err == ""


def test_driver_loggers_follow_a_level_above_warning():
    configure_logging("error", "json")
    assert logging.getLogger("asyncpg").getEffectiveLevel() == logging.ERROR


def test_log_context_fields_are_added_to_structlog_lines(capsys):
    configure_logging("info", "json")
    token = log_context.set(_Fields(service="s", trace_id="t"))
    try:
        structlog.get_logger("sx.test").info("handled")
    finally:
        log_context.reset(token)
    [line] = json_lines(capsys.readouterr().err)
    assert line["service"] == "s"
    assert line["trace_id"] == "t"


def test_log_context_fields_are_added_to_stdlib_lines(capsys):
    configure_logging("info", "json")
    token = log_context.set(_Fields(service="s", trace_id="t"))
    try:
        logging.getLogger("x").warning("from a library")
    finally:
        log_context.reset(token)
    [line] = json_lines(capsys.readouterr().err)
    assert line["service"] == "s"
    assert line["trace_id"] == "t"


def test_fields_set_on_the_line_win_over_the_log_context(capsys):
    configure_logging("info", "json")
    token = log_context.set(_Fields(service="s", trace_id="t"))
    try:
        structlog.get_logger("sx.test").info("override", service="explicit")
    finally:
        log_context.reset(token)
    [line] = json_lines(capsys.readouterr().err)
    assert line["service"] == "explicit"
    assert line["trace_id"] == "t"


def test_lines_outside_a_log_context_have_no_context_fields(capsys):
    configure_logging("info", "json")
    structlog.get_logger("sx.test").info("idle")
    [line] = json_lines(capsys.readouterr().err)
    assert "service" not in line
    assert "trace_id" not in line


def test_log_context_is_read_when_the_line_is_written(capsys):
    configure_logging("info", "json")
    context = _Fields(service="s")
    token = log_context.set(context)
    try:
        context.fields["service"] = "changed"
        structlog.get_logger("sx.test").info("late")
    finally:
        log_context.reset(token)
    [line] = json_lines(capsys.readouterr().err)
    assert line["service"] == "changed"


def test_console_format_is_not_json(capsys):
    configure_logging("info", "console")
    structlog.get_logger("sx.test").info("hello console", answer=42)
    err = capsys.readouterr().err
    assert "hello console" in err
    assert "answer" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])


def test_configuring_again_with_the_same_values_is_a_no_op():
    configure_logging("info", "json")
    handler = logging.getLogger().handlers[0]
    configure_logging("info", "json")
    assert logging.getLogger().handlers == [handler]


def test_configuring_with_other_values_replaces_the_single_root_handler(capsys):
    configure_logging("info", "json")
    first = logging.getLogger().handlers[0]
    configure_logging("warning", "json")
    assert len(logging.getLogger().handlers) == 1
    assert logging.getLogger().handlers[0] is not first
    assert logging.getLogger().level == logging.WARNING
