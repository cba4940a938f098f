"""Settings read from the environment, validated once at start.

| variable | default | meaning |
| --- | --- | --- |
| ``SYNAPSEX_DATA_DIR`` | ``./data`` | SQLite files, key files and other local state |
| ``DATABASE_URL`` | (unset) | one database for every service (a schema each on PostgreSQL) |
| ``<SLUG>_DATABASE_URL`` | (unset) | one service's database, e.g. ``MCP_ROUTER_DATABASE_URL`` |
| ``SYNAPSEX_LOG_LEVEL`` | ``info`` | ``debug``, ``info``, ``warning``, ``error`` |
| ``SYNAPSEX_LOG_FORMAT`` | ``console`` on a terminal, else ``json`` | ``json`` or ``console`` |
| ``SYNAPSEX_MASTER_KEY`` | ``master.key`` in the data folder | base64 of 32 bytes (AES-256-GCM) |
| ``SYNAPSEX_EVENT_RETENTION`` | ``7d`` | how long acked events are kept (``90s``, ``12h``) |
| ``SYNAPSEX_ARTIFACT_ROOT`` | ``artifacts`` in the data folder | where artifact content is stored |
| ``SYNAPSEX_ARTIFACT_MAX_BYTES`` | ``25MiB`` | the largest artifact (``26214400``, ``1GiB``) |
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from synapsex.config.database import DatabaseConfig, resolve_database
from synapsex.config.errors import ConfigError

LogFormat = Literal["json", "console"]
_LEVELS = ("debug", "info", "warning", "error", "critical")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_EVENT_RETENTION_SECONDS = 7 * 86400
#: the largest artifact by default (``contracts.workspaces.DEFAULT_ARTIFACT_MAX_BYTES``)
DEFAULT_ARTIFACT_MAX_BYTES = 25 * 1024 * 1024
#: the most ``SYNAPSEX_ARTIFACT_MAX_BYTES`` may say (an upload is held in memory, base64 too)
MAX_ARTIFACT_MAX_BYTES = 1024**3
_SIZE_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_duration(text: str, variable: str) -> float:
    """``"90"``, ``"90s"``, ``"15m"``, ``"12h"``, ``"7d"`` → seconds (> 0)."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ConfigError(
            variable, f"{text!r} is not a duration such as 90s, 15m, 12h or 7d"
        ) from None
    if not seconds > 0:
        raise ConfigError(variable, "must be more than zero")
    return seconds


_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def parse_flag(environ: Mapping[str, str], variable: str) -> bool:
    """A switch off by default: ``true``/``1``/``yes`` → ``True``; unset, empty,
    ``false``/``0``/``no`` → ``False`` (any case); :class:`ConfigError` for anything else, so a
    typo never silently turns a switch on or off."""
    value = environ.get(variable, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE or not value:
        return False
    raise ConfigError(variable, f"{value!r} is not one of true, 1, yes, false, 0, no")


def parse_size(text: str, variable: str, *, maximum: int) -> int:
    """``"26214400"``, ``"512KiB"``, ``"25MiB"``, ``"1GiB"`` → bytes (1 to ``maximum``)."""
    value = text.strip().lower().replace(" ", "")
    number = value.rstrip("kmgib")
    unit = _SIZE_UNITS.get(value[len(number) :])
    if unit is None or not number.isdigit():
        raise ConfigError(variable, f"{text!r} is not a size such as 26214400, 512KiB or 25MiB")
    size = int(number) * unit
    if not 1 <= size <= maximum:
        raise ConfigError(variable, f"must be from 1 byte to {maximum} bytes")
    return size


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything SynapseX reads from its environment."""

    data_dir: Path = Path("data")
    log_level: str = "info"
    log_format: LogFormat = "json"
    #: acked events older than this are pruned by the event bus
    event_retention_seconds: float = DEFAULT_EVENT_RETENTION_SECONDS
    #: where artifact content is stored; ``None``: ``artifacts`` in the data folder
    artifact_root: Path | None = None
    #: the largest artifact, in bytes
    artifact_max_bytes: int = DEFAULT_ARTIFACT_MAX_BYTES
    #: the raw environment the database URLs are resolved from
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the settings; raises :class:`ConfigError` naming the variable."""
        env = dict(os.environ if environ is None else environ)
        level = env.get("SYNAPSEX_LOG_LEVEL", "info").strip().lower() or "info"
        if level not in _LEVELS:
            raise ConfigError("SYNAPSEX_LOG_LEVEL", f"{level!r} is not one of {', '.join(_LEVELS)}")
        default_format = "console" if sys.stderr.isatty() else "json"
        fmt = env.get("SYNAPSEX_LOG_FORMAT", default_format).strip().lower() or default_format
        if fmt not in ("json", "console"):
            raise ConfigError("SYNAPSEX_LOG_FORMAT", f"{fmt!r} is not 'json' or 'console'")
        data_dir = env.get("SYNAPSEX_DATA_DIR", "").strip() or "data"
        retention = env.get("SYNAPSEX_EVENT_RETENTION", "").strip()
        artifact_root = env.get("SYNAPSEX_ARTIFACT_ROOT", "").strip()
        artifact_max = env.get("SYNAPSEX_ARTIFACT_MAX_BYTES", "").strip()
        return cls(
            data_dir=Path(data_dir),
            log_level=level,
            log_format=fmt,
            event_retention_seconds=(
                parse_duration(retention, "SYNAPSEX_EVENT_RETENTION")
                if retention
                else DEFAULT_EVENT_RETENTION_SECONDS
            ),
            artifact_root=Path(artifact_root) if artifact_root else None,
            artifact_max_bytes=(
                parse_size(
                    artifact_max, "SYNAPSEX_ARTIFACT_MAX_BYTES", maximum=MAX_ARTIFACT_MAX_BYTES
                )
                if artifact_max
                else DEFAULT_ARTIFACT_MAX_BYTES
            ),
            environ=env,
        )

    def with_data_dir(self, data_dir: Path | str | None) -> Settings:
        """A copy with another data folder (``--data-dir``); ``None`` keeps this one."""
        return self if data_dir is None else replace(self, data_dir=Path(data_dir))

    @property
    def artifact_dir(self) -> Path:
        """Where artifact content lives: ``SYNAPSEX_ARTIFACT_ROOT``, else the data folder's
        ``artifacts``."""
        return self.artifact_root or self.data_dir / "artifacts"

    def database(self, service: str) -> DatabaseConfig:
        """The database of one service (see :mod:`synapsex.config.database`)."""
        return resolve_database(service, self.environ, self.data_dir)
