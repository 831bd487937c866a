"""The records service on real Kafka and PostgreSQL: decisions and labels reach the record.

Fraud's decisions land in the record off the request path, once each; poison goes to the DLQ;
GET /v1/decisions answers from the record once the window has let a decision go."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from services.common.bus.clients import kafka_publisher
from services.common.bus.envelope import Event
from services.common.bus.kafka_bus import ensure_topics, records_to_end
from services.common.bus.ports import OutboundMessage, publish_or_raise
from services.common.bus.topics import FRAUD_DECISIONS, FRAUD_LABELS, dlq_topic, platform_topics
from services.common.records.settings import PostgresSettings
from services.designs.fraud.records import PostgresDecisionRecords
from services.fraud.app import create_app as create_fraud
from services.fraud.settings import FraudSettings
from services.records.app import create_app as create_records
from services.records.settings import RecordsSettings
from tests.harness import ServerProcess
from tests.support.fraud import (
    CARD_TESTING,
    POLICY_PATH,
    FakeModel,
    FakeStore,
    body,
    model_repository,
)

pytestmark = pytest.mark.integration


def until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def count_of(pool: ConnectionPool, transaction_ids: list[str]) -> int:
    """Decisions of record among these transactions."""
    with pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM fraud_decisions WHERE transaction_id = ANY(%s)",
                           (transaction_ids,)).fetchone()
    return 0 if row is None else int(row[0])


def count(pool: ConnectionPool, table: str) -> int:
    with pool.connection() as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
    return 0 if row is None else int(row[0])


@pytest.fixture
def records_service(kafka_server: ServerProcess, postgres_settings: PostgresSettings,
                    records: ConnectionPool, tmp_path: Path) -> Iterator[RecordsSettings]:
    model_repository(tmp_path / "models")
    settings = RecordsSettings(kafka_bootstrap_servers=kafka_server.address,
                               model_repository=tmp_path / "models", environment="test",
                               records_commit_interval_s=0.2, records_outbox_interval_s=0.1)
    ensure_topics(kafka_server.address, platform_topics(3))
    with TestClient(create_records(settings, postgres_settings)) as client:
        until(lambda: client.get("/readyz").status_code == 200)
        yield settings


def test_fraud_decisions_reach_the_record_once_and_the_window_falls_back_to_it(
        records_service: RecordsSettings, kafka_server: ServerProcess,
        postgres_settings: PostgresSettings, records: ConnectionPool, tmp_path: Path) -> None:
    settings = FraudSettings(fraud_policy_path=POLICY_PATH, model_repository=tmp_path / "models",
                             kafka_bootstrap_servers=kafka_server.address, environment="test")
    # Other tests publish decisions to the same broker's topic, some with ids like these: this
    # test's ids are its own, and only they are counted.
    ids = [f"rec-{uuid.uuid4().hex[:8]}-tx{i}" for i in range(100, 110)]
    store = FakeStore({ids[0]: CARD_TESTING})
    app = create_fraud(settings, store=store, model=FakeModel(),
                       record=PostgresDecisionRecords(records))
    with TestClient(app) as fraud:
        scored = [fraud.post("/v1/score", json=body(transaction_id=i)).json() for i in ids]
        fraud.post("/v1/score", json=body(transaction_id=ids[0]))  # replayed: not republished
        cached = fraud.get(f"/v1/decisions/{ids[0]}").json()
        until(lambda: count_of(records, ids) == 10)
        store.decisions.clear()  # the 60-s window has let them go
        recorded = fraud.get(f"/v1/decisions/{ids[0]}").json()
        missing = fraud.get("/v1/decisions/never-scored")
    assert cached["served_from"] == "cache" and recorded["served_from"] == "record"
    assert {k: v for k, v in recorded.items() if k not in ("served_from", "processing_time_ms")} \
        == {k: v for k, v in cached.items() if k not in ("served_from", "processing_time_ms")}
    assert recorded["action"] == scored[0]["action"] == "decline"
    assert missing.status_code == 404


def test_a_redelivered_decision_is_stored_once_and_poison_goes_to_the_dead_letter_topic(
        records_service: RecordsSettings, kafka_server: ServerProcess,
        records: ConnectionPool) -> None:
    def decision(transaction_id: str, action: str) -> Event:
        data: dict[str, Any] = {
            "transaction_id": transaction_id, "card_id": "card1", "user_id": "cust1",
            "transaction_time": "2026-12-06T05:00:00+00:00", "amount": 12.5, "path": "stream",
            "risk_score": 0.1, "risk_level": "low", "action": action, "reason_codes": [],
            "rule_hits": [], "ml_score": 0.1, "model_version": 1, "policy_version": "p",
            "degraded": [], "features": None}
        return Event(id=f"decision:{transaction_id}", type="fraud_decision", source="fraud",
                     time="2026-12-06T05:00:01+00:00", data=data)  # type: ignore[arg-type]

    wrong_type = decision("tx-w", "approve").model_copy(update={"type": "transaction"})
    bad_field = decision("tx-b", "approve").model_copy(
        update={"data": {**decision("tx-b", "approve").data, "action": "maybe"}})
    messages = [OutboundMessage.of(FRAUD_DECISIONS, "card1", e) for e in (
        decision("tx-1", "approve"), decision("tx-1", "decline"), wrong_type, bad_field,
        decision("tx-2", "review"))]
    messages.append(OutboundMessage(FRAUD_DECISIONS, "card1", b"not json"))
    publisher = kafka_publisher(records_service, client_id="test-decisions")
    try:
        publish_or_raise(publisher, messages)
    finally:
        publisher.close()
    until(lambda: count(records, "fraud_decisions") == 2)
    until(lambda: len(list(records_to_end(kafka_server.address,
                                          dlq_topic(FRAUD_DECISIONS)))) >= 3)
    dead = list(records_to_end(kafka_server.address, dlq_topic(FRAUD_DECISIONS)))
    reasons = {dict(r.headers)["dlq.reason"].decode()[:40] for r in dead}
    assert len(dead) == 3, reasons
    found = PostgresDecisionRecords(records).find("tx-1")
    assert found is not None and found.data.action == "approve"  # the first one stays


def test_labels_and_chargebacks_reach_the_record(
        records_service: RecordsSettings, kafka_server: ServerProcess,
        records: ConnectionPool) -> None:
    label = Event.new("fraud_label", "bank", {
        "transaction_id": "tx-9", "card_id": "card9", "terminal_id": "t9", "merchant_id": "m9",
        "transaction_time": "2026-12-01T10:00:00+00:00", "is_fraud": True})
    publisher = kafka_publisher(records_service, client_id="test-labels")
    try:
        publish_or_raise(publisher, [OutboundMessage.of(FRAUD_LABELS, "card9", label)])
    finally:
        publisher.close()
    until(lambda: count(records, "fraud_labels") == 1)
    with records.connection() as conn:
        assert conn.execute("SELECT transaction_id, is_fraud FROM fraud_labels").fetchall() \
            == [("tx-9", True)]
