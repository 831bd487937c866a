"""A decision as the event published to `fraud-decisions` (the feedback loop's half of the join)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from services.common.bus.ports import OutboundMessage
from services.common.ids import event_id
from services.designs.payloads import TransactionData
from services.fraud.scorer import Scored, ScoringPath
from services.fraud.transaction import ScoredTransaction

EVENT_TYPE = "fraud_decision"
TRANSACTION_FIELDS = tuple(TransactionData.model_fields)


def decision_message(scored: Scored, path: ScoringPath, topic: str) -> OutboundMessage:
    """Keyed by card, so a card's decisions stay in order; the event id is derived from the
    transaction id, so a decision published twice is one decision to its consumers.

    The bytes are an Event whose data is a FraudDecisionData, written straight from the decision
    by pydantic's own serializer (so every field, number and time reads exactly as the models
    would write it) without building and validating the two models first: that took ~20 µs a
    decision, the stream scorer's largest cost outside scoring. The decision is ours, already
    typed; tests/unit/fraud/test_fraud_decision_events.py holds the bytes equal to the models'."""
    txn, decision = scored.transaction, scored.decision
    data: dict[str, Any] = {  # FraudDecisionData's fields, in its order
        "transaction_id": txn.transaction_id,
        "card_id": txn.card_id,
        "user_id": txn.user_id,
        "transaction_time": txn.timestamp,
        "amount": float(txn.amount),
        "path": path,
        "risk_score": float(decision.risk_score),
        "risk_level": decision.risk_level,
        "action": decision.action,
        "reason_codes": [r.code for r in decision.reasons],
        "rule_hits": list(decision.rule_hits),
        "ml_score": None if decision.ml_score is None else float(decision.ml_score),
        "model_version": None if decision.model_version is None else int(decision.model_version),
        "policy_version": decision.policy_version,
        "degraded": list(decision.degraded),
        "features": None if scored.features is None else scored.features.tolist(),
        "reasons": [{"code": r.code, "text": r.text, "contribution": float(r.contribution),
                     "source": r.source} for r in decision.reasons],
        "confidence": float(decision.confidence),
    }
    event = {"id": event_id("decision", txn.transaction_id), "type": EVENT_TYPE, "source": "fraud",
             "time": datetime.now(UTC), "data": data}
    # inf_nan_mode="null": what model_dump_json writes for a non-finite float (ser_json_inf_nan)
    return OutboundMessage(topic, txn.card_id, to_json(event, inf_nan_mode="null"))


def unrecorded_message(txn: ScoredTransaction, topic: str) -> OutboundMessage:
    """A transaction the HTTP path decided without recording it in the online state (its store
    failed or was skipped for it), as the `transactions` event the state writer records from
    `transactions-unrecorded` (docs/adr/0007). Keyed by card; its event id derived from the
    transaction id, so a retried request's handover is one event to the writer."""
    event = {"id": event_id("unrecorded", txn.transaction_id), "type": "transaction",
             "source": "fraud", "time": txn.timestamp,
             "data": {name: getattr(txn, name) for name in TRANSACTION_FIELDS}}
    return OutboundMessage(topic, txn.card_id, to_json(event))
