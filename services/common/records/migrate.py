"""The migrator: versioned SQL files applied in order, each once, recorded in schema_migrations.

    migrations/0001_records.sql, 0002_....sql: the number is the version, the rest its name.

Every process that opens the record calls it before its first query (records_pool): it takes an
advisory lock, so processes starting together apply each file exactly once, and a file and its
row in schema_migrations commit in one transaction, so a failed file leaves no trace.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import TupleRow

MIGRATIONS = Path(__file__).with_name("migrations")
FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
LOCK_ID = 0x6D6C7364  # "mlsd": one advisory lock id for the migrator, whatever the database


class MigrationError(RuntimeError):
    """A migration file is misnamed, or one already applied was changed afterwards."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations(folder: Path = MIGRATIONS) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version in {folder}")
    return found


def migrate(conn: psycopg.Connection[TupleRow],
            folder: Path = MIGRATIONS) -> list[int]:
    """Apply the files not applied yet, in version order; return their versions. `conn` must be
    in autocommit mode (each file gets its own transaction)."""
    pending = migrations(folder)
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
    try:
        conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                            version integer PRIMARY KEY,
                            name text NOT NULL,
                            checksum text NOT NULL,
                            applied_at timestamptz NOT NULL DEFAULT now())""")
        rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
        applied = {int(version): str(checksum) for version, checksum in rows}
        done = []
        for migration in pending:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after "
                        "it was applied: add a new migration instead")
                continue
            with conn.transaction():
                conn.execute(migration.sql.encode())  # bytes: run as written, no placeholders
                conn.execute("INSERT INTO schema_migrations (version, name, checksum) "
                             "VALUES (%s, %s, %s)",
                             (migration.version, migration.name, migration.checksum))
            done.append(migration.version)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
