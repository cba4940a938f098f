"""Services by name, from the ``synapsex.services`` entry points.

The runtime never imports ``synapsex.actors``: the package's metadata (the composition root in
``pyproject.toml``) maps each service name to its actor class, and a third-party package can add
services the same way.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from synapsex.runtime.errors import UnknownService

if TYPE_CHECKING:
    from synapsex.runtime.actor import Actor

GROUP = "synapsex.services"


def service_names() -> list[str]:
    """Every registered service, in a stable order."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load_service(name: str) -> type[Actor]:
    """The actor class of one registered service."""
    for ep in entry_points(group=GROUP, name=name):
        actor_cls = ep.load()
        if actor_cls.actor_spec.service != name:
            raise UnknownService(f"entry point {name!r} loads {actor_cls.actor_spec.service!r}")
        return actor_cls
    raise UnknownService(
        f"no service named {name!r}; registered: {', '.join(service_names()) or 'none'}"
    )


def load_services(names: list[str] | None = None) -> list[type[Actor]]:
    """The actor classes of ``names`` (all registered services when ``None``)."""
    return [load_service(n) for n in (names if names is not None else service_names())]
