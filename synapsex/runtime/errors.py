"""Errors the runtime itself raises (beyond the contract errors services answer with)."""

from __future__ import annotations

from synapsex.contracts.errors import ServiceFailure


class AskCycle(ServiceFailure):
    """An ask would wait on a service already waiting higher up in the same call chain.

    Turn-based actors would deadlock (A asks B, B asks A); the runtime fails the ask at once.
    ``chain`` lists the services from the outermost asker to the one asked again.
    """

    def __init__(self, chain: tuple[str, ...]) -> None:
        super().__init__(f"ask cycle: {' -> '.join(chain)}")
        self.chain = chain


class UnknownService(LookupError):
    """No service of that name is registered (a programming or configuration error)."""


AskCycle.__module__ = "synapsex.runtime"
UnknownService.__module__ = "synapsex.runtime"
