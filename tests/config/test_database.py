from __future__ import annotations

from pathlib import Path

import pytest

from synapsex.config import (
    ConfigError,
    DatabaseConfig,
    parse_database_url,
    resolve_database,
    service_slug,
    url_variable,
)
from synapsex.config.database import SQLITE_BUSY_TIMEOUT_MS

VAR = "TENANT_DATABASE_URL"


def parse(url: str) -> DatabaseConfig:
    return parse_database_url(url, slug="tenant", variable=VAR)


# ---------------------------------------------------------------------------- slugs


@pytest.mark.parametrize(
    ("service", "slug"),
    [
        ("tenant-service", "tenant"),
        ("mcp-router-service", "mcp_router"),
        ("api-gateway", "api_gateway"),
        ("auth", "auth"),
    ],
)
def test_service_slug_drops_the_service_suffix_and_uses_underscores(service, slug):
    assert service_slug(service) == slug


def test_url_variable_is_the_upper_cased_slug():
    assert url_variable("mcp-router-service") == "MCP_ROUTER_DATABASE_URL"
    assert url_variable("tenant-service") == "TENANT_DATABASE_URL"


@pytest.mark.parametrize("service", ["Tenant-service", "-service", "9lives", "a b"])
def test_service_name_without_a_valid_slug_is_a_config_error(service):
    with pytest.raises(ConfigError) as err:
        service_slug(service)
    assert err.value.variable == "service"
    assert repr(service) in str(err.value)


# ---------------------------------------------------------------------------- precedence


def test_service_variable_beats_database_url(tmp_path):
    env = {VAR: "sqlite:///./own.db", "DATABASE_URL": "sqlite:///./shared.db"}
    db = resolve_database("tenant-service", env, tmp_path)
    assert db.credentials["file_path"] == "./own.db"
    assert db.source == VAR


def test_database_url_applies_when_the_service_variable_is_unset_or_blank(tmp_path):
    for env in (
        {"DATABASE_URL": "sqlite:///./shared.db"},
        {VAR: "   ", "DATABASE_URL": "sqlite:///./shared.db"},
    ):
        db = resolve_database("tenant-service", env, tmp_path)
        assert db.credentials["file_path"] == "./shared.db"
        assert db.source == "DATABASE_URL"


def test_another_services_variable_does_not_apply(tmp_path):
    db = resolve_database("tenant-service", {"AUTH_DATABASE_URL": "sqlite:///./a.db"}, tmp_path)
    assert db.source is None
    assert db.credentials["file_path"] == str(tmp_path / "tenant.db")


def test_without_variables_the_default_is_a_sqlite_file_named_after_the_slug(tmp_path):
    db = resolve_database("mcp-router-service", {"DATABASE_URL": ""}, tmp_path)
    assert db.engine == "sqlite"
    assert db.is_sqlite
    assert db.slug == "mcp_router"
    assert db.source is None
    assert db.schema is None
    assert db.credentials["file_path"] == str(tmp_path / "mcp_router.db")
    assert db.display_url == f"sqlite:///{tmp_path / 'mcp_router.db'}"


def test_the_default_file_is_relative_to_a_relative_data_dir():
    db = resolve_database("tenant-service", {}, Path("data"))
    assert db.credentials["file_path"] == str(Path("data") / "tenant.db")


def test_a_malformed_service_variable_is_reported_even_when_database_url_is_fine(tmp_path):
    env = {VAR: "mysql://h/db", "DATABASE_URL": "sqlite:///./shared.db"}
    with pytest.raises(ConfigError) as err:
        resolve_database("tenant-service", env, tmp_path)
    assert err.value.variable == VAR


def test_a_malformed_database_url_names_database_url(tmp_path):
    with pytest.raises(ConfigError) as err:
        resolve_database("tenant-service", {"DATABASE_URL": "sqlite://x.db"}, tmp_path)
    assert err.value.variable == "DATABASE_URL"
    assert str(err.value).startswith("DATABASE_URL: ")


# ---------------------------------------------------------------------------- SQLite


def test_sqlite_url_with_three_slashes_is_a_relative_path():
    db = parse("sqlite:///./x.db")
    assert db.credentials["file_path"] == "./x.db"
    assert db.display_url == "sqlite:///./x.db"
    assert db.source == VAR


def test_sqlite_url_with_four_slashes_is_an_absolute_path():
    db = parse("sqlite:////abs/x.db")
    assert db.credentials["file_path"] == "/abs/x.db"
    assert db.display_url == "sqlite:////abs/x.db"


def test_sqlite_path_is_percent_decoded():
    assert parse("sqlite:///./my%20db.db").credentials["file_path"] == "./my db.db"


def test_sqlite_memory_url_is_an_in_memory_database():
    db = parse("sqlite://:memory:")
    assert db.credentials["file_path"] == ":memory:"
    assert db.display_url == "sqlite://:memory:"


def test_sqlite_scheme_is_case_insensitive():
    assert parse("SQLite:///./x.db").engine == "sqlite"


def test_sqlite_credentials_carry_wal_normal_sync_busy_timeout_and_foreign_keys():
    db = parse("sqlite:///./x.db")
    assert db.credentials == {
        "file_path": "./x.db",
        "journal_mode": "WAL",
        "synchronous": "NORMAL",
        "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
        "foreign_keys": "ON",
    }
    assert SQLITE_BUSY_TIMEOUT_MS > 0
    assert db.schema is None


def test_sqlite_tortoise_connection_uses_the_sqlite_backend_and_a_copy_of_the_credentials():
    db = parse("sqlite:///./x.db")
    conn = db.tortoise_connection()
    assert conn["engine"] == "tortoise.backends.sqlite"
    assert conn["credentials"] == dict(db.credentials)
    conn["credentials"]["file_path"] = "elsewhere.db"
    assert db.credentials["file_path"] == "./x.db"


# ---------------------------------------------------------------------------- PostgreSQL


def test_postgres_url_gives_credentials_and_the_slug_as_schema():
    db = parse("postgresql://user:pw@db.example:6543/app")
    assert db.engine == "postgres"
    assert not db.is_sqlite
    assert db.schema == "tenant"
    assert db.source == VAR
    assert db.credentials["host"] == "db.example"
    assert db.credentials["port"] == 6543
    assert db.credentials["user"] == "user"
    assert db.credentials["password"] == "pw"
    assert db.credentials["database"] == "app"
    assert db.credentials["schema"] == "tenant"
    assert db.display_url == "postgresql://user:***@db.example:6543/app?schema=tenant"


def test_postgres_scheme_alias_is_accepted_and_displayed_as_postgresql():
    db = parse("postgres://user:pw@host:5432/db")
    assert db.engine == "postgres"
    assert db.display_url.startswith("postgresql://")
    assert db.credentials["database"] == "db"


def test_postgres_url_defaults_port_5432_and_user_postgres():
    db = parse("postgresql://host/db")
    assert db.credentials["port"] == 5432
    assert db.credentials["user"] == "postgres"
    assert db.credentials["password"] == ""
    assert db.display_url == "postgresql://postgres@host:5432/db?schema=tenant"


def test_postgres_schema_query_parameter_overrides_the_slug():
    db = parse("postgresql://u:pw@host:5432/db?schema=other")
    assert db.schema == "other"
    assert db.credentials["schema"] == "other"
    assert db.display_url.endswith("?schema=other")


def test_postgres_user_and_password_are_percent_decoded():
    db = parse("postgresql://us%40er:p%40ss%2Fword@host/db")
    assert db.credentials["user"] == "us@er"
    assert db.credentials["password"] == "p@ss/word"


def test_postgres_tortoise_connection_uses_asyncpg():
    conn = parse("postgresql://u:pw@host/db").tortoise_connection()
    assert conn["engine"] == "tortoise.backends.asyncpg"
    assert conn["credentials"]["password"] == "pw"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:s3cr%40t-pw@host:5432/db",
        "postgres://user:s3cr%40t-pw@host/db?schema=other",
        "postgresql://:s3cr%40t-pw@host/db",
    ],
)
def test_password_never_appears_in_display_url_or_repr(url):
    db = parse(url)
    assert db.credentials["password"] == "s3cr@t-pw"
    for text in (db.display_url, repr(db), str(db)):
        assert "s3cr" not in text
    assert "***" in db.display_url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:s3cretpw@host:notaport/db",
        "postgresql://user:s3cretpw@/db",
        "postgresql://user:s3cretpw@host/",
        "postgresql://user:s3cretpw@host/db?sslmode=require",
        "mysql://user:s3cretpw@host/db",
    ],
)
def test_config_errors_do_not_echo_the_password(url):
    with pytest.raises(ConfigError) as err:
        parse(url)
    assert "s3cretpw" not in str(err.value)


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://user:pw@host/db", "unsupported scheme 'mysql'"),
        ("tenant.db", "not a URL"),
        ("/var/lib/tenant.db", "not a URL"),
        ("sqlite://x.db", "sqlite:///relative/path.db"),
        ("sqlite:/x.db", "not a URL"),
        ("sqlite:///", "sqlite:///relative/path.db"),
        ("sqlite:///data/", "names a folder"),
        ("sqlite:////", "names a folder"),
        ("postgresql:///db", "no host"),
        ("postgresql://h/", "must name one database"),
        ("postgresql://h", "must name one database"),
        ("postgresql://h/a/b", "must name one database"),
        ("postgresql://h:port/db", "malformed PostgreSQL URL"),
        ("postgresql://h:99999/db", "malformed PostgreSQL URL"),
        ("postgresql://h/db?sslmode=require", "unsupported URL parameters: sslmode"),
        ("postgresql://h/db?b=1&a=2", "unsupported URL parameters: a, b"),
        ("postgresql://h/db?schema=Other", "schema 'Other' is not"),
        ("postgresql://h/db?schema=x-y", "schema 'x-y' is not"),
        ("postgresql://h/db?schema=1x", "schema '1x' is not"),
    ],
)
def test_malformed_url_names_the_variable_and_the_problem(url, problem):
    with pytest.raises(ConfigError) as err:
        parse(url)
    assert err.value.variable == VAR
    assert str(err.value).startswith(f"{VAR}: ")
    assert problem in err.value.problem


def test_postgres_url_without_database_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as err:
        resolve_database(
            "mcp-router-service", {"MCP_ROUTER_DATABASE_URL": "postgresql://h/"}, tmp_path
        )
    assert str(err.value).startswith("MCP_ROUTER_DATABASE_URL: ")
    assert "database" in err.value.problem


def test_postgres_url_with_port_zero_is_refused_not_rewritten_to_5432():
    # Port 0 cannot be connected to; silently using 5432 instead connects somewhere the user
    # did not write.
    with pytest.raises(ConfigError) as err:
        parse("postgresql://u:pw@host:0/db")
    assert err.value.variable == VAR
    assert "port" in err.value.problem.lower()


def test_sqlite_url_with_query_parameters_is_refused_not_silently_ignored():
    # A PostgreSQL URL refuses unknown parameters; a SQLite one drops them, so
    # `?journal_mode=DELETE` looks accepted but never applies.
    with pytest.raises(ConfigError) as err:
        parse("sqlite:///./x.db?journal_mode=DELETE")
    assert err.value.variable == VAR
    assert "journal_mode" in err.value.problem
