"""End-to-end fixtures: the real gateway app on a real port (pytest-aiohttp), every service
on SQLite or PostgreSQL, and two bootstrapped tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from synapsex.contracts.auth import CreateApiKey
from synapsex.contracts.tenant import AddMember, BootstrapTenant
from synapsex.graphql import GatewayConfig, create_app
from synapsex.runtime import Runtime


@dataclass
class Caller:
    """One API key of one tenant, and a way to send GraphQL as that key."""

    client: TestClient
    key: str | None
    tenant_id: str
    member_id: str

    async def gql(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> dict:
        """POST a GraphQL request; returns the JSON body (asserting HTTP 200)."""
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers, **kw
        )
        assert response.status == 200, await response.text()
        return await response.json()

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict:
        """The ``data`` of a request that must not fail."""
        body = await self.gql(query, variables)
        assert "errors" not in body, body
        return body["data"]

    async def error(self, query: str, variables: dict[str, Any] | None = None) -> dict:
        """The single error of a request that must fail."""
        body = await self.gql(query, variables)
        assert len(body.get("errors", [])) == 1, body
        return body["errors"][0]


@dataclass
class Gateway:
    runtime: Runtime
    client: TestClient
    acme: Caller  # owner of tenant Acme
    globex: Caller  # owner of tenant Globex

    async def key_for(self, owner: Caller, role: str, email: str) -> Caller:
        """A new member of ``owner``'s tenant with ``role``, and a key of theirs."""
        member = await self.runtime.ask(
            AddMember(tenant_id=owner.tenant_id, email=email, role=role)
        )
        created = await self.runtime.ask(
            CreateApiKey(tenant_id=owner.tenant_id, member_id=member.id, role=role, name=role)
        )
        return Caller(self.client, created.key, owner.tenant_id, member.id)


async def bootstrap(runtime: Runtime, client: TestClient, name: str, plan: str) -> Caller:
    created = await runtime.ask(
        BootstrapTenant(name=name, owner_email=f"owner@{name.lower()}.io", plan=plan)
    )
    key = await runtime.ask(
        CreateApiKey(
            tenant_id=created.tenant.id, member_id=created.owner.id, role="owner", name="boot"
        )
    )
    return Caller(client, key.key, created.tenant.id, created.owner.id)


@asynccontextmanager
async def running_gateway(
    tmp_path, environ, aiohttp_client, services: list[str] | None = None
) -> AsyncIterator[Gateway]:
    """The gateway over an embedded runtime (every service, or ``services``) with ``environ``,
    and two bootstrapped tenants: Acme (pro) and Globex (free)."""
    async with Runtime.embedded(data_dir=tmp_path, services=services, environ=environ) as runtime:
        app = create_app(runtime, GatewayConfig(heartbeat_seconds=5.0))
        client = await aiohttp_client(app)
        acme = await bootstrap(runtime, client, "Acme", "pro")
        globex = await bootstrap(runtime, client, "Globex", "free")
        yield Gateway(runtime=runtime, client=client, acme=acme, globex=globex)
        await client.close()


#: what the tenant, key, policy and audit APIs need (a module sets ``GATEWAY_SERVICES`` to it)
CORE_SERVICES = [
    "tenant-service",
    "auth-service",
    "policy-service",
    "audit-service",
    "event-bus-service",
]


@pytest.fixture
async def gateway(request, tmp_path, db_environ, aiohttp_client) -> AsyncIterator[Gateway]:
    """The gateway over the services the test module names in ``GATEWAY_SERVICES`` (every
    registered service when it names none): starting fewer makes each test start faster."""
    services = getattr(request.module, "GATEWAY_SERVICES", None)
    async with running_gateway(tmp_path, db_environ, aiohttp_client, services) as gateway:
        yield gateway
