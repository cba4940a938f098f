"""mcp-router-service's registry and api-gateway's catalog on both engines, against a real MCP
server (tests/mcp_fixture.py): discovery through paged tools/list, the definition hashes,
changed and removed tools, unreachable and slow servers (the catalog untouched), the seeded
platform servers (every tenant sees them, none may change them, they follow the
environment), tenant isolation of servers and tools, validation naming each field, and the
auth header from a tenant secret (or the environment) reaching the server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from synapsex.actors.mcp_router import client
from synapsex.contracts.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Timeout,
    Unavailable,
)
from synapsex.contracts.events import ListEvents
from synapsex.contracts.mcp import (
    DisableMcpServer,
    GetMcpServer,
    ListMcpServers,
    ListVisibleMcpServers,
    McpServerView,
    RegisterMcpServer,
    ResolveMcpServer,
    SyncMcpServer,
    UpdateMcpServer,
)
from synapsex.contracts.mcp_tools import (
    CatalogTools,
    GetMcpTool,
    ListMcpTools,
    McpToolView,
    ToolDefinition,
    definition_sha256,
)
from synapsex.contracts.secrets import PutSecret
from synapsex.runtime import Runtime
from tests.mcp_fixture import (
    TOOL_NAMES,
    hanging_server,
    mcp_fixture_server,
    unreachable_url,
)

SERVICES = [
    "event-bus-service",
    "audit-service",
    "secrets-service",
    "api-gateway",
    "mcp-router-service",
]
A = "ten_acme"
B = "ten_globex"
PRIVATE_OK = {"SYNAPSEX_MCP_ALLOW_PRIVATE_NETWORKS": "true", "SYNAPSEX_MCP_TIMEOUT": "5s"}


def embedded(tmp_path: Path, environ: dict[str, str]) -> Runtime:
    return Runtime.embedded(data_dir=tmp_path, services=SERVICES, environ=environ)


@pytest.fixture
async def rt(tmp_path, db_environ):
    async with embedded(tmp_path, {**db_environ, **PRIVATE_OK}) as runtime:
        yield runtime


async def register(rt: Runtime, url: str, name: str = "fixture", tenant: str = A, **kw):
    return await rt.ask(RegisterMcpServer(tenant_id=tenant, name=name, url=url, **kw))


async def sync(rt: Runtime, server_id: str, tenant: str = A) -> McpServerView:
    return await rt.ask(SyncMcpServer(tenant_id=tenant, id=server_id), timeout=30)


async def tools(rt: Runtime, tenant: str = A, **filters) -> list[McpToolView]:
    """Every catalog entry the tenant sees, through pages of three."""
    items: list[McpToolView] = []
    after = None
    while True:
        page = await rt.ask(ListMcpTools(tenant_id=tenant, first=3, after=after, **filters))
        items += page.items
        if not page.has_next_page:
            return items
        after = page.end_cursor


async def events(rt: Runtime, tenant: str = A) -> list[tuple[str, dict]]:
    page = await rt.ask(ListEvents(tenant_id=tenant, topic="mcp.server.#", first=100))
    return [(e.topic, e.payload) for e in page.items]


# ---------------------------------------------------------------------------- discovery


async def test_a_sync_pages_through_tools_list_and_catalogs_every_tool_with_its_hash(rt):
    async with mcp_fixture_server(page_size=5) as server:
        registered = await register(rt, server.url, description="test tools")
        assert registered.scope == "tenant"
        assert registered.tool_count == 0
        assert registered.last_synced_at is None

        synced = await sync(rt, registered.id)
        listed = await client.list_tools(server.url, {}, 5)

    assert server.list_requests >= 3  # 14 tools in pages of 5 (the sync read three pages)
    assert synced.last_sync is not None
    assert (synced.last_sync.added, synced.last_sync.pages) == (14, 3)
    assert (synced.last_sync.changed, synced.last_sync.removed) == (0, 0)
    assert synced.tool_count == 14
    assert synced.last_sync_error is None
    assert synced.last_synced_at is not None

    catalog = await tools(rt)
    assert [t.original_name for t in catalog] == list(TOOL_NAMES)
    assert [t.name for t in catalog] == [f"fixture__{name}" for name in TOOL_NAMES]
    by_name = {t.original_name: t for t in catalog}
    for definition in listed:
        entry = by_name[definition.name]
        assert entry.definition_sha256 == definition_sha256(definition)
        assert entry.input_schema == definition.input_schema
        assert entry.annotations == definition.annotations
        assert (entry.status, entry.previous_sha256, entry.scope) == ("ACTIVE", None, "tenant")
    weather = by_name["get_weather"]
    assert weather.title == "Current weather"
    assert weather.input_schema["required"] == ["city"]
    assert weather.annotations["readOnlyHint"] is True
    assert by_name["delete_ticket"].annotations["destructiveHint"] is True

    found = await tools(rt, search="INVOICE")
    assert [t.name for t in found] == ["fixture__list_invoices"]
    assert await rt.ask(GetMcpTool(tenant_id=A, server_id=registered.id, name="get_weather")) == (
        weather
    )
    assert (
        await rt.ask(GetMcpTool(tenant_id=A, server_id=registered.id, name="fixture__get_weather"))
        == weather
    )
    planned = await rt.ask(CatalogTools(tenant_id=A, server_ids=(registered.id,)))
    assert sorted(t.name for t in planned.tools) == sorted(t.name for t in catalog)

    topics = await events(rt)
    assert [t for t, _ in topics] == ["mcp.server.registered", "mcp.server.synced"]
    assert topics[1][1]["added"] == 14
    assert topics[1][1]["name"] == "fixture"


def test_the_definition_hash_is_sha256_of_the_canonical_json():
    tool = ToolDefinition(
        name="t",
        title=None,
        description="Zürich",
        input_schema={"type": "object", "properties": {"b": {}, "a": {}}},
        annotations={"readOnlyHint": True},
    )
    canonical = (
        '{"annotations":{"readOnlyHint":true},"description":"Zürich",'
        '"inputSchema":{"properties":{"a":{},"b":{}},"type":"object"},"name":"t","title":null}'
    )
    assert definition_sha256(tool) == hashlib.sha256(canonical.encode()).hexdigest()
    assert client.definition_sha256(tool) == definition_sha256(tool)


async def test_changed_and_removed_tools_keep_both_hashes_and_the_row(rt):
    async with mcp_fixture_server() as server:
        registered = await register(rt, server.url)
        await sync(rt, registered.id)
        before = {t.original_name: t for t in await tools(rt)}

        server.change_tool("get_weather", description="Weather now, with wind.")
        server.change_tool(
            "send_email",
            input_schema={"type": "object", "properties": {"to": {"type": "string"}}},
        )
        server.remove_tool("delete_ticket")
        resynced = await sync(rt, registered.id)
        after = {t.original_name: t for t in await tools(rt)}

        assert resynced.last_sync is not None
        counts = resynced.last_sync
        assert (counts.added, counts.changed, counts.removed, counts.unchanged) == (0, 2, 1, 11)
        assert resynced.tool_count == 13
        for name in ("get_weather", "send_email"):
            assert after[name].status == "CHANGED"
            assert after[name].previous_sha256 == before[name].definition_sha256
            assert after[name].definition_sha256 != before[name].definition_sha256
        assert after["get_weather"].description == "Weather now, with wind."
        assert after["send_email"].input_schema["properties"] == {"to": {"type": "string"}}
        removed = after["delete_ticket"]
        assert removed.status == "REMOVED"
        assert removed.definition_sha256 == before["delete_ticket"].definition_sha256
        same = after["search_documents"]
        assert same.definition_sha256 == before["search_documents"].definition_sha256
        assert (same.status, same.previous_sha256) == ("ACTIVE", None)
        assert same.synced_at > before["search_documents"].synced_at
        assert [t.name for t in await tools(rt, status="REMOVED")] == ["fixture__delete_ticket"]
        planned = await rt.ask(CatalogTools(tenant_id=A, server_ids=(registered.id,)))
        assert "fixture__delete_ticket" not in {t.name for t in planned.tools}

        # nothing changed since: the changed tools are ACTIVE again, the hash of the change kept
        again = await sync(rt, registered.id)
        assert again.last_sync is not None
        assert (again.last_sync.changed, again.last_sync.removed) == (0, 0)
        assert again.last_sync.unchanged == 13
        latest = {t.original_name: t for t in await tools(rt)}
        assert latest["get_weather"].status == "ACTIVE"
        assert latest["get_weather"].previous_sha256 == before["get_weather"].definition_sha256
        assert latest["delete_ticket"].status == "REMOVED"

        # a removed tool that comes back as it was is added again
        server.restore()
        back = await sync(rt, registered.id)
        assert back.last_sync is not None
        assert back.last_sync.added == 1
        assert back.last_sync.changed == 2  # get_weather and send_email as they first were
        restored = {t.original_name: t for t in await tools(rt)}
        assert restored["delete_ticket"].status == "ACTIVE"


# ---------------------------------------------------------------------------- failures


async def test_an_unreachable_or_slow_server_leaves_the_catalog_as_it_was(tmp_path, db_environ):
    environ = {**db_environ, **PRIVATE_OK, "SYNAPSEX_MCP_TIMEOUT": "1s"}
    async with embedded(tmp_path, environ) as rt:
        async with mcp_fixture_server() as server:
            registered = await register(rt, server.url)
            await sync(rt, registered.id)
        catalog = await tools(rt)
        assert len(catalog) == 14

        # the server is gone: connection refused
        with pytest.raises(Unavailable, match=r"cannot connect to the MCP server at http://127"):
            await sync(rt, registered.id)
        assert await tools(rt) == catalog
        failed = await rt.ask(GetMcpServer(tenant_id=A, id=registered.id))
        assert failed.last_sync_error is not None
        assert failed.last_sync_error.startswith("UNAVAILABLE: cannot connect")
        assert failed.tool_count == 14
        assert failed.last_sync is not None

        # a server that accepts and never answers: TIMEOUT after SYNAPSEX_MCP_TIMEOUT
        async with hanging_server() as url:
            await rt.ask(UpdateMcpServer(tenant_id=A, id=registered.id, url=url))
            with pytest.raises(Timeout, match=r"did not answer within 1 s"):
                await sync(rt, registered.id)
        assert await tools(rt) == catalog
        slow = await rt.ask(GetMcpServer(tenant_id=A, id=registered.id))
        assert slow.last_sync_error is not None
        assert slow.last_sync_error.startswith("TIMEOUT")

        # a server that refuses the credentials: UNAVAILABLE naming the HTTP status
        async with mcp_fixture_server() as server:
            server.required_authorization = "Bearer right"
            await rt.ask(UpdateMcpServer(tenant_id=A, id=registered.id, url=server.url))
            with pytest.raises(Unavailable, match="answered HTTP 401"):
                await sync(rt, registered.id)
        assert await tools(rt) == catalog

        topics = [t for t, _ in await events(rt)]
        assert topics.count("mcp.server.sync_failed") == 3
        assert topics.count("mcp.server.synced") == 1

        # a disabled server is not synced at all
        await rt.ask(DisableMcpServer(tenant_id=A, id=registered.id))
        with pytest.raises(Conflict, match="disabled"):
            await sync(rt, registered.id)


async def test_the_address_guard_refuses_private_addresses_at_connect_time():
    async with mcp_fixture_server() as server:
        with pytest.raises(Unavailable, match=r"refused .* 127\.0\.0\.1 \(a loopback address\)"):
            await client.list_tools(server.url, {}, 5, allow_private=False)
        assert server.requests == []
        assert len(await client.list_tools(server.url, {}, 5, allow_private=True)) == 14
    with pytest.raises(Unavailable, match="cannot connect"):
        await client.list_tools(unreachable_url(), {}, 5)


async def test_calling_a_tool_returns_its_content_and_errors():
    async with mcp_fixture_server() as server:
        result = await client.call_tool(server.url, {}, "get_weather", {"city": "Oslo"}, 5)
        failed = await client.call_tool(server.url, {}, "divide", {"a": 1, "b": 0}, 5)
    assert result.text == "Weather in Oslo: 21 degrees (metric), clear sky"
    assert not result.is_error
    assert json.loads(result.content_json)[0]["type"] == "text"
    assert failed.is_error
    assert "division by zero" in failed.text
    assert server.calls == [("get_weather", {"city": "Oslo"}), ("divide", {"a": 1, "b": 0})]


# ---------------------------------------------------------------------------- platform servers


async def test_seeded_platform_servers_are_seen_by_every_tenant_and_changed_by_none(rt):
    for tenant in (A, B):
        page = await rt.ask(ListMcpServers(tenant_id=tenant))
        seeded = {s.name: s for s in page.items}
        assert set(seeded) == {"synapsex-ops-mcp", "qcos-mcp"}
        ops, qcos = seeded["synapsex-ops-mcp"], seeded["qcos-mcp"]
        assert (ops.scope, ops.enabled, ops.url) == ("platform", True, "http://127.0.0.1:8090/mcp")
        assert (qcos.scope, qcos.enabled, qcos.url) == ("platform", False, None)
    for message in (
        UpdateMcpServer(tenant_id=A, id=ops.id, description="mine now"),
        UpdateMcpServer(tenant_id=A, id=ops.id, url="http://127.0.0.1:9999/mcp"),
        DisableMcpServer(tenant_id=B, id=ops.id),
    ):
        with pytest.raises(Forbidden, match="managed by the operator"):
            await rt.ask(message)
    with pytest.raises(Conflict, match="disabled"):
        await sync(rt, qcos.id)
    with pytest.raises(Conflict, match="disabled"):
        await rt.ask(ResolveMcpServer(tenant_id=A, id=qcos.id))
    with pytest.raises(Conflict) as taken:
        await register(rt, "http://127.0.0.1:1/mcp", name="qcos-mcp")
    assert taken.value.details["field"] == "name"
    visible = await rt.ask(ListVisibleMcpServers(tenant_id=A))
    assert [s.name for s in visible.servers] == ["synapsex-ops-mcp"]


async def test_platform_servers_follow_the_environment_and_their_tools_are_shared(
    tmp_path, db_environ
):
    async with mcp_fixture_server() as server:
        server.required_authorization = "Bearer ops-token"
        environ = {
            **db_environ,
            "SYNAPSEX_OPS_MCP_URL": server.url,
            "SYNAPSEX_MCP_AUTH_SYNAPSEX_OPS_MCP": "ops-token",
            "QCOS_MCP_URL": "https://qcos.example.com/mcp",
        }
        async with embedded(tmp_path, db_environ) as rt:  # first start: the defaults
            first = {s.name: s for s in (await rt.ask(ListMcpServers(tenant_id=A))).items}
        async with embedded(tmp_path, environ) as rt:
            seeded = {s.name: s for s in (await rt.ask(ListMcpServers(tenant_id=A))).items}
            assert len(seeded) == 2
            ops, qcos = seeded["synapsex-ops-mcp"], seeded["qcos-mcp"]
            assert ops.id == first["synapsex-ops-mcp"].id  # the same rows, not new ones
            assert (ops.url, qcos.url, qcos.enabled) == (
                server.url,
                "https://qcos.example.com/mcp",
                True,
            )
            # the platform server is trusted on localhost (no SYNAPSEX_MCP_ALLOW_PRIVATE_...)
            synced = await sync(rt, ops.id, tenant=B)
            assert synced.tool_count == 14
            assert server.requests[-1]["authorization"] == "Bearer ops-token"
            for tenant in (A, B):
                shared = await tools(rt, tenant=tenant)
                assert len(shared) == 14
                assert {t.scope for t in shared} == {"platform"}
                assert shared[0].name.startswith("synapsex-ops-mcp__")
            connection = await rt.ask(ResolveMcpServer(tenant_id=A, id=ops.id))
            assert connection.headers == {"Authorization": "Bearer ops-token"}
            assert connection.allow_private is True
            assert "ops-token" not in repr(connection)


# ---------------------------------------------------------------------------- tenants


async def test_a_tenants_servers_and_tools_are_invisible_to_another(rt):
    async with mcp_fixture_server() as server:
        mine = await register(rt, server.url, name="crm")
        await sync(rt, mine.id)
        theirs = await register(rt, server.url, name="crm", tenant=B)  # same name: its own
        await sync(rt, theirs.id, tenant=B)
        for message in (
            GetMcpServer(tenant_id=B, id=mine.id),
            UpdateMcpServer(tenant_id=B, id=mine.id, description="x"),
            DisableMcpServer(tenant_id=B, id=mine.id),
            SyncMcpServer(tenant_id=B, id=mine.id),
            ResolveMcpServer(tenant_id=B, id=mine.id),
            GetMcpTool(tenant_id=B, server_id=mine.id, name="get_weather"),
        ):
            with pytest.raises(NotFound):
                await rt.ask(message)
    names_b = {s.id for s in (await rt.ask(ListMcpServers(tenant_id=B))).items}
    assert mine.id not in names_b
    assert theirs.id in names_b
    tools_b = await tools(rt, tenant=B)
    assert {t.server_id for t in tools_b} == {theirs.id}
    assert await tools(rt, tenant=B, server_id=mine.id) == []
    planned = await rt.ask(CatalogTools(tenant_id=B, server_ids=(mine.id, theirs.id)))
    assert {t.server_id for t in planned.tools} == {theirs.id}
    visible = await rt.ask(ListVisibleMcpServers(tenant_id=B, server_ids=(mine.id, theirs.id)))
    assert [s.id for s in visible.servers] == [theirs.id]
    assert [t for t, _ in await events(rt, B)] == ["mcp.server.registered", "mcp.server.synced"]


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"name": "Bad Name"}, "name", "lower-case"),
        ({"name": "two__parts"}, "name", "must not contain __"),
        ({"name": "trailing_"}, "name", "must not contain __ nor end with _"),
        ({"name": "x" * 64}, "name", "1 to 63"),
        ({"url": "ftp://example.com/mcp"}, "url", "http or https"),
        ({"url": "https://user:pw@example.com/mcp"}, "url", "credentials"),
        ({"url": "https:///mcp"}, "url", "host"),
        ({"url": "https://example.com:99999/mcp"}, "url", "valid URL|port"),
        ({"description": "d" * 1001}, "description", "at most 1000"),
        ({"auth_secret_name": "9lives"}, "authSecretName", "must start with a letter"),
    ],
)
def test_a_registration_names_the_bad_field(fields, field, problem):
    values = {"tenant_id": A, "name": "ok", "url": "https://mcp.example.com/mcp", **fields}
    with pytest.raises(InvalidInput, match=problem) as raised:
        RegisterMcpServer(**values)
    assert raised.value.field == field


async def test_registration_refuses_private_addresses_unknown_secrets_and_taken_names(
    tmp_path, db_environ
):
    async with embedded(tmp_path, db_environ) as rt:  # private networks not allowed
        with pytest.raises(InvalidInput, match="loopback address; MCP servers may not") as bad:
            await register(rt, "http://127.0.0.1:8080/mcp")
        assert bad.value.field == "url"
        with pytest.raises(InvalidInput, match="could not be resolved") as unknown:
            await register(rt, "https://no-such-host.invalid/mcp")
        assert unknown.value.field == "url"
        with pytest.raises(InvalidInput, match="no secret named 'MISSING'") as secret:
            await register(rt, "https://93.184.215.14/mcp", auth_secret_name="MISSING")
        assert secret.value.field == "authSecretName"
        server = await register(rt, "https://93.184.215.14/mcp")
        with pytest.raises(Conflict) as taken:
            await register(rt, "https://93.184.215.14/mcp")
        assert taken.value.details["field"] == "name"
        with pytest.raises(InvalidInput, match="private address") as changed:
            await rt.ask(UpdateMcpServer(tenant_id=A, id=server.id, url="http://10.1.2.3/mcp"))
        assert changed.value.field == "url"
        assert await rt.ask(GetMcpServer(tenant_id=A, id=server.id)) == server


# ---------------------------------------------------------------------------- auth and updates


async def test_the_auth_header_comes_from_the_tenants_secret(rt):
    await rt.ask(PutSecret(tenant_id=A, name="CRM_TOKEN", value="tok-123"))
    await rt.ask(PutSecret(tenant_id=B, name="CRM_TOKEN", value="tok-of-globex"))
    async with mcp_fixture_server() as server:
        server.required_authorization = "Bearer tok-123"
        registered = await register(rt, server.url, auth_secret_name="CRM_TOKEN")
        assert registered.auth_secret_name == "CRM_TOKEN"
        synced = await sync(rt, registered.id)
        assert synced.tool_count == 14
        assert {r.get("authorization") for r in server.requests} == {"Bearer tok-123"}

        connection = await rt.ask(ResolveMcpServer(tenant_id=A, id=registered.id))
        assert connection.headers == {"Authorization": "Bearer tok-123"}
        assert connection.url == server.url
        assert connection.allow_private is True
        assert "tok-123" not in repr(connection)
        assert "tok-123" not in json.dumps(await events(rt), default=str)

        # a value that names its scheme is sent as is
        await rt.ask(PutSecret(tenant_id=A, name="CRM_TOKEN", value="Basic dXNlcjpwdw=="))
        server.required_authorization = "Basic dXNlcjpwdw=="
        await sync(rt, registered.id)

        # without the secret, the server refuses and the sync says so
        cleared = await rt.ask(
            UpdateMcpServer(tenant_id=A, id=registered.id, clear_auth_secret_name=True)
        )
        assert cleared.auth_secret_name is None
        with pytest.raises(Unavailable, match="HTTP 401"):
            await sync(rt, registered.id)


async def test_an_update_changes_the_given_fields_and_a_rename_renames_the_tools(rt):
    async with mcp_fixture_server() as server:
        registered = await register(rt, server.url, name="crm", description="old")
        await sync(rt, registered.id)
        other = await register(rt, server.url, name="billing")
        with pytest.raises(Conflict):
            await rt.ask(UpdateMcpServer(tenant_id=A, id=other.id, name="crm"))
        updated = await rt.ask(
            UpdateMcpServer(tenant_id=A, id=registered.id, name="sales", description="new")
        )
        assert (updated.name, updated.description, updated.url) == ("sales", "new", server.url)
        assert updated.updated_at >= registered.updated_at
        names = {t.name for t in await tools(rt)}
        assert "sales__get_weather" in names
        assert not any(n.startswith("crm__") for n in names)
        resynced = await sync(rt, registered.id)
        assert resynced.last_sync is not None
        assert resynced.last_sync.unchanged == 14

        disabled = await rt.ask(DisableMcpServer(tenant_id=A, id=registered.id))
        assert disabled.enabled is False
        visible = await rt.ask(ListVisibleMcpServers(tenant_id=A))
        assert registered.id not in {s.id for s in visible.servers}
        enabled = await rt.ask(UpdateMcpServer(tenant_id=A, id=registered.id, enabled=True))
        assert enabled.enabled is True
        found = await rt.ask(ListMcpServers(tenant_id=A, search="sal"))
        assert [s.name for s in found.items] == ["sales"]
        topics = [t for t, _ in await events(rt)]
        assert topics.count("mcp.server.updated") == 2
        assert topics.count("mcp.server.disabled") == 1
