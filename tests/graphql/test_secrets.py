"""Secrets through the gateway: put, list (never values), versions, reveal (admins and owners by
default, narrowed by policy, every reveal audited without its value), delete, tenant isolation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from synapsex.contracts.audit import ListAuditRecords

from .conftest import CORE_SERVICES, Gateway, running_gateway

# the services these tests need
GATEWAY_SERVICES = [*CORE_SERVICES, "secrets-service"]

#: what the gateway needs for secrets (the other services are not involved)
SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "secrets-service",
]

CANARY = "sk-live-GRAPHQL-CANARY-0123456789"

PUT = """mutation ($name: String!, $value: String!, $description: String) {
  putSecret(input: {name: $name, value: $value, description: $description}) {
    id name version description createdAt createdBy
  }
}"""
SECRETS = """query ($first: Int, $after: String) {
  secrets(first: $first, after: $after) {
    edges { cursor node { id name description latestVersion createdAt updatedAt createdBy } }
    pageInfo { hasNextPage endCursor }
  }
}"""
SECRET = """query ($name: String!) { secret(name: $name) { name latestVersion description } }"""
VERSIONS = """query ($name: String!) {
  secretVersions(name: $name) { edges { node { version description createdBy } } }
}"""
REVEAL = """mutation ($name: String!, $version: Int) {
  revealSecret(input: {name: $name, version: $version}) { name version value createdAt }
}"""
DELETE = (
    """mutation ($name: String!) { deleteSecret(input: {name: $name}) { name latestVersion } }"""
)
SET_POLICY = """mutation ($action: String!, $roles: [Role!]!) {
  setPolicy(input: {action: $action, effect: DENY, roles: $roles, reason: "Secrets stay sealed."}) {
    id
  }
}"""


@pytest.fixture
async def gateway(tmp_path, db_environ, aiohttp_client) -> AsyncIterator[Gateway]:
    """The gateway with only the services these tests need."""
    async with running_gateway(tmp_path, db_environ, aiohttp_client, SERVICES) as gateway:
        yield gateway


async def put(caller, name: str, value: str = CANARY, description: str | None = None) -> dict:
    data = await caller.data(PUT, {"name": name, "value": value, "description": description})
    return data["putSecret"]


async def test_put_list_and_versions_never_show_a_value(gateway):
    acme = gateway.acme
    first = await put(acme, "OPENAI_API_KEY", description="prod")
    second = await put(acme, "OPENAI_API_KEY", CANARY + "-2")
    assert (first["version"], second["version"]) == (1, 2)
    assert second["description"] == "prod"
    assert first["createdBy"] == acme.member_id

    listed = await acme.gql(SECRETS, {"first": 10})
    (edge,) = listed["data"]["secrets"]["edges"]
    assert edge["node"]["name"] == "OPENAI_API_KEY"
    assert edge["node"]["latestVersion"] == 2
    versions = await acme.gql(VERSIONS, {"name": "OPENAI_API_KEY"})
    assert [e["node"]["version"] for e in versions["data"]["secretVersions"]["edges"]] == [1, 2]
    one = await acme.gql(SECRET, {"name": "OPENAI_API_KEY"})
    for body in (listed, versions, one, first, second):
        assert "CANARY" not in json.dumps(body)


async def test_an_owner_reveals_the_latest_or_a_given_version(gateway):
    await put(gateway.acme, "token", "v1")
    await put(gateway.acme, "token", "v2")
    latest = (await gateway.acme.data(REVEAL, {"name": "token"}))["revealSecret"]
    assert (latest["version"], latest["value"]) == (2, "v2")
    first = (await gateway.acme.data(REVEAL, {"name": "token", "version": 1}))["revealSecret"]
    assert (first["version"], first["value"]) == (1, "v1")


async def test_a_member_cannot_reveal_by_default_and_an_admin_can(gateway):
    await put(gateway.acme, "token")
    member = await gateway.key_for(gateway.acme, "member", "mia@acme.io")
    admin = await gateway.key_for(gateway.acme, "admin", "ada@acme.io")
    error = await member.error(REVEAL, {"name": "token"})
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"] == "Only admins and owners can reveal secret values."
    revealed = await admin.data(REVEAL, {"name": "token"})
    assert revealed["revealSecret"]["value"] == CANARY


async def test_members_put_their_own_secrets_but_not_versions_of_others(gateway):
    await put(gateway.acme, "owners.secret")
    member = await gateway.key_for(gateway.acme, "member", "mia@acme.io")
    mine = await put(member, "members.secret")
    assert mine["version"] == 1
    assert (await put(member, "members.secret", "again"))["version"] == 2
    error = await member.error(PUT, {"name": "owners.secret", "value": "overwrite"})
    assert error["extensions"]["code"] == "FORBIDDEN"
    delete = await member.error(DELETE, {"name": "members.secret"})
    assert delete["extensions"]["code"] == "FORBIDDEN"
    viewer = await gateway.key_for(gateway.acme, "viewer", "vic@acme.io")
    assert (await viewer.error(PUT, {"name": "viewers", "value": "x"}))["extensions"][
        "code"
    ] == "FORBIDDEN"


async def test_a_tenant_policy_can_deny_reveals_even_to_owners(gateway):
    await put(gateway.acme, "token")
    admin = await gateway.key_for(gateway.acme, "admin", "ada@acme.io")
    await gateway.acme.data(SET_POLICY, {"action": "secret.reveal", "roles": ["OWNER", "ADMIN"]})
    for caller in (gateway.acme, admin):
        error = await caller.error(REVEAL, {"name": "token"})
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["message"] == "Secrets stay sealed."
    # another tenant's owners are not affected
    await put(gateway.globex, "token", "globex value")
    assert (await gateway.globex.data(REVEAL, {"name": "token"}))["revealSecret"]["value"]


async def test_every_reveal_is_audited_without_the_value(gateway):
    await put(gateway.acme, "token")
    member = await gateway.key_for(gateway.acme, "member", "mia@acme.io")
    await gateway.acme.data(REVEAL, {"name": "token", "version": 1})
    await member.error(REVEAL, {"name": "token"})
    page = await gateway.runtime.ask(
        ListAuditRecords(tenant_id=gateway.acme.tenant_id, action="secret.reveal")
    )
    denied, allowed = page.items  # newest first
    assert (allowed.outcome, allowed.resource_id) == ("SUCCESS", "token@1")
    assert allowed.actor_member_id == gateway.acme.member_id
    assert (denied.outcome, denied.error_code) == ("DENIED", "FORBIDDEN")
    assert denied.actor_member_id == member.member_id
    everything = await gateway.runtime.ask(
        ListAuditRecords(tenant_id=gateway.acme.tenant_id, first=100)
    )
    assert "CANARY" not in repr(everything)
    assert {"secret.put", "secret.reveal"} <= {r.action for r in everything.items}


async def test_delete_removes_the_secret(gateway):
    await put(gateway.acme, "temp")
    await put(gateway.acme, "temp")
    deleted = (await gateway.acme.data(DELETE, {"name": "temp"}))["deleteSecret"]
    assert deleted == {"name": "temp", "latestVersion": 2}
    assert (await gateway.acme.error(REVEAL, {"name": "temp"}))["extensions"]["code"] == (
        "NOT_FOUND"
    )
    assert (await put(gateway.acme, "temp"))["version"] == 1


async def test_another_tenants_secret_is_not_found(gateway):
    await put(gateway.acme, "acme.only")
    for query, variables in (
        (REVEAL, {"name": "acme.only"}),
        (SECRET, {"name": "acme.only"}),
        (VERSIONS, {"name": "acme.only"}),
        (DELETE, {"name": "acme.only"}),
    ):
        error = await gateway.globex.error(query, variables)
        assert error["extensions"]["code"] == "NOT_FOUND"
    listed = await gateway.globex.data(SECRETS, {"first": 10})
    assert listed["secrets"]["edges"] == []
    assert (await put(gateway.globex, "acme.only", "globex's own"))["version"] == 1


async def test_bad_input_names_the_field(gateway):
    error = await gateway.acme.error(PUT, {"name": "has space", "value": "x"})
    assert error["extensions"] == {"code": "INVALID_INPUT", "field": "name"}
    error = await gateway.acme.error(PUT, {"name": "ok", "value": ""})
    assert error["extensions"] == {"code": "INVALID_INPUT", "field": "value"}
    error = await gateway.acme.error(REVEAL, {"name": "ok", "version": 0})
    assert error["extensions"]["field"] == "version"


async def test_unauthenticated_callers_get_nothing(gateway):
    await put(gateway.acme, "token")
    anonymous = type(gateway.acme)(gateway.client, None, "", "")
    for query, variables in ((SECRETS, {}), (REVEAL, {"name": "token"})):
        error = await anonymous.error(query, variables)
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
