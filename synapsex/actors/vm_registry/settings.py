"""vm-registry-service settings, read from the environment when the service starts.

* ``SYNAPSEX_VM_HEARTBEAT_INTERVAL`` (default ``30s``): how often a VM is expected to send a
  heartbeat (``30``, ``30s``, ``1m``; parsed like ``SYNAPSEX_EVENT_RETENTION``). A VM is STALE
  after 3 intervals without one and OFFLINE after 10 (see ``synapsex.contracts.vms``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from synapsex.config.settings import parse_duration
from synapsex.contracts.vms import DEFAULT_HEARTBEAT_INTERVAL_SECONDS

HEARTBEAT_INTERVAL_ENV = "SYNAPSEX_VM_HEARTBEAT_INTERVAL"


@dataclass(frozen=True, slots=True)
class VmSettings:
    heartbeat_interval_seconds: float = DEFAULT_HEARTBEAT_INTERVAL_SECONDS

    @property
    def heartbeat_interval_ms(self) -> int:
        return max(1, round(self.heartbeat_interval_seconds * 1000))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> VmSettings:
        """Raises :class:`~synapsex.config.ConfigError` naming the variable at fault."""
        text = environ.get(HEARTBEAT_INTERVAL_ENV, "").strip()
        return cls(
            heartbeat_interval_seconds=(
                parse_duration(text, HEARTBEAT_INTERVAL_ENV)
                if text
                else DEFAULT_HEARTBEAT_INTERVAL_SECONDS
            )
        )
