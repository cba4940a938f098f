"""Database URLs: parsing, validation and the Tortoise connection each service gets.

A service's URL comes from ``<SLUG>_DATABASE_URL``, else ``DATABASE_URL``, else a SQLite file
``<slug>.db`` in the data folder. Accepted forms:

* ``sqlite:///./relative.db``, ``sqlite:////absolute/path.db``, ``sqlite://:memory:``
* ``postgresql://user:password@host:5432/dbname`` and ``postgres://…``; ``?schema=name``
  overrides the schema, which otherwise is the service's slug.

Everything wrong with a URL is reported as a :class:`ConfigError` naming the variable, before any
driver sees it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from synapsex.config.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 5000
_SLUG_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_PG_SCHEMES = frozenset({"postgresql", "postgres"})


def service_slug(service: str) -> str:
    """The slug of a service name: ``mcp-router-service`` → ``mcp_router``.

    The slug names the SQLite file, the PostgreSQL schema, the Tortoise app and connection, and
    the ``<SLUG>_DATABASE_URL`` variable (upper-cased).
    """
    name = service.removesuffix("-service").replace("-", "_")
    if not _SLUG_RE.match(name):
        raise ConfigError("service", f"{service!r} does not give a valid slug (got {name!r})")
    return name


def url_variable(service: str) -> str:
    """The environment variable that overrides one service's database URL."""
    return f"{service_slug(service).upper()}_DATABASE_URL"


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseConfig:
    """Where one service's tables live."""

    slug: str
    engine: Literal["sqlite", "postgres"]
    credentials: Mapping[str, Any] = field(repr=False)
    #: the URL with any password replaced by ``***``, safe to log
    display_url: str
    #: the PostgreSQL schema; ``None`` on SQLite
    schema: str | None = None
    #: the variable the URL came from, or ``None`` for the built-in default
    source: str | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.engine == "sqlite"

    def tortoise_connection(self) -> dict[str, Any]:
        """The Tortoise ``connections`` entry for this service."""
        engine = "tortoise.backends.sqlite" if self.is_sqlite else "tortoise.backends.asyncpg"
        return {"engine": engine, "credentials": dict(self.credentials)}


def resolve_database(service: str, environ: Mapping[str, str], data_dir: Path) -> DatabaseConfig:
    """The database of ``service`` given the environment and the data folder."""
    slug = service_slug(service)
    for variable in (url_variable(service), "DATABASE_URL"):
        url = environ.get(variable, "").strip()
        if url:
            return parse_database_url(url, slug=slug, variable=variable)
    path = data_dir / f"{slug}.db"
    return _sqlite(slug, str(path), display=f"sqlite:///{path}", source=None)


def parse_database_url(url: str, *, slug: str, variable: str) -> DatabaseConfig:
    """Parse one URL for the service ``slug``; ``variable`` names it in errors."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(variable, "not a URL (expected sqlite:///path.db or postgresql://…)")
    scheme = scheme.lower()
    if scheme == "sqlite":
        return _parse_sqlite(rest, slug=slug, variable=variable)
    if scheme in _PG_SCHEMES:
        return _parse_postgres(url, slug=slug, variable=variable)
    raise ConfigError(
        variable, f"unsupported scheme {scheme!r}: use sqlite://, postgresql:// or postgres://"
    )


def _parse_sqlite(rest: str, *, slug: str, variable: str) -> DatabaseConfig:
    if rest == ":memory:":
        return _sqlite(slug, ":memory:", display="sqlite://:memory:", source=variable)
    if not rest.startswith("/") or rest == "/":
        raise ConfigError(
            variable,
            "SQLite URLs are sqlite:///relative/path.db, sqlite:////absolute/path.db "
            "or sqlite://:memory:",
        )
    path, _, query = rest[1:].partition("?")
    if query:
        names = ", ".join(sorted(parse_qs(query, keep_blank_values=True))) or query
        raise ConfigError(
            variable, f"unsupported URL parameters: {names} (SynapseX sets SQLite's pragmas)"
        )
    path = unquote(path)
    if not path or path.endswith("/"):
        raise ConfigError(variable, "the SQLite URL names a folder, not a file")
    return _sqlite(slug, path, display=f"sqlite:///{path}", source=variable)


def _sqlite(slug: str, path: str, *, display: str, source: str | None) -> DatabaseConfig:
    credentials = {
        "file_path": path,
        "journal_mode": "WAL",
        "synchronous": "NORMAL",
        "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
        "foreign_keys": "ON",
    }
    return DatabaseConfig(
        slug=slug, engine="sqlite", credentials=credentials, display_url=display, source=source
    )


def _parse_postgres(url: str, *, slug: str, variable: str) -> DatabaseConfig:
    try:
        parts = urlsplit(url)
        port = 5432 if parts.port is None else parts.port
    except ValueError as exc:
        raise ConfigError(variable, f"malformed PostgreSQL URL ({exc})") from None
    if port == 0:
        raise ConfigError(variable, "port 0 is not a port a server listens on")
    if not parts.hostname:
        raise ConfigError(variable, "the PostgreSQL URL has no host")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ConfigError(variable, "the PostgreSQL URL must name one database: …/dbname")
    query = parse_qs(parts.query)
    schema = query.pop("schema", [slug])[-1]
    if not _SLUG_RE.match(schema):
        raise ConfigError(variable, f"schema {schema!r} is not a plain lower-case identifier")
    if query:
        raise ConfigError(variable, f"unsupported URL parameters: {', '.join(sorted(query))}")
    credentials: dict[str, Any] = {
        "host": parts.hostname,
        "port": port,
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or ""),
        "database": database,
        "schema": schema,
        "minsize": 1,
        "maxsize": 5,
    }
    user = parts.username or "postgres"
    auth = f"{user}:***@" if parts.password else f"{user}@"
    display = f"postgresql://{auth}{parts.hostname}:{port}/{database}?schema={schema}"
    return DatabaseConfig(
        slug=slug,
        engine="postgres",
        credentials=credentials,
        display_url=display,
        schema=schema,
        source=variable,
    )
