"""Domain events go through each service's outbox: staged with the change, relayed to the
event bus, published once, and never lost when the event bus cannot take them yet."""

from __future__ import annotations

import pytest

from synapsex.actors.event_bus.actor import EventBusActor
from synapsex.contracts.errors import Unavailable
from synapsex.contracts.events import ListEvents
from synapsex.contracts.tenant import AddMember, CreateTenant
from synapsex.runtime import Runtime
from synapsex.runtime.testing import wait_until

SERVICES = ["tenant-service", "event-bus-service"]


def runtime(tmp_path, environ, services=SERVICES) -> Runtime:
    return Runtime.embedded(data_dir=tmp_path, services=services, environ=environ)


async def topics_of(rt: Runtime, tenant_id: str) -> list[str]:
    page = await rt.ask(ListEvents(tenant_id=tenant_id))
    return [e.topic for e in page.items]


async def published(rt: Runtime, tenant_id: str, expected: list[str]) -> bool:
    return await topics_of(rt, tenant_id) == expected


async def nothing_staged(rt: Runtime) -> bool:
    return await staged(rt) == 0


async def staged(rt: Runtime) -> int:
    (db,) = [d for d in rt.databases() if d.service == "tenant-service"]
    await db.open()
    try:
        rows = await db.client().execute_query_dict("SELECT count(*) AS n FROM tenant_outbox")
    finally:
        await db.aclose()
    return rows[0]["n"]


async def test_a_change_replies_once_its_event_is_in_the_bus_and_the_outbox_is_empty(
    tmp_path, db_environ
):
    async with runtime(tmp_path, db_environ) as rt:
        tenant = await rt.ask(CreateTenant(name="Acme"))
        await rt.ask(AddMember(tenant_id=tenant.id, email="ann@acme.io", role="member"))
        assert await topics_of(rt, tenant.id) == ["tenant.created", "tenant.member.added"]
        assert await staged(rt) == 0


async def test_events_staged_without_an_event_bus_are_relayed_by_the_next_runtime_once(
    tmp_path, db_environ
):
    async with runtime(tmp_path, db_environ, services=["tenant-service"]) as rt:
        tenant = await rt.ask(CreateTenant(name="Acme"))
        await rt.ask(AddMember(tenant_id=tenant.id, email="ann@acme.io", role="member"))
        assert await staged(rt) == 2  # durable with the change, waiting for a bus
    async with runtime(tmp_path, db_environ) as rt:
        expected = ["tenant.created", "tenant.member.added"]
        await wait_until(lambda: published(rt, tenant.id, expected), deadline=10)
        # the relay deletes what it staged once the bus has it: just after, not before
        await wait_until(lambda: nothing_staged(rt), deadline=10)
    async with runtime(tmp_path, db_environ) as rt:  # relayed once, not again
        assert await topics_of(rt, tenant.id) == expected


async def test_when_the_bus_refuses_the_change_still_succeeds_and_its_event_follows(
    tmp_path, db_environ, monkeypatch
):
    refusals = []
    publish = EventBusActor.publish_events

    async def flaky(self, msg):
        if len(refusals) < 2:
            refusals.append(msg)
            raise Unavailable("event bus restarting")
        return await publish(self, msg)

    monkeypatch.setattr(EventBusActor, "publish_events", flaky)
    async with runtime(tmp_path, db_environ) as rt:
        tenant = await rt.ask(CreateTenant(name="Acme"))  # replies: the change committed
        assert await topics_of(rt, tenant.id) == []
        # the retry relays it
        await wait_until(lambda: published(rt, tenant.id, ["tenant.created"]), deadline=10)
        await wait_until(lambda: nothing_staged(rt), deadline=10)  # deleted just after
        assert len(refusals) == 2


@pytest.mark.postgres
async def test_two_runtimes_relaying_the_same_outbox_publish_each_event_once(tmp_path, pg_url):
    environ = {"DATABASE_URL": pg_url}
    async with runtime(tmp_path, environ, services=["tenant-service"]) as rt:
        tenant = await rt.ask(CreateTenant(name="Acme"))
    async with runtime(tmp_path / "a", environ) as a, runtime(tmp_path / "b", environ) as b:
        await wait_until(lambda: published(a, tenant.id, ["tenant.created"]), deadline=10)
        await wait_until(lambda: nothing_staged(b), deadline=10)
        assert await topics_of(b, tenant.id) == ["tenant.created"]
