"""The decisions of record as fraud reads them: PostgreSQL, once the 60-s window let one go.

The records service writes them from `fraud-decisions`, off the decision path; this only reads
(GET /v1/decisions), through a pool that connects in the background, so the service starts and
scores with PostgreSQL away.
"""

from __future__ import annotations

from typing import Literal, Protocol

from services.designs.fraud.records import DecisionOfRecord
from services.fraud.decide import Decision, Reason
from services.fraud.scorer import Recorded

ServedFrom = Literal["cache", "record"]


class DecisionRecord(Protocol):
    """PostgresDecisionRecords in the service; unit tests pass a dict-backed fake."""

    def find(self, transaction_id: str) -> DecisionOfRecord | None: ...


def recorded_of(found: DecisionOfRecord) -> Recorded:
    """The decision as the window would have kept it. Events written before reasons were
    carried whole name their codes only: those come back with the code as their text."""
    d = found.data
    reasons = (tuple(Reason(r.code, r.text, r.contribution, r.source) for r in d.reasons)
               or tuple(Reason(code, code, 0.0, "model" if code.startswith("ML_") else "rule")
                        for code in d.reason_codes))
    decision = Decision(
        risk_score=d.risk_score, risk_level=d.risk_level, action=d.action, reasons=reasons,
        rule_hits=tuple(d.rule_hits), ml_score=d.ml_score, model_version=d.model_version,
        confidence=0.0 if d.confidence is None else d.confidence, degraded=tuple(d.degraded),
        policy_version=d.policy_version)
    return Recorded(decision, None if d.features is None else tuple(d.features))
