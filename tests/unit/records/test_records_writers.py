"""The writers of record without servers: what is poison, what is transient, what is written."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from services.common.bus.consumer import PoisonEvent, TransientError
from services.common.bus.envelope import Event
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.telemetry import Metrics
from services.designs.fraud.records import DecisionOfRecord, LabelOfRecord
from services.fraud.record import recorded_of
from services.records.app import RecordsMetrics, loops, runner_config
from services.records.settings import RecordsSettings
from services.records.writers import DecisionWriter, LabelWriter

AT = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


def decision_data(**changes: Any) -> dict[str, Any]:
    return {"transaction_id": "tx-1", "card_id": "card1", "user_id": "cust1",
            "transaction_time": AT.isoformat(), "amount": 12.5, "path": "stream",
            "risk_score": 0.7, "risk_level": "high", "action": "decline",
            "reason_codes": ["R_NIGHT", "ML_SCORE"], "rule_hits": ["R_NIGHT"], "ml_score": 0.4,
            "model_version": 2, "policy_version": "p1", "degraded": [], "features": [1.0, 2.0],
            **changes}


def event(event_type: str, data: dict[str, Any], event_id: str = "e1") -> Event:
    return Event(id=event_id, type=event_type, source="test", time=AT, data=data)


class Written:
    def __init__(self, failure: Exception | None = None) -> None:
        self.batches: list[list[Any]] = []
        self.failure = failure

    def __call__(self, batch: Sequence[Any]) -> None:
        if self.failure is not None:
            raise self.failure
        self.batches.append(list(batch))


def test_a_batch_is_written_once_on_flush_with_each_events_id_and_time() -> None:
    written = Written()
    writer = DecisionWriter(written)
    writer.handle(event("fraud_decision", decision_data(), "decision:tx-1"))
    writer.handle(event("fraud_decision", decision_data(transaction_id="tx-2"), "decision:tx-2"))
    assert written.batches == []
    writer.flush()
    writer.flush()  # nothing pending: nothing written
    [batch] = written.batches
    assert [(d.event_id, d.data.transaction_id, d.decided_at) for d in batch] == [
        ("decision:tx-1", "tx-1", AT), ("decision:tx-2", "tx-2", AT)]
    assert writer.written == 2


@pytest.mark.parametrize(("event_type", "data", "why"), [
    ("transaction", decision_data(), "is not 'fraud_decision'"),
    ("fraud_decision", decision_data(action="maybe"), "invalid fraud_decision"),
    ("fraud_decision", decision_data(policy_version="p\x00"), "NUL"),
])
def test_what_the_record_cannot_take_is_poison(event_type: str, data: dict[str, Any],
                                               why: str) -> None:
    with pytest.raises(PoisonEvent, match=why):
        DecisionWriter(Written()).handle(event(event_type, data))


def test_postgres_away_is_transient_and_the_batch_is_kept_for_the_retry() -> None:
    written = Written(psycopg.OperationalError("connection refused"))
    writer = DecisionWriter(written)
    writer.handle(event("fraud_decision", decision_data()))
    with pytest.raises(TransientError, match="postgres"):
        writer.flush()
    written.failure = None
    writer.flush()
    assert len(written.batches) == 1 and writer.written == 1


def test_labels_are_buffered_like_decisions() -> None:
    written = Written()
    writer = LabelWriter(written)
    writer.handle(event("fraud_label", {"transaction_id": "tx-1", "card_id": "c",
                                        "terminal_id": "t", "merchant_id": "m",
                                        "transaction_time": AT.isoformat(), "is_fraud": True}))
    writer.flush()
    [[label]] = written.batches
    assert isinstance(label, LabelOfRecord) and label.data.is_fraud


def test_a_decision_recorded_before_reasons_were_carried_whole_keeps_its_codes() -> None:
    written = Written()
    writer = DecisionWriter(written)
    writer.handle(event("fraud_decision", decision_data()))  # no `reasons`, no `confidence`
    writer.flush()
    [[row]] = written.batches
    assert isinstance(row, DecisionOfRecord)
    recorded = recorded_of(row)
    assert [(r.code, r.source) for r in recorded.decision.reasons] == [
        ("R_NIGHT", "rule"), ("ML_SCORE", "model")]
    assert recorded.features == (1.0, 2.0)


def test_the_retention_loop_runs_only_when_a_retention_is_set() -> None:
    def names(settings: RecordsSettings) -> list[str]:
        built = loops(settings, None, InMemoryPublisher(InMemoryBroker()),  # type: ignore[arg-type]
                      RecordsMetrics(Metrics(f"records_test_{id(settings)}")))
        return [loop.name for loop in built]

    assert names(RecordsSettings()) == ["outbox-relay", "registry-audit"]
    assert names(RecordsSettings(records_keep_days=540)) == [
        "outbox-relay", "registry-audit", "retention"]


def test_a_writer_outlasts_a_postgres_failover_before_its_process_ends() -> None:
    """A refused batch is tried again for longer than the cluster topology's failover takes
    (15.65 s from the kill to a server taking writes: benchmarks/results/chaos/
    postgres_failover.json; with 6 tries the service ended itself during it):
    each try waits up to the pool's timeout, and the waits between grow to 2 s."""
    settings = RecordsSettings()
    config = runner_config(settings, settings.records_decisions_group, "fraud-decisions")
    assert config.max_attempts == settings.records_retry_attempts == 20
    between = sum(min(config.backoff_max_s, config.backoff_initial_s * 2 ** n)
                  for n in range(config.max_attempts - 1))
    assert between > 25.0
