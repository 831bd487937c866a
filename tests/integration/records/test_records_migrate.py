"""The migrator on a real PostgreSQL: every file once, in order, never a changed one."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from services.common.records.migrate import MigrationError, migrate, migrations
from services.common.records.pool import postgres_ready
from services.common.records.settings import PostgresSettings

pytestmark = pytest.mark.integration


def connect(settings: PostgresSettings) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(settings.conninfo("test-migrate"), autocommit=True)


def fresh_schema(conn: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    """A schema of its own, first on the search path: the migrator sees an empty database."""
    conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}".encode())
    conn.execute(f"SET search_path TO {name}".encode())


def test_the_project_migrations_apply_once_and_a_second_run_applies_nothing(
        postgres_settings: PostgresSettings) -> None:
    with connect(postgres_settings) as conn:
        fresh_schema(conn, "migrate_twice")
        first = migrate(conn)
        second = migrate(conn)
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'migrate_twice'").fetchall()}
    assert first == [m.version for m in migrations()] and first[0] == 1
    assert second == []
    assert {"users", "profiles", "catalog_titles", "outbox", "experiments", "experiment_changes",
            "fraud_decisions", "fraud_labels", "model_registry_audit",
            "schema_migrations"} <= tables


def test_a_new_file_is_applied_after_the_ones_already_there(
        postgres_settings: PostgresSettings, tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (x int);")
    with connect(postgres_settings) as conn:
        fresh_schema(conn, "migrate_new")
        assert migrate(conn, tmp_path) == [1]
        (tmp_path / "0002_second.sql").write_text("ALTER TABLE a ADD COLUMN y int;")
        assert migrate(conn, tmp_path) == [2]
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "'migrate_new' AND table_name = 'a' ORDER BY ordinal_position").fetchall()]
    assert columns == ["x", "y"]


def test_a_failing_file_leaves_neither_its_changes_nor_its_row(
        postgres_settings: PostgresSettings, tmp_path: Path) -> None:
    (tmp_path / "0001_broken.sql").write_text("CREATE TABLE b (x int); SELECT nonsense();")
    with connect(postgres_settings) as conn:
        fresh_schema(conn, "migrate_broken")
        with pytest.raises(psycopg.Error):
            migrate(conn, tmp_path)
        assert conn.execute("SELECT to_regclass('migrate_broken.b')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (0,)


def test_a_file_changed_after_it_was_applied_is_refused(
        postgres_settings: PostgresSettings, tmp_path: Path) -> None:
    path = tmp_path / "0001_first.sql"
    path.write_text("CREATE TABLE c (x int);")
    with connect(postgres_settings) as conn:
        fresh_schema(conn, "migrate_changed")
        migrate(conn, tmp_path)
        path.write_text("CREATE TABLE c (x bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrate(conn, tmp_path)


def test_a_misnamed_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_first.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        migrations(tmp_path)


def test_the_probe_says_no_for_a_port_where_nothing_listens(
        postgres_settings: PostgresSettings) -> None:
    assert postgres_ready(postgres_settings)
    assert not postgres_ready(PostgresSettings(postgres_port=1), timeout_s=1.0)
