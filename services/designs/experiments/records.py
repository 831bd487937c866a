"""Experiment definitions of record and their change history: every create, update and stop.

    history = PostgresExperimentHistory(pool)
    history.record("create", definition, actor="api")   # experiments row + a change row, one txn
    history.changes("rec-algorithm")                     # oldest first
    history.definitions()                                # the current ones (for a rebuild)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from services.designs.experiments.definitions import ExperimentDefinition

Change = Literal["create", "update", "status"]


@dataclass(frozen=True)
class ExperimentChange:
    key: str
    change: Change
    status: str
    definition: ExperimentDefinition
    actor: str
    changed_at: datetime


class ExperimentHistory(Protocol):
    """Where the experiments service records each change before it takes effect."""

    def record(self, change: Change, definition: ExperimentDefinition, actor: str) -> None: ...


class PostgresExperimentHistory:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def record(self, change: Change, definition: ExperimentDefinition, actor: str) -> None:
        body = Jsonb(definition.model_dump(mode="json"))
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(
                b"INSERT INTO experiments (key, status, definition) VALUES (%s, %s, %s) "
                b"ON CONFLICT (key) DO UPDATE SET status = EXCLUDED.status, "
                b"definition = EXCLUDED.definition, updated_at = now()",
                (definition.key, definition.status, body))
            conn.execute(
                b"INSERT INTO experiment_changes (key, change, status, definition, actor) "
                b"VALUES (%s, %s, %s, %s, %s)",
                (definition.key, change, definition.status, body, actor))

    def changes(self, key: str) -> list[ExperimentChange]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                b"SELECT key, change, status, definition, actor, changed_at "
                b"FROM experiment_changes WHERE key = %s ORDER BY id", (key,)).fetchall()
        return [ExperimentChange(k, change, status, ExperimentDefinition.model_validate(d),
                                 actor, at) for k, change, status, d, actor, at in rows]

    def definitions(self) -> list[ExperimentDefinition]:
        with self._pool.connection() as conn:
            rows = conn.execute(b"SELECT definition FROM experiments ORDER BY key").fetchall()
        return [ExperimentDefinition.model_validate(row[0]) for row in rows]
