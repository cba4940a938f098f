from __future__ import annotations

from .conftest import json_lines


def test_plan_lists_pending_migrations_and_changes_nothing(cli, tmp_path):
    result = cli("migrate", "--plan")
    assert result.returncode == 0, result.stderr
    lines = {line["service"]: line for line in json_lines(result.stdout)}
    assert lines["tenant-service"]["pending"] == ["tenant.0001_initial", "tenant.0002_outbox"]
    assert lines["auth-service"]["pending"] == [
        "auth.0001_initial",
        "auth.0002_outbox",
        "auth.0003_key_expiry",
    ]
    again = json_lines(cli("migrate", "--plan").stdout)
    assert all(line["pending"] for line in again)


def test_migrate_applies_once_per_service(cli):
    first = json_lines(cli("migrate", "--service", "tenant-service").stdout)
    assert first == [
        {
            "service": "tenant-service",
            "database": first[0]["database"],
            "applied": ["tenant.0001_initial", "tenant.0002_outbox"],
        }
    ]
    assert first[0]["database"].endswith("/data/tenant.db")
    second = json_lines(cli("migrate", "--service", "tenant-service").stdout)
    assert second[0]["applied"] == []


def test_migrate_on_postgres_uses_the_services_schema(cli, pg_url):
    result = cli("migrate", "--service", "auth-service", env={"DATABASE_URL": pg_url})
    assert result.returncode == 0, result.stderr
    (line,) = json_lines(result.stdout)
    assert line["applied"] == ["auth.0001_initial", "auth.0002_outbox", "auth.0003_key_expiry"]
    assert line["database"].endswith("?schema=auth")


def test_a_bad_database_url_exits_2_naming_the_variable(cli):
    result = cli("migrate", env={"DATABASE_URL": "mysql://db/x"})
    assert result.returncode == 2
    assert result.stderr.startswith("synapsex: DATABASE_URL: unsupported scheme 'mysql'")


def test_an_unknown_service_exits_2_listing_the_known_ones(cli):
    result = cli("migrate", "--service", "nope-service")
    assert result.returncode == 2
    assert "tenant-service" in result.stderr


def test_every_command_has_help(cli):
    for command in ([], ["serve"], ["migrate"], ["makemigrations"], ["dead-letters", "list"]):
        result = cli(*command, "--help")
        assert result.returncode == 0
        assert "usage: synapsex" in result.stdout


def test_makemigrations_finds_nothing_to_write_for_unchanged_models(cli):
    result = cli("makemigrations")
    assert result.returncode == 0, result.stderr
    assert all(line["written"] == [] for line in json_lines(result.stdout))
