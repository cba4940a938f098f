"""The gateway client against a stand-in gateway: the caller's key and traceparent are sent,
GraphQL errors keep their code and field, and a gateway that is slow, unreachable or answers
something that is not GraphQL gives a clear error that never contains the key."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from synapsex.opsmcp.gateway_client import GatewayClient, GatewayError, check_gateway_url

KEY = "sx_test_secret_key"


@pytest.fixture
async def stand_in(aiohttp_server):
    seen: list[dict[str, str]] = []
    release = asyncio.Event()

    async def graphql(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        body = await request.json()
        if "slow" in body["query"]:
            await release.wait()
        if "html" in body["query"]:
            return web.Response(status=502, text="<html>Bad gateway</html>")
        if "bad" in body["query"]:
            error = {
                "message": "must be 1 to 255 characters",
                "extensions": {"code": "INVALID_INPUT", "field": "topic"},
            }
            return web.json_response({"data": None, "errors": [error]})
        return web.json_response({"data": {"echo": body["variables"]}})

    async def download(request: web.Request) -> web.StreamResponse:
        if request.match_info["id"] == "gone":
            error = {"message": "no artifact gone", "extensions": {"code": "NOT_FOUND"}}
            return web.json_response({"errors": [error]}, status=404)
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(8):
            await response.write(b"x" * 100_000)
        return response

    app = web.Application()
    app.router.add_post("/graphql", graphql)
    app.router.add_get("/artifacts/{id}", download)
    server = await aiohttp_server(app)
    yield server, seen
    release.set()


async def test_the_callers_key_and_trace_are_sent_and_errors_keep_their_code(stand_in):
    server, seen = stand_in
    client = GatewayClient(str(server.make_url("/graphql")), timeout=5)
    try:
        data = await client.execute("{ echo }", {"a": 1}, key=KEY, traceparent="00-ab-cd-01")
        assert data == {"echo": {"a": 1}}
        assert seen[-1]["Authorization"] == f"Bearer {KEY}"
        assert seen[-1]["traceparent"] == "00-ab-cd-01"

        with pytest.raises(GatewayError) as refused:
            await client.execute("{ bad }", key="sx_other")
        assert (refused.value.code, refused.value.field) == ("INVALID_INPUT", "topic")
        described = refused.value.describe()
        assert described == "INVALID_INPUT (field topic): must be 1 to 255 characters"
        assert seen[-1]["Authorization"] == "Bearer sx_other"  # no key is remembered

        with pytest.raises(GatewayError) as html:
            await client.execute("{ html }", key=KEY)
        assert html.value.code == "UNAVAILABLE"
        assert "HTTP 502 without JSON" in html.value.message

        prefix, truncated = await client.read_prefix("/artifacts/a", key=KEY, limit=250_000)
        assert (len(prefix), truncated) == (250_000, True)
        whole, truncated = await client.read_prefix("/artifacts/a", key=KEY, limit=800_000)
        assert (len(whole), truncated) == (800_000, False)
        with pytest.raises(GatewayError) as gone:
            await client.read_prefix("/artifacts/gone", key=KEY, limit=10)
        assert (gone.value.code, gone.value.message) == ("NOT_FOUND", "no artifact gone")
    finally:
        await client.aclose()


async def test_a_slow_or_absent_gateway_is_a_clear_error_without_the_key(stand_in):
    server, _ = stand_in
    slow = GatewayClient(str(server.make_url("/graphql")), timeout=0.3)
    absent = GatewayClient("http://127.0.0.1:9", timeout=5)
    try:
        with pytest.raises(GatewayError) as timed_out:
            await slow.execute("{ slow }", key=KEY)
        assert timed_out.value.describe() == "TIMEOUT: the gateway did not answer within 0.3 s"
        with pytest.raises(GatewayError) as unreachable:
            await absent.execute("{ echo }", key=KEY)
        assert unreachable.value.code == "UNAVAILABLE"
        assert "cannot reach the gateway at http://127.0.0.1:9/graphql" in str(unreachable.value)
        for error in (timed_out.value, unreachable.value):
            assert KEY not in str(error)
    finally:
        await slow.aclose()
        await absent.aclose()


def test_gateway_urls():
    assert check_gateway_url("http://gw:8080") == "http://gw:8080/graphql"
    assert check_gateway_url(" https://gw.example.com/api/graphql ") == (
        "https://gw.example.com/api/graphql"
    )
    for bad in ("gw:8080", "ftp://gw/graphql", "http:///graphql"):
        with pytest.raises(ValueError, match="is not an http"):
            check_gateway_url(bad)
