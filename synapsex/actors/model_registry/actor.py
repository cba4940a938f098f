"""model-registry-service handlers (being built)."""

from __future__ import annotations

from synapsex.runtime import Actor


class ModelRegistryActor(Actor, service="model-registry-service"):
    """Owns the model catalog with effective-dated prices."""
