"""The model registry's audit log of record: who promoted what, when, from which evaluation.

Each promotion and rollback is copied from the repository's own history (promotions.json beside
the versions) with the evaluation of the version it made production.

The repository stays the registry (a file tree Triton reads, usable with no database); this
copies its history into PostgreSQL idempotently (one row per change, keyed by model, time,
version and action), so a change made while PostgreSQL was down is recorded on the next sync.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from services.common.models.repository import ModelRepository


def evaluation_of(repository: ModelRepository, name: str, version: int) -> dict[str, Any]:
    """What the version was registered with: its offline metrics, when and from what data."""
    metadata = repository.metadata(name, version)
    return {"metrics": dict(metadata.metrics), "created_at": metadata.created_at.isoformat(),
            "training_data_hash": metadata.training_data_hash,
            "model_sha256": metadata.model_sha256, "description": metadata.description}


class RegistryAudit:
    def __init__(self, pool: ConnectionPool, repository: ModelRepository) -> None:
        self._pool = pool
        self._repository = repository

    def sync(self) -> int:
        """Copy every change not recorded yet; how many were new."""
        rows = []
        for name in self._repository.models():
            for entry in self._repository.history(name):
                rows.append((name, entry.version, entry.action, entry.previous, entry.actor,
                             entry.at, Jsonb(evaluation_of(self._repository, name,
                                                           entry.version))))
        if not rows:
            return 0
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                b"INSERT INTO model_registry_audit (model, version, action, previous_version, "
                b"actor, at, evaluation) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                b"ON CONFLICT DO NOTHING", rows)
            return max(cur.rowcount, 0)

    def log(self, model: str) -> list[tuple[int, str, int | None, str, datetime]]:
        """(version, action, previous, actor, at) of `model`, oldest first."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                b"SELECT version, action, previous_version, actor, at FROM model_registry_audit "
                b"WHERE model = %s ORDER BY at, version", (model,)).fetchall()
        return [(int(v), str(a), None if p is None else int(p), str(who), at)
                for v, a, p, who, at in rows]
