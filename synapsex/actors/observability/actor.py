"""observability-service handlers (being built)."""

from __future__ import annotations

from synapsex.runtime import Actor


class ObservabilityActor(Actor, service="observability-service"):
    """Owns the telemetry events and trace spans."""
