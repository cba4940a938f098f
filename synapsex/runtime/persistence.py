"""One service's database: its Tortoise context, schema, migrations and connection.

Each service gets its own :class:`tortoise.context.TortoiseContext` with one app named by the
service's slug and one connection named ``<slug>_<engine>`` (``tenant_sqlite``). The engine is
in the connection's name because Tortoise caches each model's SQL per connection name in
process-wide state: a process (a test run) that opens one service on SQLite and later on
PostgreSQL would otherwise reuse SQL written for the other dialect.

The runtime activates that context in the actor's own task, so a handler resolves its models to
its database and nothing else: a model of another service has no connection under that alias
and fails with Tortoise's ``ConfigurationError``.

Migrations are Tortoise's built-in ones, one ``migrations`` package per service; the history
table (``tortoise_migrations``) lives in the service's own database (its schema on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext
from tortoise.migrations.executor import MigrationExecutor

from synapsex.config.database import DatabaseConfig
from synapsex.config.errors import ConfigError

log = structlog.get_logger("synapsex.persistence")
T = TypeVar("T")


class ServiceDatabase:
    """The database of one service. ``open()`` connects, ``aclose()`` releases.

    Call :meth:`activate` at the start of any task that uses the service's models; the
    migration methods activate it themselves in a task of their own.
    """

    def __init__(
        self, service: str, config: DatabaseConfig, models: str, migrations: str | None
    ) -> None:
        self.service = service
        self.config = config
        self.models = models
        self.migrations = migrations
        self._ctx: TortoiseContext | None = None

    @property
    def slug(self) -> str:
        return self.config.slug

    @property
    def connection_name(self) -> str:
        return f"{self.config.slug}_{self.config.engine}"

    @property
    def is_open(self) -> bool:
        return self._ctx is not None

    def apps_config(self) -> dict[str, dict[str, Any]]:
        app: dict[str, Any] = {"models": [self.models], "default_connection": self.connection_name}
        if self.migrations:
            app["migrations"] = self.migrations
        return {self.slug: app}

    def tortoise_config(self) -> dict[str, Any]:
        return {
            "connections": {self.connection_name: self.config.tortoise_connection()},
            "apps": self.apps_config(),
        }

    async def open(self) -> None:
        """Connect (creating the SQLite folder or the PostgreSQL schema when missing).

        Raises :class:`ConfigError` naming the URL's variable when the database is unreachable.
        """
        if self._ctx is not None:
            return
        if self.config.is_sqlite:
            path = self.config.credentials["file_path"]
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        ctx = TortoiseContext()

        async def connect() -> None:
            ctx.__enter__()  # Tortoise resolves models through the active context, even in init
            await ctx.init(config=self.tortoise_config())
            client = ctx.db(self.connection_name)
            if self.config.schema:
                schema = f'CREATE SCHEMA IF NOT EXISTS "{self.config.schema}"'
                await self.create_if_missing(schema, client)
            await client.execute_query("SELECT 1")

        try:
            await asyncio.create_task(connect())
        except Exception as exc:
            await _close_quietly(ctx)
            variable = self.config.source or "SYNAPSEX_DATA_DIR"
            raise ConfigError(
                variable,
                f"cannot open the {self.service} database {self.config.display_url}: "
                f"{type(exc).__name__}: {exc}",
            ) from exc
        self._ctx = ctx

    async def create_if_missing(self, ddl: str, client: BaseDBAsyncClient | None = None) -> None:
        """Run a ``CREATE … IF NOT EXISTS``. On PostgreSQL two sessions running the same one at
        once can still collide (the loser fails on a catalog unique index), as when several
        servers start together; an advisory lock named after the statement queues them."""
        client = client or self.client()
        if self.config.is_sqlite:
            await client.execute_script(ddl)
            return
        lock = ddl.replace("'", "''")
        await client.execute_script(
            f"BEGIN; SELECT pg_advisory_xact_lock(hashtext('synapsex:{lock}')); {ddl}; COMMIT;"
        )

    def activate(self) -> None:
        """Make this database's context current in the running task (and tasks it spawns)."""
        if self._ctx is None:
            raise RuntimeError(f"the {self.service} database is not open")
        self._ctx.__enter__()  # sets Tortoise's context variable; never reset: the task ends

    def client(self) -> BaseDBAsyncClient:
        """The raw connection (for runtime bookkeeping tables)."""
        if self._ctx is None:
            raise RuntimeError(f"the {self.service} database is not open")
        return self._ctx.db(self.connection_name)

    async def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` in a task of its own with this database active."""

        async def activated() -> T:
            self.activate()
            return await fn()

        return await asyncio.create_task(activated())

    # ------------------------------------------------------------------ migrations

    async def pending_migrations(self) -> list[str]:
        """Names (``slug.0001_initial``) of the migrations not yet applied, in order."""
        if not self.migrations:
            return []
        executor = MigrationExecutor(self.client(), self.apps_config())

        async def plan() -> list[str]:
            await executor.recorder.ensure_schema(executor._schema_editor(atomic=False))
            steps = await executor.plan()
            return [f"{s.migration.app_label}.{s.migration.name}" for s in steps if not s.backward]

        return await self.run(plan)

    async def migrate(self) -> list[str]:
        """Apply the pending migrations; returns their names. Each runs in a transaction."""
        pending = await self.pending_migrations()
        if not pending:
            return []
        executor = MigrationExecutor(self.client(), self.apps_config())

        def progress(event: str, app: str, name: str) -> None:
            if event == "apply_done":
                log.info("migration applied", service=self.service, migration=f"{app}.{name}")

        await self.run(lambda: executor.migrate(progress=progress))
        return pending

    async def aclose(self) -> None:
        """Close the connection; safe to call twice."""
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            await _close_quietly(ctx)


async def _close_quietly(ctx: TortoiseContext) -> None:
    with contextlib.suppress(Exception):
        await ctx.close_connections()


async def write_migrations(service: str, slug: str, models: str, migrations: str) -> list[str]:
    """Write a migration for the changes between ``models`` and the ``migrations`` package
    (a developer's step after editing models); returns the files written."""
    from tortoise.migrations.autodetector import MigrationAutodetector

    apps = {slug: {"models": [models], "default_connection": slug, "migrations": migrations}}
    ctx = TortoiseContext()

    async def detect() -> list[str]:
        ctx.__enter__()
        await ctx.init(config={"connections": {slug: "sqlite://:memory:"}, "apps": apps})
        assert ctx.apps is not None
        writers = await MigrationAutodetector(ctx.apps, apps).changes()
        return [str(w.write()) for w in writers]

    try:
        return await asyncio.create_task(detect())
    finally:
        await _close_quietly(ctx)
