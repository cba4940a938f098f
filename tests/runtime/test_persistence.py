"""Per-service databases: files and schemas, pragmas, migrations, isolation, bad URLs."""

from __future__ import annotations

import asyncio

import pytest
from tortoise.exceptions import ConfigurationError

from synapsex.config import ConfigError
from synapsex.contracts import Message
from synapsex.contracts.errors import ServiceFailure
from synapsex.contracts.tenant import CreateTenant
from synapsex.runtime import Actor, PendingMigrations, Runtime, handler, load_service
from synapsex.runtime.deadletters import SqlDeadLetters
from synapsex.runtime.testing import wait_until


async def test_migrations_run_from_an_empty_database(tmp_path, empty_db_environ):
    runtime = Runtime.embedded(
        data_dir=tmp_path, services=["tenant-service"], environ=empty_db_environ
    )
    (db,) = runtime.databases()
    await db.open()
    try:
        both = ["tenant.0001_initial", "tenant.0002_outbox"]
        assert await db.pending_migrations() == both
        assert await db.migrate() == both
        assert await db.pending_migrations() == []
        assert await db.migrate() == []
        tables = await _tables(db)
    finally:
        await db.aclose()
    assert {"tenants", "tenant_members", "tenant_outbox", "tortoise_migrations"} <= tables


async def _tables(db) -> set[str]:
    client = db.client()
    if db.config.is_sqlite:
        rows = await client.execute_query_dict("SELECT name FROM sqlite_master WHERE type='table'")
        return {r["name"] for r in rows}
    rows = await client.execute_query_dict(
        "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = $1",
        [db.config.schema],
    )
    return {r["name"] for r in rows}


async def test_each_service_gets_its_own_sqlite_file(tmp_path):
    async with Runtime.embedded(data_dir=tmp_path, services=["tenant-service", "auth-service"]):
        pass
    assert {"tenant.db", "auth.db"} <= {p.name for p in tmp_path.iterdir()}


async def test_each_service_gets_its_own_postgres_schema(tmp_path, pg_url):
    environ = {"DATABASE_URL": pg_url}
    async with Runtime.embedded(data_dir=tmp_path, environ=environ) as rt:
        await rt.ask(CreateTenant(name="Schemas"))
        tenant_db = next(db for db in rt.databases() if db.service == "tenant-service")
    await tenant_db.open()
    try:
        rows = await tenant_db.client().execute_query_dict(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_name IN ('tenants', 'api_keys')"
        )
    finally:
        await tenant_db.aclose()
    assert {(r["table_schema"], r["table_name"]) for r in rows} == {
        ("tenant", "tenants"),
        ("auth", "api_keys"),
    }
    assert list(tmp_path.glob("*.db")) == []


async def test_sqlite_runs_in_wal_with_normal_sync_busy_timeout_and_foreign_keys(tmp_path):
    (db,) = Runtime.embedded(data_dir=tmp_path, services=["tenant-service"]).databases()
    await db.open()
    try:
        client = db.client()
        pragmas = {}
        for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys"):
            (row,) = await client.execute_query_dict(f"PRAGMA {name}")
            pragmas[name] = next(iter(row.values()))
    finally:
        await db.aclose()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 5000,
        "foreign_keys": 1,
    }


async def test_postgres_refuses_to_start_with_pending_migrations_and_names_them(tmp_path, pg_url):
    runtime = Runtime(
        [load_service("tenant-service")],
        settings=Runtime.embedded(data_dir=tmp_path, environ={"DATABASE_URL": pg_url}).settings,
        migrate=None,
    )
    with pytest.raises(PendingMigrations) as err:
        await runtime.start()
    assert err.value.pending == {"tenant-service": ["tenant.0001_initial", "tenant.0002_outbox"]}
    assert "tenant.0001_initial" in str(err.value)


async def test_the_sqlite_default_applies_pending_migrations_itself(tmp_path):
    settings = Runtime.embedded(data_dir=tmp_path).settings
    async with Runtime([load_service("tenant-service")], settings=settings, migrate=None) as rt:
        assert (await rt.ask(CreateTenant(name="Auto"))).name == "Auto"


class Peek(Message, service="auth-service"):
    pass


class NosyAuth(Actor, service="auth-service", models="synapsex.actors.auth.models"):
    """An auth-service whose handler reaches into tenant-service's tables."""

    @handler
    async def peek(self, msg: Peek) -> int:
        from synapsex.actors.tenant.models import Tenant

        return await Tenant.all().count()


async def test_a_handler_touching_another_services_models_fails_loudly(tmp_path):
    tenant = load_service("tenant-service")
    async with Runtime.embedded(data_dir=tmp_path, actors=[tenant, NosyAuth]) as rt:
        await rt.ask(CreateTenant(name="Private"))
        with pytest.raises(ServiceFailure):
            await rt.ask(Peek())
        (letter,) = await wait_until(lambda: rt.dead_letters("auth-service"))
    assert letter.error_type == ConfigurationError.__qualname__
    assert "tenant" in letter.error


async def test_a_malformed_url_fails_at_start_naming_the_variable(tmp_path):
    runtime = Runtime.embedded(
        data_dir=tmp_path,
        services=["tenant-service"],
        environ={"TENANT_DATABASE_URL": "postgresql://nohost"},
    )
    with pytest.raises(ConfigError) as err:
        await runtime.start()
    assert err.value.variable == "TENANT_DATABASE_URL"


async def test_an_unreachable_database_fails_at_start_naming_the_variable(tmp_path):
    runtime = Runtime.embedded(
        data_dir=tmp_path,
        services=["tenant-service"],
        environ={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"},
    )
    with pytest.raises(ConfigError) as err:
        await runtime.start()
    assert err.value.variable == "DATABASE_URL"
    assert "cannot open the tenant-service database" in str(err.value)


async def test_servers_starting_together_on_postgres_create_schema_and_tables_once(
    tmp_path, pg_url
):
    """CREATE … IF NOT EXISTS alone can collide on PostgreSQL's catalog when two sessions run
    it at once (several `synapsex serve` starting together)."""
    environ = {"DATABASE_URL": pg_url}
    dbs = [
        Runtime.embedded(
            data_dir=tmp_path / str(i), services=["tenant-service"], environ=environ
        ).databases()[0]
        for i in range(6)
    ]
    try:
        await asyncio.gather(*(db.open() for db in dbs))
        await asyncio.gather(*(SqlDeadLetters(db).ensure_table() for db in dbs))
        tables = await _tables(dbs[0])
    finally:
        for db in dbs:
            await db.aclose()
    assert "tenant_dead_letters" in tables
