"""Per-actor statistics and their Prometheus rendering."""

from __future__ import annotations

import pytest

from synapsex.contracts.errors import Conflict, ServiceFailure
from synapsex.runtime import Runtime
from synapsex.runtime.testing import wait_until

from .support import NO_BACKOFF, Boom, Echo, Ping, Refuse, reset_echo


@pytest.fixture(autouse=True)
def _fresh_echo():
    reset_echo()


async def test_statistics_count_handled_errors_failures_restarts_and_time(tmp_path):
    Echo.failures_left = 1
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo], policy=NO_BACKOFF) as rt:
        for i in range(3):
            await rt.ask(Ping(text=str(i)))
        with pytest.raises(Conflict):
            await rt.ask(Refuse(reason="no"))
        with pytest.raises(ServiceFailure):
            await rt.ask(Boom(text="x"))
        await wait_until(lambda: rt.statistics()[0].restarts == 1 and rt.ready)
        (stats,) = rt.statistics()
    assert stats.service == "echo-service"
    assert (stats.handled, stats.errors, stats.failed, stats.restarts) == (4, 1, 1, 1)
    assert stats.mailbox_depth == 0
    assert stats.mailbox_capacity == 1000
    assert stats.handling_seconds > 0


async def test_metrics_text_is_prometheus_exposition(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, actors=[Echo]) as rt:
        await rt.ask(Ping(text="x"))
        text = rt.metrics_text()
    assert "# TYPE synapsex_actor_handled_total counter" in text
    assert 'synapsex_actor_handled_total{service="echo-service"} 1' in text
    assert 'synapsex_actor_mailbox_depth{service="echo-service"} 0' in text
    assert 'synapsex_actor_restarts_total{service="echo-service"} 0' in text
    assert 'synapsex_actor_up{service="echo-service"} 1' in text
    assert text.endswith("\n")
