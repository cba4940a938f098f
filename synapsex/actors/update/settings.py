"""update-service settings, read from the environment when the service starts.

* ``SYNAPSEX_ROLLOUT_FAILURE_THRESHOLD`` (default ``0.2``): a running rollout halts by itself
  when more than this share of the VMs given its release report ``FAILED`` or are ``OFFLINE``.
* ``SYNAPSEX_ROLLOUT_MIN_SAMPLE`` (default ``3``): ... once at least this many VMs were given it
  (one failure among the first two is not yet a trend).
* ``SYNAPSEX_ROLLOUT_SWEEP_INTERVAL`` (default ``15s``): how often every active rollout is
  evaluated without a heartbeat asking for it (VMs go ``OFFLINE`` by sending nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from synapsex.config import ConfigError
from synapsex.config.settings import parse_duration

FAILURE_THRESHOLD_ENV = "SYNAPSEX_ROLLOUT_FAILURE_THRESHOLD"
MIN_SAMPLE_ENV = "SYNAPSEX_ROLLOUT_MIN_SAMPLE"
SWEEP_INTERVAL_ENV = "SYNAPSEX_ROLLOUT_SWEEP_INTERVAL"

DEFAULT_FAILURE_THRESHOLD = 0.2
DEFAULT_MIN_SAMPLE = 3
DEFAULT_SWEEP_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class UpdateSettings:
    failure_threshold: float = DEFAULT_FAILURE_THRESHOLD
    min_sample: int = DEFAULT_MIN_SAMPLE
    sweep_seconds: float = DEFAULT_SWEEP_SECONDS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> UpdateSettings:
        """Raises :class:`ConfigError` naming the variable at fault."""
        threshold = DEFAULT_FAILURE_THRESHOLD
        text = environ.get(FAILURE_THRESHOLD_ENV, "").strip()
        if text:
            try:
                threshold = float(text)
            except ValueError:
                raise ConfigError(FAILURE_THRESHOLD_ENV, "must be a number such as 0.2") from None
            if not 0 <= threshold < 1:
                raise ConfigError(FAILURE_THRESHOLD_ENV, "must be at least 0 and below 1")
        sample = DEFAULT_MIN_SAMPLE
        text = environ.get(MIN_SAMPLE_ENV, "").strip()
        if text:
            try:
                sample = int(text)
            except ValueError:
                raise ConfigError(MIN_SAMPLE_ENV, "must be a whole number such as 3") from None
            if sample < 1:
                raise ConfigError(MIN_SAMPLE_ENV, "must be at least 1")
        sweep = environ.get(SWEEP_INTERVAL_ENV, "").strip()
        return cls(
            failure_threshold=threshold,
            min_sample=sample,
            sweep_seconds=(
                parse_duration(sweep, SWEEP_INTERVAL_ENV) if sweep else DEFAULT_SWEEP_SECONDS
            ),
        )
