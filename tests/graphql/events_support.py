"""Shared helpers of the event bus tests: GraphQL documents, publishing, reading the stream, and
subscriptions run by a real graphql-transport-ws client (gql over websockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager, suppress
from typing import Any

import pytest
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

from synapsex.contracts.events import events_channel
from synapsex.runtime.testing import wait_until

from .conftest import Caller, Gateway, running_gateway

#: how long a test waits for something that should happen at once
DEADLINE = 5.0

EVENT_FIELDS = "id topic payload key occurredAt source traceId"

PUBLISH = f"""mutation ($input: PublishEventInput!) {{
  publishEvent(input: $input) {{ {EVENT_FIELDS} }}
}}"""

EVENTS = f"""query ($topic: String, $first: Int!, $after: String) {{
  events(topic: $topic, first: $first, after: $after) {{
    edges {{ cursor node {{ {EVENT_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""

SUBSCRIBE = f"""subscription ($topics: [String!]!, $after: ID) {{
  events(topics: $topics, after: $after) {{ {EVENT_FIELDS} }}
}}"""


async def publish(caller: Caller, topic: str, payload: Any = None, **fields: Any) -> dict:
    """Publish one event as ``caller``; returns the ``Event``."""
    data = await caller.data(PUBLISH, {"input": {"topic": topic, "payload": payload, **fields}})
    return data["publishEvent"]


async def all_events(caller: Caller, topic: str | None = None, after: str | None = None) -> list:
    """Every event of the caller's tenant (after ``after``), following every page."""
    out: list[dict] = []
    while True:
        data = await caller.data(EVENTS, {"topic": topic, "first": 100, "after": after})
        connection = data["events"]
        out.extend(edge["node"] for edge in connection["edges"])
        if not connection["pageInfo"]["hasNextPage"]:
            return out
        after = connection["pageInfo"]["endCursor"]


def ws_url(gateway: Gateway) -> str:
    return str(gateway.client.make_url("/graphql")).replace("http", "ws", 1)


def ws_client(gateway: Gateway, init_payload: dict[str, Any] | None) -> Client:
    """A gql client over graphql-transport-ws; ``init_payload`` is the connection_init's."""
    transport = WebsocketsTransport(
        url=ws_url(gateway),
        init_payload=init_payload or {},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        close_timeout=2,
    )
    return Client(transport=transport)


#: the services of :func:`live_gateway`: what the events API needs, without billing-service and
#: webhook-service, which listen to tenants' live events themselves
LIVE_SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "observability-service",
]


@pytest.fixture(name="gateway")
async def live_gateway(tmp_path, db_environ, aiohttp_client) -> AsyncIterator[Gateway]:
    """The gateway over :data:`LIVE_SERVICES`, so a listener of a tenant's live events is a
    subscription (a module that imports this fixture gets it as ``gateway``)."""
    async with running_gateway(tmp_path, db_environ, aiohttp_client, LIVE_SERVICES) as gateway:
        yield gateway


def listening(gateway: Gateway, caller: Caller) -> bool:
    """Whether anything of this process listens to the caller's tenant's live events (with
    :func:`live_gateway`: whether a subscription does)."""
    return gateway.runtime.broadcast.has_listeners(events_channel(caller.tenant_id))


class Subscription:
    """One ``events`` subscription, read by a task of its own into a queue (so a test can
    publish while it runs, and wait for items with a deadline)."""

    def __init__(self, session: Any, topics: list[str], after: str | None) -> None:
        request = gql(SUBSCRIBE)
        request.variable_values = {"topics": topics, "after": after}
        self._request = request
        self._session = session
        self._items: asyncio.Queue[dict | BaseException] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async with aclosing(self._session.subscribe(self._request)) as stream:
                async for item in stream:
                    self._items.put_nowait(item["events"])
        except Exception as exc:  # handed to the reader
            self._items.put_nowait(exc)

    async def next(self, deadline: float = DEADLINE) -> dict:
        """The next event; raises what the subscription raised (e.g. TransportQueryError)."""
        item = await asyncio.wait_for(self._items.get(), deadline)
        if isinstance(item, BaseException):
            raise item
        return item

    async def take(self, count: int, deadline: float = DEADLINE) -> list[dict]:
        return [await self.next(deadline) for _ in range(count)]

    async def until(self, event_id: str, deadline: float = DEADLINE) -> list[dict]:
        """Every event up to and including ``event_id``."""
        out: list[dict] = []
        while not out or out[-1]["id"] != event_id:
            out.append(await self.next(deadline))
        return out

    def pending(self) -> list[dict]:
        """What has arrived and not been read yet (without waiting)."""
        out = []
        while not self._items.empty():
            item = self._items.get_nowait()
            assert not isinstance(item, BaseException), item
            out.append(item)
        return out

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._task is not None:
            with suppress(asyncio.CancelledError):
                await self._task


@asynccontextmanager
async def subscribed(
    gateway: Gateway,
    caller: Caller,
    topics: list[str],
    after: str | None = None,
    *,
    live: bool = True,
) -> AsyncIterator[Subscription]:
    """A subscription as ``caller`` on a connection of its own. With ``live`` (and no
    ``after``), returns once the server listens for the tenant's events, so what is published
    next reaches it (waiting on that condition, never sleeping)."""
    async with ws_client(gateway, {"authorization": f"Bearer {caller.key}"}) as session:
        sub = Subscription(session, topics, after)
        sub.start()
        try:
            if live:
                await wait_until(lambda: listening(gateway, caller), deadline=DEADLINE)
            yield sub
        finally:
            await sub.stop()
