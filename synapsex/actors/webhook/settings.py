"""webhook-service settings, read from the environment when the service starts.

* ``SYNAPSEX_WEBHOOK_RETRY_SCHEDULE`` (default ``0,5,300,1800,7200,18000,36000,36000``): the
  seconds before each attempt (the first, then after each failure), with ±20 % jitter.
* ``SYNAPSEX_WEBHOOK_DISABLE_AFTER`` (default ``5d``): a subscription whose deliveries have all
  failed this long is disabled.
* ``SYNAPSEX_WEBHOOK_ALLOW_PRIVATE_NETWORKS`` (default ``false``): ``true`` lets URLs reach
  loopback and private addresses (development and tests only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from synapsex.config import ConfigError
from synapsex.config.settings import parse_duration

from .egress import allow_private_networks

RETRY_SCHEDULE_ENV = "SYNAPSEX_WEBHOOK_RETRY_SCHEDULE"
DISABLE_AFTER_ENV = "SYNAPSEX_WEBHOOK_DISABLE_AFTER"
#: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (Svix's schedule: ~27.5 h in all)
DEFAULT_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DEFAULT_DISABLE_AFTER_SECONDS = 5 * 86_400.0


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    disable_after_seconds: float = DEFAULT_DISABLE_AFTER_SECONDS
    allow_private_networks: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WebhookSettings:
        """Raises :class:`ConfigError` naming the variable at fault."""
        schedule = DEFAULT_RETRY_SCHEDULE
        text = environ.get(RETRY_SCHEDULE_ENV, "").strip()
        if text:
            try:
                schedule = tuple(float(part) for part in text.split(","))
            except ValueError:
                raise ConfigError(
                    RETRY_SCHEDULE_ENV, "must be comma-separated seconds, e.g. 0,5,300"
                ) from None
            if any(not 0 <= s <= 7 * 86_400 for s in schedule):
                raise ConfigError(RETRY_SCHEDULE_ENV, "each wait must be 0 to 604800 seconds")
        disable = environ.get(DISABLE_AFTER_ENV, "").strip()
        return cls(
            retry_schedule=schedule,
            disable_after_seconds=(
                parse_duration(disable, DISABLE_AFTER_ENV)
                if disable
                else DEFAULT_DISABLE_AFTER_SECONDS
            ),
            allow_private_networks=allow_private_networks(environ),
        )
