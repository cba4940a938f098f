"""Releases through the gateway: create and list, semantic versions unique per component by
precedence, validation naming the field, roles, the release.created event, tenant isolation."""

from __future__ import annotations

import pytest

from .conftest import running_gateway

SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
    "update-service",
]
SHA = "0f" * 32

CREATE = """mutation ($input: CreateReleaseInput!) {
  createRelease(input: $input) { id component version notes url sha256 createdAt }
}"""
RELEASES = """query ($component: ReleaseComponent, $after: String) {
  releases(component: $component, first: 2, after: $after) {
    edges { node { id version component } } pageInfo { hasNextPage endCursor }
  }
}"""
RELEASE = "query ($id: ID!) { release(id: $id) { id version } }"
EVENTS = 'query { events(topic: "release.created", first: 10) { edges { node { payload } } } }'


def release_input(version: str, component: str = "AGENT", **kw) -> dict:
    return {
        "component": component,
        "version": version,
        "url": f"https://dl.example.com/{component.lower()}-{version}.tar.gz",
        "sha256": SHA,
        **kw,
    }


@pytest.fixture
async def gw(tmp_path, db_environ, aiohttp_client):
    async with running_gateway(tmp_path, db_environ, aiohttp_client, SERVICES) as gateway:
        yield gateway


async def test_releases_are_created_listed_and_unique_per_component(gw):
    acme = gw.acme
    made = (await acme.data(CREATE, {"input": release_input("1.2.0", notes="first")}))[
        "createRelease"
    ]
    assert (made["component"], made["version"], made["notes"], made["sha256"]) == (
        "AGENT",
        "1.2.0",
        "first",
        SHA,
    )
    await acme.data(CREATE, {"input": release_input("1.10.0")})
    await acme.data(CREATE, {"input": release_input("1.2.0", "RUNTIME")})
    taken = await acme.error(CREATE, {"input": release_input("1.2.0+build.9")})
    assert (taken["extensions"]["code"], taken["extensions"]["field"]) == ("CONFLICT", "version")

    page = (await acme.data(RELEASES, {"component": "AGENT"}))["releases"]
    assert [e["node"]["version"] for e in page["edges"]] == ["1.2.0", "1.10.0"]
    assert page["pageInfo"]["hasNextPage"] is False
    events = (await acme.data(EVENTS))["events"]["edges"]
    assert {e["node"]["payload"]["version"] for e in events} == {"1.2.0", "1.10.0"}


async def test_release_validation_names_the_field(gw):
    for fields, field in [
        ({"version": "1.2"}, "version"),
        ({"version": "01.2.3"}, "version"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"sha256": "abc"}, "sha256"),
    ]:
        error = await gw.acme.error(CREATE, {"input": {**release_input("1.0.0"), **fields}})
        assert error["extensions"]["code"] == "INVALID_INPUT"
        assert error["extensions"]["field"] == field


async def test_releases_are_tenant_isolated_and_viewers_cannot_create(gw):
    made = (await gw.acme.data(CREATE, {"input": release_input("2.0.0")}))["createRelease"]
    missing = await gw.globex.error(RELEASE, {"id": made["id"]})
    assert missing["extensions"]["code"] == "NOT_FOUND"
    assert (await gw.globex.data(RELEASES))["releases"]["edges"] == []
    # the same version is free in another tenant
    await gw.globex.data(CREATE, {"input": release_input("2.0.0")})
    viewer = await gw.key_for(gw.acme, "viewer", "viewer@acme.io")
    denied = await viewer.error(CREATE, {"input": release_input("2.1.0")})
    assert denied["extensions"]["code"] == "FORBIDDEN"
