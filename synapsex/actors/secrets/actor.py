"""secrets-service handlers (being built)."""

from __future__ import annotations

from synapsex.runtime import Actor


class SecretsActor(Actor, service="secrets-service"):
    """Owns the tenant secrets under envelope encryption."""
