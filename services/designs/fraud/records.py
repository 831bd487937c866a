"""Fraud decisions and labels of record: written in batches, idempotently; a decision read by id.

    records = PostgresDecisionRecords(pool)
    records.write([DecisionOfRecord(event_id, decided_at, data), ...])  # new rows written
    records.find("tx-1")                                                 # or None

The first decision for a transaction id is the decision (ON CONFLICT DO NOTHING), as in the
fraud service's 60-s window; a newer label replaces an older one (a chargeback can be reversed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from services.designs.payloads import DecisionReason, FraudDecisionData, FraudLabelData


@dataclass(frozen=True)
class DecisionOfRecord:
    event_id: str
    decided_at: datetime  # the event's time
    data: FraudDecisionData


@dataclass(frozen=True)
class LabelOfRecord:
    event_id: str
    labelled_at: datetime  # the event's time
    data: FraudLabelData


_DECISION_COLUMNS = (
    "transaction_id", "event_id", "card_id", "user_id", "transaction_time", "amount", "path",
    "action", "risk_score", "risk_level", "confidence", "reasons", "reason_codes", "rule_hits",
    "ml_score", "model_version", "policy_version", "degraded", "features", "decided_at")
_INSERT_DECISION = (
    f"INSERT INTO fraud_decisions ({', '.join(_DECISION_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_DECISION_COLUMNS))}) "
    "ON CONFLICT (transaction_id) DO NOTHING").encode()
_SELECT_DECISION = (f"SELECT {', '.join(_DECISION_COLUMNS)} FROM fraud_decisions "
                    "WHERE transaction_id = %s").encode()

_UPSERT_LABEL = b"""
INSERT INTO fraud_labels (transaction_id, is_fraud, card_id, merchant_id, terminal_id,
                          transaction_time, event_id, labelled_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (transaction_id) DO UPDATE
   SET is_fraud = EXCLUDED.is_fraud, event_id = EXCLUDED.event_id,
       labelled_at = EXCLUDED.labelled_at, recorded_at = now()
 WHERE fraud_labels.labelled_at < EXCLUDED.labelled_at"""


def _decision_row(record: DecisionOfRecord) -> tuple[Any, ...]:
    d = record.data
    return (d.transaction_id, record.event_id, d.card_id, d.user_id, d.transaction_time,
            d.amount, d.path, d.action, d.risk_score, d.risk_level, d.confidence,
            Jsonb([r.model_dump() for r in d.reasons]), d.reason_codes, d.rule_hits,
            d.ml_score, d.model_version, d.policy_version, d.degraded, d.features,
            record.decided_at)


def _decision_of(row: Sequence[Any]) -> DecisionOfRecord:
    values = dict(zip(_DECISION_COLUMNS, row, strict=True))
    event_id, decided_at = values.pop("event_id"), values.pop("decided_at")
    values["reasons"] = [DecisionReason.model_validate(r) for r in values["reasons"]]
    return DecisionOfRecord(event_id, decided_at, FraudDecisionData.model_validate(values))


# The transaction's time, not the decision's: disputes and chargebacks are counted from the
# purchase. ctid batches: PostgreSQL's DELETE has no LIMIT.
_EXPIRE_DECISIONS = (b"DELETE FROM fraud_decisions WHERE ctid IN (SELECT ctid FROM fraud_decisions"
                     b" WHERE transaction_time < %s LIMIT %s)")
_EXPIRE_LABELS = (b"DELETE FROM fraud_labels WHERE ctid IN (SELECT ctid FROM fraud_labels"
                  b" WHERE transaction_time < %s LIMIT %s)")


class PostgresDecisionRecords:
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def write(self, decisions: Sequence[DecisionOfRecord]) -> int:
        """Insert the batch in one transaction (psycopg pipelines the statements: one round
        trip); a transaction id already recorded keeps its first decision. Returns how many
        rows were new."""
        if not decisions:
            return 0
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(_INSERT_DECISION, [_decision_row(d) for d in decisions])
            return max(cur.rowcount, 0)

    def find(self, transaction_id: str) -> DecisionOfRecord | None:
        with self._pool.connection() as conn:
            row = conn.execute(_SELECT_DECISION, (transaction_id,)).fetchone()
        return None if row is None else _decision_of(row)

    def expire(self, before: datetime, batch: int = 10_000) -> int:
        """Delete decisions and labels of transactions made before `before` (retention), a
        batch of rows per statement so no delete holds its locks long. How many rows went."""
        removed = 0
        with self._pool.connection() as conn:
            for statement in (_EXPIRE_DECISIONS, _EXPIRE_LABELS):
                while True:
                    gone = max(conn.execute(statement, (before, batch)).rowcount, 0)
                    conn.commit()
                    removed += gone
                    if gone < batch:
                        break
        return removed

    def write_labels(self, labels: Sequence[LabelOfRecord]) -> None:
        if not labels:
            return
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(_UPSERT_LABEL, [
                (label.data.transaction_id, label.data.is_fraud, label.data.card_id,
                 label.data.merchant_id, label.data.terminal_id, label.data.transaction_time,
                 label.event_id, label.labelled_at) for label in labels])
