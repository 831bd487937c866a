"""A decision's `fraud-decisions` message: the bytes the pydantic models write, field for field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from services.common.bus.envelope import Event, decode_event
from services.common.bus.ports import OutboundMessage
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.designs.payloads import DecisionReason, FraudDecisionData, TransactionData, payload_of
from services.fraud.decide import FEATURES_MISSING, MODEL_MISSING, Decision, decide
from services.fraud.decision_events import EVENT_TYPE, decision_message
from services.fraud.explain import Factor, ModelVerdict
from services.fraud.policy_file import load_engine
from services.fraud.rules import ListHit, RuleHit
from services.fraud.scorer import Scored, ScoringPath
from services.fraud.transaction import Transaction
from tests.harness import REPO_ROOT

POLICY = load_engine(REPO_ROOT / "config/fraud/policy.toml").policy
TOPIC = "fraud-decisions"


def models_message(scored: Scored, path: ScoringPath, topic: str) -> OutboundMessage:
    """The message as it was written through the models (FraudDecisionData, then Event)."""
    txn, decision = scored.transaction, scored.decision
    data = FraudDecisionData(
        transaction_id=txn.transaction_id, card_id=txn.card_id, user_id=txn.user_id,
        transaction_time=txn.timestamp, amount=txn.amount, path=path,
        risk_score=decision.risk_score, risk_level=decision.risk_level, action=decision.action,
        reason_codes=[r.code for r in decision.reasons], rule_hits=list(decision.rule_hits),
        ml_score=decision.ml_score, model_version=decision.model_version,
        policy_version=decision.policy_version, degraded=list(decision.degraded),
        features=None if scored.features is None else scored.features.tolist(),
        reasons=[DecisionReason(code=r.code, text=r.text, contribution=r.contribution,
                                source=r.source) for r in decision.reasons],
        confidence=decision.confidence,
    )
    event = Event.new(EVENT_TYPE, "fraud", data.model_dump(mode="json"),
                      id=f"decision:{txn.transaction_id}")
    return OutboundMessage.of(topic, txn.card_id, event)


def stream_transaction(**changes: object) -> TransactionData:
    fields: dict[str, object] = {
        "transaction_id": "tx-1", "user_id": "cust42", "card_id": "card42", "amount": 61.17,
        "currency": "EUR", "transaction_type": "purchase", "merchant_id": "m1940",
        "merchant_category": "fuel", "terminal_id": "term4594", "latitude": 45.178069737891306,
        "longitude": 2.5595430063813986, "timestamp": "2026-11-21T23:57:47.123456+00:00",
        "ip_address": "81.15.153.12", "device_id": "dev156"}
    payload = payload_of("transaction", fields | changes)
    assert isinstance(payload, TransactionData)
    return payload


def http_transaction() -> Transaction:
    return Transaction(
        transaction_id="Zoë's \"tx\" {1}|2", user_id="cust:7", card_id="cust:7:last4:1234",
        terminal_id="t", merchant_id="m", merchant_category="grocery", amount=12,  # type: ignore[arg-type]
        currency="USD", transaction_type="payment", latitude=0.0, longitude=-0.0,
        timestamp=datetime(2026, 11, 21, 10, tzinfo=timezone(timedelta(hours=2))),
        ip_address="::1", device_id="d")


def features(seed: int, special: bool = False) -> np.ndarray:
    vector = np.random.default_rng(seed).random(len(FRAUD_FEATURE_NAMES), dtype=np.float32)
    if special:
        vector[:3] = (np.nan, np.inf, 1e-30)
    return vector


def verdict(score: float) -> ModelVerdict:
    names = list(FRAUD_FEATURE_NAMES)
    return ModelVerdict(score, 3, tuple(Factor(names[j], 0.1 * j, 0.05 * j, 0.01 * j)
                                        for j in (4, 9, 17)))


def fired(*indices: int) -> list[RuleHit]:
    rules = [r for r in POLICY.rules if r.enabled]
    return [RuleHit(rules[i].id, f"{rules[i].id} fired", rules[i].score, rules[i].action)
            for i in indices]


def decided(hits: list[RuleHit], model: ModelVerdict | None, degraded: list[str],
            amount: float, listed: ListHit | None = None) -> Decision:
    return decide(POLICY, listed=listed, hits=hits, model=model, degraded=degraded, amount=amount)


CASES = {
    "approved by the model": lambda: Scored(
        stream_transaction(), decided([], verdict(0.0123), [], 61.17), features(1), False),
    "declined by rules and the model": lambda: Scored(
        stream_transaction(amount=999_999.99), decided(fired(0, 1, 5), verdict(0.97), [],
                                                       999_999.99), features(2), False),
    "reviewed without the model or the history": lambda: Scored(
        stream_transaction(), decided(fired(3), None, [f"{FEATURES_MISSING}: timeout",
                                                       f"{MODEL_MISSING}: ModelError: down"],
                                      61.17), features(3), False),
    "blocked by a list": lambda: Scored(
        stream_transaction(device_id="dev999999"),
        decided([], verdict(0.5), [], 61.17, ListHit("block", "device_id", "dev999999")),
        features(4), False),
    "replayed, with no features": lambda: Scored(
        stream_transaction(), decided([], verdict(1.0), [], 61.17), None, True),
    "over HTTP, odd ids, an offset time, an integer amount": lambda: Scored(
        http_transaction(), decided(fired(2), verdict(0.31), [], 12), features(5), False),
}
# A non-finite feature is written as null, by the models as here (and so does not read back).
NON_FINITE = {"non-finite features": lambda: Scored(
    stream_transaction(), decided([], verdict(0.2), [], 61.17), features(6, special=True), False)}


@pytest.mark.parametrize("path", ["stream", "http"])
@pytest.mark.parametrize("case", list(CASES | NON_FINITE))
def test_the_message_is_the_bytes_the_models_write(case: str, path: ScoringPath) -> None:
    scored = (CASES | NON_FINITE)[case]()
    before = datetime.now(UTC)
    written, expected = decision_message(scored, path, TOPIC), models_message(scored, path, TOPIC)

    assert (written.topic, written.key, written.headers) == (
        expected.topic, expected.key, expected.headers)
    ours, theirs = json.loads(written.value), json.loads(expected.value)
    # The envelope's time is the moment each was written: equal once the one is put in the other.
    assert datetime.fromisoformat(ours["time"]) >= before
    assert written.value == expected.value.replace(
        json.dumps(theirs["time"]).encode(), json.dumps(ours["time"]).encode(), 1)
    assert ours == theirs | {"time": ours["time"]}


@pytest.mark.parametrize("case", list(CASES))
def test_the_message_reads_back_as_a_fraud_decision(case: str) -> None:
    scored = CASES[case]()
    event = decode_event(decision_message(scored, "stream", TOPIC).value)
    data = FraudDecisionData.model_validate(event.data)
    assert (event.id, event.type, event.source) == (
        f"decision:{scored.transaction.transaction_id}", EVENT_TYPE, "fraud")
    assert list(event.data) == list(FraudDecisionData.model_fields)
    assert data.reason_codes == [r.code for r in scored.decision.reasons]
    assert data.action == scored.decision.action


def test_a_decision_for_a_128_character_transaction_id_has_a_valid_event_id() -> None:
    """`decision:<id>` would be 137 characters: the id's digest keeps the event id valid."""
    long_id = "t" * 128
    scored = Scored(stream_transaction(transaction_id=long_id),
                    decided([], verdict(0.0123), [], 61.17), features(1), False)
    event = decode_event(decision_message(scored, "http", "fraud-decisions").value)
    assert len(event.id) <= 128 and event.id.startswith("decision:sha256:")
    assert event.data["transaction_id"] == long_id
    again = decode_event(decision_message(scored, "http", "fraud-decisions").value)
    assert again.id == event.id
