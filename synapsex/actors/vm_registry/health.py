"""A VM's health from its heartbeat times (epoch milliseconds on the database's clock).

With ``interval`` the configured heartbeat interval and ``age`` the time since the last
heartbeat:

* ``HEALTHY``: ``age <= STALE_AFTER_INTERVALS * interval`` (3);
* ``STALE``: older than that, ``age <= OFFLINE_AFTER_INTERVALS * interval`` (10);
* ``OFFLINE``: older still.

A VM that never sent a heartbeat is ``STALE`` (registered, not yet heard from) until
``OFFLINE_AFTER_INTERVALS`` intervals after its registration, then ``OFFLINE``. The actor's
health filter (``vms(health:)``, ``ListVmFleet(health=)``) is the same rule written as
conditions on the columns.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from synapsex.contracts.vms import OFFLINE_AFTER_INTERVALS, STALE_AFTER_INTERVALS


def health_of(now_ms: int, last_heartbeat_ms: int | None, created_ms: int, interval_ms: int) -> str:
    if last_heartbeat_ms is None:
        never = now_ms - created_ms > OFFLINE_AFTER_INTERVALS * interval_ms
        return "OFFLINE" if never else "STALE"
    age = now_ms - last_heartbeat_ms
    if age <= STALE_AFTER_INTERVALS * interval_ms:
        return "HEALTHY"
    if age <= OFFLINE_AFTER_INTERVALS * interval_ms:
        return "STALE"
    return "OFFLINE"


def ms_to_datetime(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ms // 1000, tz=UTC) + timedelta(milliseconds=ms % 1000)
