"""GraphQL over HTTP: media types, status codes, limits, masking, endpoints."""

from __future__ import annotations

import io
import json

import pytest
from structlog.testing import capture_logs

from synapsex.graphql import schema as schema_module
from synapsex.graphql.context import GatewayContext
from synapsex.graphql.schema import build_schema

from .conftest import CORE_SERVICES

# the services these tests need (conftest.CORE_SERVICES)
GATEWAY_SERVICES = CORE_SERVICES

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def post(client, body, *, accept=None, key=None, raw=False):
    headers = {"Content-Type": "application/json"}
    if accept:
        headers["Accept"] = accept
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = body if raw else json.dumps(body)
    return await client.post("/graphql", data=data, headers=headers)


async def test_answers_graphql_response_json_when_the_client_accepts_it(gateway):
    response = await post(gateway.client, {"query": "{ __typename }"}, accept=GRAPHQL_RESPONSE)
    assert response.status == 200
    assert response.content_type == GRAPHQL_RESPONSE
    legacy = await post(gateway.client, {"query": "{ __typename }"})
    assert legacy.content_type == "application/json"
    body = await legacy.json()
    assert body["data"] == {"__typename": "Query"}
    assert set(body) == {"data", "extensions"}  # extensions: the request's traceId


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, "application/json"])
async def test_malformed_json_and_missing_query_are_400_with_a_graphql_error_body(gateway, accept):
    for body in ("{not json", json.dumps({"variables": {}})):
        response = await post(gateway.client, body, accept=accept, raw=True)
        assert response.status == 400
        payload = json.loads(await response.text())
        assert payload["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
        assert "data" not in payload


async def test_validation_errors_are_400_without_data_under_graphql_response_json(gateway):
    response = await post(
        gateway.client, {"query": "{ me { nope } }"}, accept=GRAPHQL_RESPONSE, key=gateway.acme.key
    )
    assert response.status == 400
    payload = json.loads(await response.text())
    assert "data" not in payload
    assert payload["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_a_body_over_one_mebibyte_is_413(gateway):
    query = "{ __typename }" + " " * (1024 * 1024)
    body = io.BytesIO(json.dumps({"query": query}).encode())
    response = await post(gateway.client, body, raw=True)
    assert response.status == 413
    assert (await response.json())["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_query_depth_aliases_and_tokens_are_limited(gateway):
    assert schema_module.MAX_DEPTH == 10
    shallow = build_schema(max_depth=2)
    result = await shallow.execute(
        "{ me { tenant { limits { members } } } }",
        context_value=GatewayContext(runtime=gateway.runtime),
    )
    (error,) = result.errors
    assert "exceeds maximum operation depth of 2" in error.message
    assert error.extensions["code"] == "INVALID_INPUT"

    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(16)) + " }"
    error = await gateway.acme.error(aliases)
    assert "aliases" in error["message"]

    tokens = "{ " + " ".join("__typename" for _ in range(2001)) + " }"
    error = await gateway.acme.error(tokens)
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert "token" in error["message"].lower()


async def test_page_size_is_at_most_100(gateway):
    error = await gateway.acme.error("{ tenantMembers(first: 101) { edges { cursor } } }")
    assert error["extensions"] == {"code": "INVALID_INPUT", "field": "first"}


async def test_queries_work_over_get_but_mutations_do_not(gateway):
    headers = {"Authorization": f"Bearer {gateway.acme.key}", "Accept": "application/json"}
    response = await gateway.client.get(
        "/graphql", params={"query": "{ me { role } }"}, headers=headers
    )
    assert (await response.json())["data"] == {"me": {"role": "OWNER"}}
    mutation = "mutation { updateTenantPlan(input: {plan: PRO}) { plan } }"
    refused = await gateway.client.get("/graphql", params={"query": mutation}, headers=headers)
    assert refused.status == 405
    assert refused.headers["Allow"] == "GET, POST"


async def test_graphiql_is_served_to_browsers(gateway):
    response = await gateway.client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status == 200
    assert "graphiql" in (await response.text()).lower()


async def test_unexpected_errors_are_masked_with_a_request_id_found_in_the_logs(
    gateway, monkeypatch
):
    async def broken(self, message):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(GatewayContext, "ask", broken)
    with capture_logs() as logs:
        response = await post(gateway.client, {"query": "{ me { role } }"}, key=gateway.acme.key)
    payload = await response.json()
    (error,) = payload["errors"]
    assert error["extensions"]["code"] == "INTERNAL"
    assert "hunter2" not in json.dumps(payload)
    request_id = error["extensions"]["requestId"]
    assert request_id == response.headers["X-Request-Id"]
    failures = [e for e in logs if e["event"] == "resolver failed"]
    assert [f["request_id"] for f in failures] == [request_id]


async def test_every_request_logs_one_line_with_operation_tenant_and_outcome(gateway):
    with capture_logs() as logs:
        await gateway.acme.data("query WhoAmI { me { role } }")
    (line,) = [e for e in logs if e["event"] == "request"]
    assert line["operation"] == "WhoAmI"
    assert line["tenant_id"] == gateway.acme.tenant_id
    assert line["outcome"] == "ok"
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert line["request_id"].startswith("req_")


async def test_health_readiness_and_metrics(gateway):
    assert (await (await gateway.client.get("/healthz")).json()) == {"status": "ok"}
    ready = await gateway.client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["notReady"] == []
    await gateway.acme.data("query WhoAmI { me { role } }")
    text = await (await gateway.client.get("/metrics")).text()
    assert 'synapsex_gateway_requests_total{operation="WhoAmI",outcome="ok"} 1' in text
    assert 'synapsex_gateway_request_duration_seconds_count{operation="WhoAmI"} 1' in text
    assert 'synapsex_actor_mailbox_depth{service="tenant-service"}' in text
    assert 'synapsex_actor_restarts_total{service="auth-service"} 0' in text


async def test_readyz_is_503_naming_the_services_that_are_not_ready(gateway):
    cell = gateway.runtime._cells["policy-service"]
    cell.request_stop()
    assert await cell.wait_stopped(5)
    response = await gateway.client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["notReady"] == ["policy-service"]
