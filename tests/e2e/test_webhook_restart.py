"""A webhook delivery survives a server restart in the middle of its retry schedule.

A real ``synapsex serve`` process (private networks allowed, retries 2 s apart) delivers an event
to a receiver on 127.0.0.1 that fails the first attempt. Once that attempt is recorded, and well
before the retry is due, the server is stopped with SIGTERM; a new server on the same data folder
or database makes the retry, which succeeds: the delivery ends ``succeeded`` with both attempts,
and the receiver got the event once successfully, with the same ``webhook-id`` and a valid
signature.
"""

from __future__ import annotations

import time

import aiohttp

from synapsex.actors.webhook.egress import ALLOW_PRIVATE_ENV
from synapsex.actors.webhook.settings import RETRY_SCHEDULE_ENV
from synapsex.runtime.testing import wait_until
from tests.actors.webhook.receiver import Receiver

from .support import GraphQL, Server, bootstrap, run_cli

#: the retry comes 1.6 to 2.4 s after the first attempt: time enough to stop the server first
SCHEDULE = "0,2,2,2"
DEADLINE = 30.0

CREATE = """mutation ($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { secret subscription { id } }
}"""
PUBLISH = "mutation ($input: PublishEventInput!) { publishEvent(input: $input) { id } }"
DELIVERIES = """query ($id: ID!) {
  webhookDeliveries(subscriptionId: $id) {
    edges { node { id eventId status nextAttemptAt attempts { statusCode } } }
  }
}"""


async def delivery(gql: GraphQL, sub_id: str) -> dict | None:
    edges = (await gql(DELIVERIES, id=sub_id))["webhookDeliveries"]["edges"]
    assert len(edges) <= 1, edges
    return edges[0]["node"] if edges else None


async def wait_for_delivery(gql: GraphQL, sub_id: str, check) -> dict:
    async def matching() -> dict | None:
        node = await delivery(gql, sub_id)
        return node if node is not None and check(node) else None

    return await wait_until(matching, deadline=DEADLINE)


async def test_a_delivery_is_retried_by_the_next_server_after_a_restart(tmp_path, db_environ):
    env = {**db_environ, ALLOW_PRIVATE_ENV: "true", RETRY_SCHEDULE_ENV: SCHEDULE}
    if "DATABASE_URL" in env:  # serve refuses pending migrations on PostgreSQL
        await run_cli(tmp_path, "migrate", env=env)
    first, second = Server(tmp_path, env), Server(tmp_path, env)
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with Receiver() as receiver:
            receiver.script("/hook", 500)  # the first attempt fails; later ones succeed

            # ------------------------------------------------------------ the first server
            url = await first.start()
            key = await bootstrap(tmp_path, "Hooks", env)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                gql = GraphQL(session, url, key)
                created = (
                    await gql(
                        CREATE, input={"url": receiver.url("/hook"), "eventTypes": ["orders.#"]}
                    )
                )["createWebhookSubscription"]
                sub_id, secret = created["subscription"]["id"], created["secret"]
                event_id = (await gql(PUBLISH, input={"topic": "orders.created"}))["publishEvent"][
                    "id"
                ]
                await receiver.wait_for(1, path="/hook", deadline=DEADLINE)
                recorded = await wait_for_delivery(
                    gql, sub_id, lambda d: d["status"] == "PENDING" and d["attempts"]
                )
            assert recorded["attempts"] == [{"statusCode": 500}]
            assert recorded["nextAttemptAt"] is not None
            assert await first.stop() == 0
            stopped = time.monotonic()
            assert len(receiver.requests) == 1, "retried before the stop: nothing was proven"

            # ------------------------------------------------------------ after the restart
            url = await second.start()
            async with aiohttp.ClientSession(timeout=timeout) as session:
                gql = GraphQL(session, url, key)
                done = await wait_for_delivery(gql, sub_id, lambda d: d["status"] == "SUCCEEDED")
            assert await second.stop() == 0

        assert done["id"] == recorded["id"]
        assert done["eventId"] == event_id
        assert [a["statusCode"] for a in done["attempts"]] == [500, 200]
        failed, retried = receiver.requests
        assert retried.mono > stopped  # made by the second server
        assert [r.answer.status for r in receiver.requests] == [500, 200]
        assert failed.webhook_id == retried.webhook_id == event_id
        assert retried.body == failed.body
        assert retried.verify(secret)["id"] == event_id
        assert not first.errors(), first.errors()
        assert not second.errors(), second.errors()
    finally:
        await first.aclose()
        await second.aclose()
