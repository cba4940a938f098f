"""WebSockets: graphql-transport-ws, legacy graphql-ws, auth at connection_init, origins, pings."""

from __future__ import annotations

import aiohttp
import pytest

from synapsex.graphql import GatewayConfig, create_app

from .conftest import CORE_SERVICES

# the services these tests need (conftest.CORE_SERVICES)
GATEWAY_SERVICES = CORE_SERVICES

ME = "{ me { role tenant { name } } }"


async def transport_ws(client, payload):
    ws = await client.ws_connect("/graphql", protocols=["graphql-transport-ws"])
    await ws.send_json({"type": "connection_init", "payload": payload})
    return ws


async def test_graphql_transport_ws_authenticates_at_connection_init(gateway):
    ws = await transport_ws(gateway.client, {"authorization": f"Bearer {gateway.acme.key}"})
    assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
    await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": ME}})
    message = await ws.receive_json(timeout=5)
    assert message == {
        "id": "1",
        "type": "next",
        "payload": {"data": {"me": {"role": "OWNER", "tenant": {"name": "Acme"}}}},
    }
    assert (await ws.receive_json(timeout=5)) == {"id": "1", "type": "complete"}
    await ws.close()


@pytest.mark.parametrize("authorization", [None, "Bearer sx_wrong", "Basic abc"])
async def test_graphql_transport_ws_rejects_a_bad_key_with_4403(gateway, authorization):
    payload = {"authorization": authorization} if authorization else {}
    ws = await transport_ws(gateway.client, payload)
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 4403


async def test_a_revoked_key_cannot_open_a_socket(gateway):
    other = await gateway.key_for(gateway.acme, "admin", "ws@acme.io")
    keys = await other.data("{ apiKeys { edges { node { id name } } } }")
    key_id = next(e["node"]["id"] for e in keys["apiKeys"]["edges"] if e["node"]["name"] == "admin")
    await gateway.acme.data(
        "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { id } }", {"id": key_id}
    )
    ws = await transport_ws(gateway.client, {"authorization": f"Bearer {other.key}"})
    await ws.receive(timeout=5)
    assert ws.close_code == 4403


async def test_legacy_graphql_ws_authenticates_and_carries_subscriptions_only(gateway):
    ws = await gateway.client.ws_connect("/graphql", protocols=["graphql-ws"])
    await ws.send_json(
        {"type": "connection_init", "payload": {"authorization": f"Bearer {gateway.globex.key}"}}
    )
    assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
    await ws.send_json({"id": "1", "type": "start", "payload": {"query": ME}})
    while (message := await ws.receive_json(timeout=5))["type"] == "ka":
        pass
    assert message["type"] == "error"
    assert message["payload"]["extensions"] == {"code": "INVALID_INPUT"}
    assert "query operations are not allowed" in message["payload"]["message"]
    await ws.close()


async def test_legacy_graphql_ws_rejects_a_bad_key(gateway):
    ws = await gateway.client.ws_connect("/graphql", protocols=["graphql-ws"])
    await ws.send_json({"type": "connection_init", "payload": {"authorization": "Bearer nope"}})
    message = await ws.receive_json(timeout=5)
    assert message["type"] == "connection_error"
    assert message["payload"]["code"] == "UNAUTHENTICATED"


async def test_browser_origins_must_be_allowed(gateway, aiohttp_client):
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await gateway.client.ws_connect(
            "/graphql", protocols=["graphql-transport-ws"], origin="https://evil.example"
        )
    assert err.value.status == 403
    config = GatewayConfig(allowed_origins=("https://chat.example",))
    allowed = await aiohttp_client(create_app(gateway.runtime, config))
    ws = await allowed.ws_connect(
        "/graphql", protocols=["graphql-transport-ws"], origin="https://chat.example"
    )
    await ws.send_json(
        {"type": "connection_init", "payload": {"authorization": f"Bearer {gateway.acme.key}"}}
    )
    assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
    await ws.close()


async def test_the_server_pings_idle_sockets(gateway, aiohttp_client):
    fast = await aiohttp_client(create_app(gateway.runtime, GatewayConfig(heartbeat_seconds=0.1)))
    ws = await fast.ws_connect("/graphql", protocols=["graphql-transport-ws"], autoping=False)
    await ws.send_json(
        {"type": "connection_init", "payload": {"authorization": f"Bearer {gateway.acme.key}"}}
    )
    assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.PING
    await ws.pong(message.data)
    await ws.close()
