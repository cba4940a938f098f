"""observability-service settings, read from the environment when the service starts.

* ``SYNAPSEX_TELEMETRY_RETENTION`` (default ``7d``): spans and events older than this are
  pruned (``90s``, ``15m``, ``12h``, ``7d``; parsed like ``SYNAPSEX_EVENT_RETENTION``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from synapsex.config.settings import parse_duration

RETENTION_ENV = "SYNAPSEX_TELEMETRY_RETENTION"
DEFAULT_RETENTION_SECONDS = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    retention_seconds: float = DEFAULT_RETENTION_SECONDS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> TelemetrySettings:
        """Raises :class:`~synapsex.config.ConfigError` naming the variable at fault."""
        text = environ.get(RETENTION_ENV, "").strip()
        return cls(
            retention_seconds=(
                parse_duration(text, RETENTION_ENV) if text else DEFAULT_RETENTION_SECONDS
            )
        )
