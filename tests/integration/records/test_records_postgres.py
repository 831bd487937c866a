"""The record's tables on a real PostgreSQL, one behaviour each.

Idempotent decisions, newest labels, the outbox, profiles, experiment history, the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.bus.ports import Delivery, OutboundMessage, PublishFailed
from services.common.models.repository import ModelRepository
from services.common.models.testing import logistic_model
from services.common.records.outbox import OutboxRelay, enqueue
from services.common.records.registry import RegistryAudit
from services.designs.experiments.definitions import ExperimentDefinition
from services.designs.experiments.records import PostgresExperimentHistory
from services.designs.fraud.records import (
    DecisionOfRecord,
    LabelOfRecord,
    PostgresDecisionRecords,
)
from services.designs.payloads import DecisionReason, FraudDecisionData, FraudLabelData, TitleData
from services.designs.recs.records import CatalogRecords, ProfileRecords

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


def decision(transaction_id: str, action: str = "review", transaction_time: datetime = T0,
             **changes: Any) -> DecisionOfRecord:
    data = FraudDecisionData(
        transaction_id=transaction_id, card_id="card42", user_id="cust42",
        transaction_time=transaction_time,
        amount=61.17, path="http", risk_score=0.55, risk_level="medium", action=action,
        reason_codes=["R_VELOCITY", "ML_SCORE"], rule_hits=["R_VELOCITY"], ml_score=0.31,
        model_version=3, policy_version="2026-11-30", degraded=[],
        features=[0.5, 1.25, -2.0],
        reasons=[DecisionReason(code="R_VELOCITY", text="5 transactions in 10 minutes",
                                contribution=0.35, source="rule"),
                 DecisionReason(code="ML_SCORE", text="fraud probability 0.31",
                                contribution=0.2, source="model")],
        confidence=0.8, **changes)
    return DecisionOfRecord(f"decision:{transaction_id}", T0 + timedelta(milliseconds=5), data)


def test_a_decision_reads_back_whole_and_the_first_one_for_an_id_stays(
        records: ConnectionPool) -> None:
    store = PostgresDecisionRecords(records)
    assert store.write([decision("tx-1"), decision("tx-2", "approve")]) == 2
    assert store.write([decision("tx-1", "decline"), decision("tx-3")]) == 1  # tx-1 repeated
    found = store.find("tx-1")
    assert found == decision("tx-1")
    assert found is not None and found.data.action == "review"
    assert store.find("tx-unknown") is None


def test_a_newer_label_replaces_an_older_one_and_an_older_one_arriving_late_does_not(
        records: ConnectionPool) -> None:
    def label(is_fraud: bool, at: datetime, event_id: str) -> LabelOfRecord:
        return LabelOfRecord(event_id, at, FraudLabelData(
            transaction_id="tx-1", card_id="card42", terminal_id="t1", merchant_id="m1",
            transaction_time=T0, is_fraud=is_fraud))

    store = PostgresDecisionRecords(records)
    store.write_labels([label(True, T0 + timedelta(days=3), "chargeback")])
    store.write_labels([label(False, T0 + timedelta(days=9), "reversed"),
                        label(True, T0 + timedelta(days=1), "late-and-old")])
    with records.connection() as conn:
        row = conn.execute("SELECT is_fraud, event_id FROM fraud_labels").fetchall()
    assert row == [(False, "reversed")]


def test_retention_deletes_decisions_and_labels_of_older_transactions_only(
        records: ConnectionPool) -> None:
    store = PostgresDecisionRecords(records)
    old, recent = T0 - timedelta(days=600), T0 - timedelta(days=10)
    store.write([decision(f"old-{i}", transaction_time=old) for i in range(5)]
                + [decision("recent", transaction_time=recent)])
    store.write_labels([LabelOfRecord(f"label-{tid}", T0, FraudLabelData(
        transaction_id=tid, card_id="card42", terminal_id="t1", merchant_id="m1",
        transaction_time=at, is_fraud=True)) for tid, at in (("old-0", old), ("recent", recent))])

    assert store.expire(T0 - timedelta(days=540), batch=2) == 6  # 5 decisions + 1 label
    assert store.find("recent") is not None and store.find("old-3") is None
    with records.connection() as conn:
        assert conn.execute("SELECT transaction_id FROM fraud_labels").fetchall() == [("recent",)]
    assert store.expire(T0 - timedelta(days=540)) == 0


def title(content_id: str, name: str) -> TitleData:
    return TitleData(content_id=content_id, title=name, genres=["Drama"])


def messages(*ids: str) -> list[OutboundMessage]:
    return [OutboundMessage("catalog", i, f'{{"id": "{i}"}}'.encode()) for i in ids]


class RefusingPublisher:
    """Kafka down: nothing acknowledged."""

    def publish(self, batch: Sequence[OutboundMessage]) -> list[Delivery]:
        return [Delivery(m, error="broker down") for m in batch]

    def close(self) -> None:
        return None


def test_the_outbox_publishes_only_committed_rows_and_marks_them_sent_after_the_ack(
        records: ConnectionPool) -> None:
    catalog = CatalogRecords(records)
    catalog.save([title("t1", "One"), title("t2", "Two")], messages("t1", "t2"), "test", T0)
    with pytest.raises(RuntimeError), records.connection() as conn, conn.transaction():
        enqueue(conn, messages("uncommitted"))
        raise RuntimeError("the transaction fails after enqueueing")

    with pytest.raises(PublishFailed):
        OutboxRelay(records, RefusingPublisher()).relay_once()
    broker = InMemoryBroker()
    relay = OutboxRelay(records, InMemoryPublisher(broker), batch=1)
    assert relay.unsent() == 2  # the refused publish left both unsent
    assert relay.drain() == 2
    assert sorted(r.key or b"" for r in broker.records("catalog")) == [b"t1", b"t2"]
    assert relay.unsent() == 0 and relay.drain() == 0
    assert [t.content_id for t in catalog.titles()] == ["t1", "t2"]
    assert relay.purge_sent(older_than_s=3600) == 0  # sent just now: kept for the day
    assert relay.purge_sent(older_than_s=0) == 2     # the events are in Kafka; the titles stay
    assert [t.content_id for t in catalog.titles()] == ["t1", "t2"]


def test_a_later_load_of_a_title_wins_and_an_earlier_one_does_not(
        records: ConnectionPool) -> None:
    catalog = CatalogRecords(records)
    catalog.save([title("t1", "New name")], [], "test", T0 + timedelta(hours=1))
    catalog.save([title("t1", "Old name")], [], "test", T0)
    assert [t.title for t in catalog.titles()] == ["New name"]


def test_profiles_are_created_then_updated(records: ConnectionPool) -> None:
    profiles = ProfileRecords(records)
    profiles.save([("u1", "kids", 1), ("u2", "adult", 4)])
    profiles.save([("u1", "teen", 2)])
    assert profiles.all() == [("u1", "teen", 2), ("u2", "adult", 4)]


def test_every_experiment_change_is_kept_with_who_made_it(records: ConnectionPool) -> None:
    history = PostgresExperimentHistory(records)
    draft = ExperimentDefinition.model_validate({
        "key": "button-color", "status": "draft",
        "variations": [{"name": "control", "weight": 0.5}, {"name": "blue", "weight": 0.5}]})
    history.record("create", draft, actor="api")
    running = draft.model_copy(update={"status": "running"})
    history.record("status", running, actor="api")
    history.record("status", running.model_copy(update={"status": "stopped"}), actor="ops")
    changes = history.changes("button-color")
    assert [(c.change, c.status, c.actor) for c in changes] == [
        ("create", "draft", "api"), ("status", "running", "api"), ("status", "stopped", "ops")]
    assert [d.status for d in history.definitions()] == ["stopped"]


def test_the_registry_audit_log_has_each_promotion_once_with_its_evaluation(
        records: ConnectionPool, tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path)

    def register(auc: float) -> int:
        return repository.register("fraud", logistic_model([0.1, 0.2]), feature_names=["a", "b"],
                                   metrics={"auc": auc}, training_data_hash="h",
                                   description="test", actor="trainer")

    register(0.9)
    register(0.93)
    repository.promote("fraud", 2, actor="alice")
    repository.rollback("fraud", actor="bob")
    audit = RegistryAudit(records, repository)
    assert audit.sync() == 3
    assert audit.sync() == 0  # idempotent
    log = audit.log("fraud")
    assert [(v, a, p, who) for v, a, p, who, _ in log] == [
        (1, "promote", None, "trainer"), (2, "promote", 1, "alice"), (1, "rollback", 2, "bob")]
    with records.connection() as conn:
        evaluation = conn.execute("SELECT evaluation FROM model_registry_audit "
                                  "WHERE actor = 'alice'").fetchone()
    assert evaluation is not None and evaluation[0]["metrics"] == {"auc": 0.93}
