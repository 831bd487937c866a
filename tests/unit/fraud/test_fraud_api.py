"""POST /v1/score on fakes: a decision with every field, 4xx that name the problem, the decision
event on fraud-decisions, and no input that makes the service answer 5xx."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.common.bus.envelope import Event, decode_event
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.bus.topics import FRAUD_DECISIONS, TRANSACTIONS_UNRECORDED
from services.designs.fraud.features import fraud_features
from services.designs.fraud.records import DecisionOfRecord
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.designs.parsing import parse_payload
from services.designs.payloads import FraudDecisionData, TransactionData
from services.fraud.app import create_app
from services.fraud.settings import FraudSettings
from tests.support.fraud import (
    CARD_TESTING,
    MODEL_VERSION,
    POLICY_PATH,
    FakeModel,
    FakeStore,
    body,
    model_repository,
    transaction,
)

RESPONSE_FIELDS = {"transaction_id", "risk_score", "risk_level", "action", "reasons", "ml_score",
                   "rule_hits", "confidence", "model_version", "policy_version", "degraded",
                   "degraded_reasons", "replayed", "processing_time_ms"}




class FakeRecord:
    """The decisions of record (PostgreSQL) in a dict, filled as the records service would."""

    def __init__(self) -> None:
        self.rows: dict[str, DecisionOfRecord] = {}
        self.failure: Exception | None = None

    def find(self, transaction_id: str) -> DecisionOfRecord | None:
        if self.failure is not None:
            raise self.failure
        return self.rows.get(transaction_id)

    def write(self, event: Event) -> None:
        data = FraudDecisionData.model_validate(event.data)
        self.rows.setdefault(data.transaction_id, DecisionOfRecord(event.id, event.time, data))


@dataclass
class Fraud:
    client: TestClient
    broker: InMemoryBroker
    store: FakeStore
    model: FakeModel
    record: FakeRecord

    def score(self, payload: dict[str, Any]) -> httpx.Response:
        response: httpx.Response = self.client.post("/v1/score", json=payload)
        return response

    def raw(self, content: bytes | Iterator[bytes]) -> httpx.Response:
        response: httpx.Response = self.client.post(
            "/v1/score", content=content, headers={"content-type": "application/json"})
        return response

    def events(self, count: int, timeout_s: float = 2.0) -> list[tuple[str | None, Event]]:
        """(key, event) of the decisions published, once `count` are there (sent off-thread)."""
        deadline = time.monotonic() + timeout_s
        while len(self.broker.records(FRAUD_DECISIONS)) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return [(r.key.decode() if r.key else None, decode_event(r.value))
                for r in self.broker.records(FRAUD_DECISIONS)]


@pytest.fixture
def fraud(tmp_path: Path) -> Iterator[Fraud]:
    model_repository(tmp_path)
    settings = FraudSettings(fraud_policy_path=POLICY_PATH, model_repository=tmp_path,
                             environment="test")
    broker, store, model, record = InMemoryBroker(), FakeStore(), FakeModel(), FakeRecord()
    app = create_app(settings, store=store, model=model, publisher=InMemoryPublisher(broker),
                     record=record)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Fraud(client, broker, store, model, record)


def test_a_transaction_gets_a_decision_with_every_field(fraud: Fraud) -> None:
    response = fraud.score(body())
    assert response.status_code == 200
    got = response.json()
    assert set(got) == RESPONSE_FIELDS
    assert got["transaction_id"] == "tx100"
    assert (got["action"], got["risk_level"], got["rule_hits"]) == ("approve", "low", [])
    assert got["ml_score"] == pytest.approx(0.05 + 0.0002 * 50, abs=1e-4)
    assert got["risk_score"] == pytest.approx(0.7 * got["ml_score"], abs=1e-4)
    assert got["model_version"] == MODEL_VERSION
    assert got["policy_version"] == "2026-11-21.1"
    assert (got["degraded"], got["degraded_reasons"], got["replayed"]) == (False, [], False)
    assert 0 < got["confidence"] <= 1
    assert got["processing_time_ms"] > 0
    assert got["reasons"][0] == {"code": "ML_SCORE", "source": "model",
                                 "contribution": pytest.approx(got["risk_score"], abs=1e-4),
                                 "text": "fraud model v1: probability 0.06, weighted x0.7"}


def test_a_card_testing_burst_is_declined_with_its_reasons(fraud: Fraud) -> None:
    fraud.store.states["tx100"] = CARD_TESTING
    got = fraud.score(body()).json()
    assert (got["action"], got["risk_level"]) == ("decline", "critical")
    assert got["rule_hits"] == ["CARD_TESTING"]
    assert [r["code"] for r in got["reasons"]][:3] == [
        "CARD_TESTING", "ML_SCORE", "ML_CARD_NB_SMALL_TX_1H"]
    assert got["reasons"][0]["text"] == (
        "3 payments under 5 on the card in the last hour (card testing)")


def test_a_blocked_device_is_declined_by_the_list(fraud: Fraud) -> None:
    got = fraud.score(body(device_id="dev999999")).json()
    assert (got["action"], got["risk_score"], got["confidence"]) == ("decline", 1.0, 1.0)
    assert [r["code"] for r in got["reasons"]] == ["BLOCK_LIST_DEVICE_ID"]


def test_a_card_known_by_its_last_four_digits_is_scored_as_the_customers_card(
        fraud: Fraud) -> None:
    response = fraud.score(body(card_id=None, card_last_four="4242"))
    assert response.status_code == 200
    assert fraud.store.seen[-1].card_id == "cust1:last4:4242"
    ((key, event),) = fraud.events(1)
    assert key == "cust1:last4:4242"
    assert event.data["card_id"] == "cust1:last4:4242"


def test_the_decision_is_published_to_fraud_decisions_with_its_feature_vector(
        fraud: Fraud) -> None:
    fraud.store.states["tx100"] = CARD_TESTING
    got = fraud.score(body()).json()
    ((key, event),) = fraud.events(1)
    assert key == "card1"
    assert (event.id, event.type, event.source) == ("decision:tx100", "fraud_decision", "fraud")
    data = event.data
    assert data["transaction_id"] == "tx100"
    assert data["path"] == "http"
    assert (data["action"], data["rule_hits"]) == (got["action"], got["rule_hits"])
    assert data["reason_codes"] == [r["code"] for r in got["reasons"]]
    assert data["policy_version"] == "2026-11-21.1"
    assert data["model_version"] == MODEL_VERSION
    assert len(data["features"]) == len(FRAUD_FEATURE_NAMES)
    assert data["features"] == fraud_features(transaction(), CARD_TESTING).tolist()


def test_a_repeated_request_is_replayed_and_not_published_again(fraud: Fraud) -> None:
    first = fraud.score(body()).json()
    second = fraud.score(body()).json()
    assert second["replayed"] is True
    for varying in ("replayed", "processing_time_ms"):
        first.pop(varying)
        second.pop(varying)
    assert second == first
    assert len(fraud.events(1)) == 1
    time.sleep(0.05)
    assert len(fraud.events(1)) == 1


def test_a_store_outage_still_gets_a_degraded_decision(fraud: Fraud) -> None:
    fraud.store.failure = ConnectionError("connection refused")
    got = fraud.score(body(amount=1500.0)).json()
    assert got["degraded"] is True
    assert got["degraded_reasons"] == ["features: ConnectionError: connection refused"]
    assert got["rule_hits"] == ["AMOUNT_HIGH"]
    ((_, event),) = fraud.events(1)
    assert event.data["degraded"] == got["degraded_reasons"]


def test_a_transaction_decided_without_its_store_is_handed_to_the_state_writer(
        fraud: Fraud) -> None:
    fraud.store.failure = ConnectionError("connection refused")
    fraud.score(body(amount=1500.0))
    fraud.events(1)  # the handover goes in the same queue, after the decision
    deadline = time.monotonic() + 2
    while not fraud.broker.records(TRANSACTIONS_UNRECORDED) and time.monotonic() < deadline:
        time.sleep(0.005)
    (record,) = fraud.broker.records(TRANSACTIONS_UNRECORDED)
    event = decode_event(record.value)
    assert (record.key, event.id, event.type) == (b"card1", "unrecorded:tx100", "transaction")
    assert parse_payload(event, "transaction", TransactionData) == TransactionData.model_validate(
        body(amount=1500.0))


def test_a_recorded_transaction_is_not_handed_over(fraud: Fraud) -> None:
    fraud.score(body())
    fraud.events(1)
    time.sleep(0.05)
    assert fraud.broker.records(TRANSACTIONS_UNRECORDED) == []


@pytest.mark.parametrize(("changes", "field", "problem"), [
    ({"amount": None}, "amount", "missing"),
    ({"amount": "50"}, "amount", "float_type"),
    ({"amount": 0}, "amount", "greater_than"),
    ({"amount": -5.0}, "amount", "greater_than"),
    ({"amount": 2e6}, "amount", "less_than_equal"),
    ({"latitude": 91}, "latitude", "less_than_equal"),
    ({"longitude": -181}, "longitude", "greater_than_equal"),
    ({"currency": "XYZ"}, "currency", "literal_error"),
    ({"transaction_type": "refund"}, "transaction_type", "literal_error"),
    ({"timestamp": "2026-03-04T12:00:00"}, "timestamp", "timezone_aware"),
    ({"card_last_four": "42a2", "card_id": None}, "card_last_four", "string_pattern_mismatch"),
    ({"merchant_id": "shop\x001"}, "merchant_id", "value_error"),
    ({"ip_address": "999.0.0.1"}, "ip_address", "ip_any_address"),
    ({"colour": "red"}, "colour", "extra_forbidden"),
])
def test_a_bad_field_gets_422_naming_it(fraud: Fraud, changes: dict[str, Any], field: str,
                                        problem: str) -> None:
    response = fraud.score(body(**changes))
    assert response.status_code == 422
    got = response.json()
    assert [(e["field"], e["type"]) for e in got["errors"]] == [(field, problem)]
    assert got["detail"].startswith(f"invalid request: {field}: ")
    assert fraud.store.reads == []  # refused before anything is scored


def test_a_nan_amount_gets_422_naming_it(fraud: Fraud) -> None:
    text = json.dumps(body(amount=12.5)).replace("12.5", "NaN")
    assert '"amount": NaN' in text
    response = fraud.raw(text.encode())
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["amount"]


@pytest.mark.parametrize("changes", [{"card_last_four": "4242"},
                                     {"card_id": None}])
def test_exactly_one_of_card_id_and_card_last_four_is_required(
        fraud: Fraud, changes: dict[str, Any]) -> None:
    response = fraud.score(body(**changes))
    assert response.status_code == 422
    assert "give exactly one of card_id and card_last_four" in response.json()["detail"]


def test_a_timestamp_two_days_ahead_gets_422_naming_it(fraud: Fraud) -> None:
    two_days_ahead = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    response = fraud.score(body(timestamp=two_days_ahead))
    assert response.status_code == 422
    assert response.json()["detail"].startswith("timestamp: ")
    assert "ahead of the service's clock" in response.json()["detail"]
    assert fraud.store.reads == []


def test_a_timestamp_within_the_clock_allowance_is_scored(fraud: Fraud) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=23)).isoformat()
    assert fraud.score(body(timestamp=soon)).status_code == 200


@pytest.mark.parametrize("content", [b"not json", b'{"amount": ', b"", b"\xff\xfe{}"])
def test_a_body_that_is_not_json_gets_400(fraud: Fraud, content: bytes) -> None:
    response = fraud.raw(content)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("the body is not valid JSON")


@pytest.mark.parametrize("content", [b"[]", b'"a string"', b"null", b"42"])
def test_json_that_is_not_an_object_gets_422(fraud: Fraud, content: bytes) -> None:
    assert fraud.raw(content).status_code == 422


def test_a_20_kb_body_gets_413(fraud: Fraud) -> None:
    padded = json.dumps(body(merchant_category="x" * 20_000)).encode()
    response = fraud.raw(padded)
    assert response.status_code == 413
    assert response.json()["detail"] == f"the body has {len(padded)} bytes; the limit is 16384"


def test_a_20_kb_body_sent_in_chunks_gets_413(fraud: Fraud) -> None:
    # Without a Content-Length the limit is enforced while the body streams in.
    response = fraud.raw(iter([b" " * 1024] * 20))
    assert response.status_code == 413
    assert response.json()["detail"] == "the body is over the limit of 16384 bytes"


# --- No input makes a 5xx ---------------------------------------------------------------------

ODD_VALUES: tuple[Any, ...] = (
    None, "", " ", "x" * 300, "é", "\u0000", 0, -1, 1, 1e308, -1e308, 5e-324, 2**64, True, [],
    {}, [1, 2], {"a": 1}, "NaN", "1e400", "2026-02-30T10:00:00Z", "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00", "1970-01-01T00:00:00Z", "2026-03-04T12:00:00+23:59", "::1",
    "fe80::1%eth0", "255.255.255.255", "card", "card1", "cust1", "dev1", "m1", "term1", "0000",
)


def mutated(rng: random.Random) -> bytes:
    payload = body(transaction_id=f"fz{rng.randrange(10**6)}")
    for _ in range(rng.randint(1, 3)):
        field = rng.choice([*payload, "card_last_four", "extra"])
        payload[field] = rng.choice(ODD_VALUES)
        if rng.random() < 0.2:
            payload.pop(field, None)
    text = json.dumps(payload).encode()
    if rng.random() < 0.2:  # and sometimes bytes that are no longer JSON
        at = rng.randrange(len(text))
        text = text[:at] + bytes([rng.randrange(256)]) + text[at + 1:]
    return text


def test_no_mutated_body_gets_a_5xx(fraud: Fraud) -> None:
    rng = random.Random(20261121)
    statuses: dict[int, int] = {}
    for _ in range(400):
        content = mutated(rng)
        status = fraud.raw(content).status_code
        assert status in {200, 400, 413, 422}, content
        statuses[status] = statuses.get(status, 0) + 1
    assert set(statuses) >= {200, 400, 422}  # the fuzz reached every outcome


@pytest.mark.parametrize("changes", [
    {"timestamp": "0001-01-01T00:00:00+14:00"},
    {"timestamp": "1970-01-01T00:00:00-23:59"},
    {"amount": 5e-324},
    {"amount": 1_000_000.0},
    {"latitude": -90, "longitude": 180},
])
def test_extreme_but_valid_values_are_scored(fraud: Fraud, changes: dict[str, Any]) -> None:
    response = fraud.score(body(**changes))
    assert response.status_code == 200
    assert response.json()["action"] in {"approve", "review", "decline"}


def test_an_ipv6_zone_id_is_refused_naming_the_field(fraud: Fraud) -> None:
    # A zone id may hold any character, including the online state's field separator.
    response = fraud.score(body(ip_address="fe80::1%a|b"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "ip_address"


def test_a_recorded_approval_gets_its_ml_factors_on_demand(fraud: Fraud) -> None:
    scored = fraud.score(body(amount=900.0)).json()
    assert scored["action"] == "approve"
    assert [r["code"] for r in scored["reasons"] if r["source"] == "model"] == ["ML_SCORE"]

    got = fraud.client.get("/v1/decisions/tx100")
    assert got.status_code == 200
    recorded = got.json()
    assert recorded["factors_computed_now"] is True
    assert "ML_TX_AMOUNT" in [r["code"] for r in recorded["reasons"]]
    for field in ("risk_score", "action", "ml_score", "rule_hits", "model_version"):
        assert recorded[field] == scored[field]


def test_a_recorded_decline_comes_back_as_it_was_made(fraud: Fraud) -> None:
    fraud.store.states["tx100"] = CARD_TESTING
    scored = fraud.score(body()).json()
    recorded = fraud.client.get("/v1/decisions/tx100").json()
    assert recorded["factors_computed_now"] is False
    assert recorded["reasons"] == scored["reasons"]


def test_an_unknown_decision_gets_404_and_a_bad_id_422(fraud: Fraud) -> None:
    missing = fraud.client.get("/v1/decisions/never%2Fscored")
    assert missing.status_code == 404
    assert "never/scored" in missing.json()["detail"]
    bad = fraud.client.get("/v1/decisions/tab%09here")
    assert bad.status_code == 422
    assert "control character" in json.dumps(bad.json())


def test_an_unreadable_store_of_decisions_gets_503(fraud: Fraud) -> None:
    fraud.store.failure = ConnectionError("redis down")
    got = fraud.client.get("/v1/decisions/tx100")
    assert got.status_code == 503
    assert "ConnectionError" in got.json()["detail"]


def test_a_decision_gone_from_the_window_is_answered_from_the_record_as_the_window_did(
        fraud: Fraud) -> None:
    fraud.store.states["tx100"] = CARD_TESTING
    fraud.score(body())
    fraud.score(body(transaction_id="tx101", amount=900.0))
    from_cache = {t: fraud.client.get(f"/v1/decisions/{t}").json() for t in ("tx100", "tx101")}
    for _, event in fraud.events(2):
        fraud.record.write(event)
    fraud.store.decisions.clear()  # the 60-s window has passed
    for transaction_id, cached in from_cache.items():
        recorded = fraud.client.get(f"/v1/decisions/{transaction_id}").json()
        assert cached["served_from"] == "cache" and recorded["served_from"] == "record"
        for field in ("action", "risk_score", "risk_level", "reasons", "rule_hits", "ml_score",
                      "model_version", "policy_version", "confidence", "degraded_reasons",
                      "factors_computed_now"):
            assert recorded[field] == cached[field], field


def test_a_decision_in_neither_the_window_nor_the_record_gets_404_and_an_unreadable_record_503(
        fraud: Fraud) -> None:
    assert fraud.client.get("/v1/decisions/tx-none").status_code == 404
    fraud.record.failure = OSError("postgres down")
    got = fraud.client.get("/v1/decisions/tx-none")
    assert got.status_code == 503 and "OSError" in got.json()["detail"]


def test_the_record_answers_while_the_window_cannot_be_read(fraud: Fraud) -> None:
    fraud.score(body())
    [(_, event)] = fraud.events(1)
    fraud.record.write(event)
    fraud.store.failure = ConnectionError("redis down")
    got = fraud.client.get("/v1/decisions/tx100")
    assert got.status_code == 200 and got.json()["served_from"] == "record"
