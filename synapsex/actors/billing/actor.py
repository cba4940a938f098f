"""billing-service handlers (being built)."""

from __future__ import annotations

from synapsex.runtime import Actor


class BillingActor(Actor, service="billing-service"):
    """Owns the usage records, costs and plan limits."""
