"""A decision as the event published to `fraud-decisions` (the feedback loop's half of the join)."""

from __future__ import annotations

from services.common.bus.events import Event
from services.common.bus.ports import OutboundMessage
from services.common.events import FraudDecisionData
from services.fraud.scorer import Scored, ScoringPath

EVENT_TYPE = "fraud_decision"


def decision_message(scored: Scored, path: ScoringPath, topic: str) -> OutboundMessage:
    """Keyed by card, so a card's decisions stay in order; the event id is derived from the
    transaction id, so a decision published twice is one decision to its consumers."""
    txn, decision = scored.transaction, scored.decision
    data = FraudDecisionData(
        transaction_id=txn.transaction_id, card_id=txn.card_id, user_id=txn.user_id,
        transaction_time=txn.timestamp, amount=txn.amount, path=path,
        risk_score=decision.risk_score, risk_level=decision.risk_level, action=decision.action,
        reason_codes=[r.code for r in decision.reasons], rule_hits=list(decision.rule_hits),
        ml_score=decision.ml_score, model_version=decision.model_version,
        policy_version=decision.policy_version, degraded=list(decision.degraded),
        features=None if scored.features is None else scored.features.tolist(),
    )
    event = Event.new(EVENT_TYPE, "fraud", data.model_dump(mode="json"),
                      id=f"decision:{txn.transaction_id}")
    return OutboundMessage.of(topic, txn.card_id, event)
