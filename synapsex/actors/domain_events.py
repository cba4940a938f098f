"""Publishing a service's domain events to the event-bus-service.

A handler calls :func:`publish_domain_event` after its own change has committed; it returns once
the event is durable in the event bus, so the handler's reply never runs ahead of its event. In a
runtime started without the event bus (an embedded test running a few services), there is no one
to publish to and nothing is published.
"""

from __future__ import annotations

from typing import Any

from synapsex.contracts.events import SERVICE as EVENT_BUS
from synapsex.contracts.events import EventDraft, EventView, PublishEvents
from synapsex.runtime import Actor


async def publish_domain_event(
    actor: Actor, tenant_id: str, topic: str, payload: dict[str, Any], *, key: str | None = None
) -> EventView | None:
    """Publish one event for ``tenant_id`` with the actor's service as its source."""
    views = await publish_domain_events(actor, tenant_id, [(topic, payload, key)])
    return views[0] if views else None


async def publish_domain_events(
    actor: Actor, tenant_id: str, events: list[tuple[str, dict[str, Any], str | None]]
) -> tuple[EventView, ...]:
    """Publish ``(topic, payload, key)`` events for ``tenant_id`` atomically, in order."""
    runtime = actor.actor_runtime
    if not events or EVENT_BUS not in runtime.services:
        return ()
    drafts = tuple(EventDraft(topic=t, payload=p, key=k) for t, p, k in events)
    return await runtime.ask(
        PublishEvents(tenant_id=tenant_id, source=actor.actor_spec.service, events=drafts)
    )
