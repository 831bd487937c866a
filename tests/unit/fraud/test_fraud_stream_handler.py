"""The stream scorer's handler, pipelined: a batch's decisions are acknowledged while the next is
scored, in order, at most one batch in flight, and a failed publish is published again before
anything after it (on fakes: FraudScorer on FakeStore and FakeModel, a publisher held by a gate).
And what it did not record in the online state goes to the state writer's topic.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common.bus.consumer import TransientError
from services.common.bus.envelope import Event
from services.common.bus.ports import Delivery, OutboundMessage, Publisher
from services.common.bus.topics import FRAUD_DECISIONS, TRANSACTIONS_UNRECORDED
from services.common.telemetry import Metrics
from services.fraud.metrics import FraudMetrics
from services.fraud.policy_file import load_engine
from services.fraud.scorer import FraudScorer, ReferenceCache
from services.fraud.stream import StreamScoringHandler
from tests.support.fraud import POLICY_PATH, FakeModel, FakeStore, body, model_repository

WAIT_S = 5.0


class GatedPublisher:
    """Holds every publish until the gate opens; the first `failures` publishes fail."""

    def __init__(self, failures: int = 0) -> None:
        self.gate = threading.Event()
        self.attempts: list[list[str]] = []   # transaction ids of every publish, in call order
        self.stored: list[str] = []           # of those that succeeded
        self._failures = failures
        self._lock = threading.Lock()

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        ids = [json.loads(m.value)["data"]["transaction_id"] for m in messages]
        with self._lock:
            self.attempts.append(ids)
        assert self.gate.wait(WAIT_S), "the test never opened the gate"
        with self._lock:
            if self._failures > 0:
                self._failures -= 1
                return [Delivery(m, error="KafkaError _MSG_TIMED_OUT") for m in messages]
            self.stored += ids
        return [Delivery(m, 0, i) for i, m in enumerate(messages)]

    def close(self) -> None:
        pass


def handler_for(tmp_path: Path, publisher: Publisher, pipelined: bool = True,
                store: FakeStore | None = None) -> StreamScoringHandler:
    registry = CollectorRegistry()
    engine = load_engine(POLICY_PATH)
    scorer = FraudScorer(
        store=store or FakeStore(), model=FakeModel(), policy=lambda: engine,
        references=ReferenceCache(model_repository(tmp_path), "fraud"),
        metrics=FraudMetrics(Metrics("fraud_test", registry)))
    scorer.warm_up()
    return StreamScoringHandler(
        scorer=scorer, publisher=publisher, topic="fraud-decisions",
        freshness=Histogram("freshness_seconds", "", registry=registry),
        stale=Counter("stale", "", registry=registry),
        unrecorded=Counter("unrecorded", "", ("reason",), registry=registry),
        max_age_s=3600, pipelined=pipelined)


def batch(handler: StreamScoringHandler, *ids: str, age: timedelta = timedelta(0)) -> None:
    at = datetime.now(UTC) - age
    for tid in ids:
        handler.handle(Event(id=f"e-{tid}", type="transaction", source="test", time=at,
                             data=body(transaction_id=tid, card_id=f"card-{tid}",
                                       timestamp=at.isoformat())))


def returns_within(call: Callable[[], None], seconds: float) -> tuple[bool, threading.Thread]:
    """Run `call` on a thread; whether it returned within `seconds` (the thread, to join)."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive(), thread


def test_flush_returns_while_its_decisions_are_unacknowledged_and_settle_waits_for_them(
        tmp_path: Path) -> None:
    publisher = GatedPublisher()
    handler = handler_for(tmp_path, publisher)
    batch(handler, "a1", "a2")

    returned, _ = returns_within(handler.flush, WAIT_S)
    assert returned, "a pipelined flush waited for the broker"
    settled, thread = returns_within(handler.settle, 0.3)
    assert not settled, "settle returned before the batch was acknowledged"
    assert publisher.stored == []

    publisher.gate.set()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert publisher.stored == ["a1", "a2"]
    handler.close()


def test_without_pipelining_flush_returns_only_once_acknowledged(tmp_path: Path) -> None:
    publisher = GatedPublisher()
    handler = handler_for(tmp_path, publisher, pipelined=False)
    batch(handler, "a1")

    returned, thread = returns_within(handler.flush, 0.3)
    assert not returned
    publisher.gate.set()
    thread.join(WAIT_S)
    assert publisher.stored == ["a1"]


def test_the_next_batch_is_published_only_after_the_one_in_flight(tmp_path: Path) -> None:
    publisher = GatedPublisher()
    handler = handler_for(tmp_path, publisher)
    batch(handler, "a1", "a2")
    handler.flush()
    batch(handler, "b1")

    returned, thread = returns_within(handler.flush, 0.3)
    assert not returned, "a second batch went out while the first was in flight"
    assert publisher.attempts == [["a1", "a2"]]
    publisher.gate.set()
    thread.join(WAIT_S)
    handler.settle()
    assert publisher.stored == ["a1", "a2", "b1"]
    handler.close()


def test_a_batch_whose_publish_failed_is_published_again_before_the_next(
        tmp_path: Path) -> None:
    publisher = GatedPublisher(failures=1)
    publisher.gate.set()
    handler = handler_for(tmp_path, publisher)
    batch(handler, "a1")
    handler.flush()  # fails on the acknowledging thread
    batch(handler, "b1")

    handler.flush()
    handler.settle()

    assert publisher.attempts == [["a1"], ["a1"], ["b1"]]
    assert publisher.stored == ["a1", "b1"]
    handler.close()


def test_settle_raises_while_the_batch_cannot_be_stored_and_keeps_it_for_the_retry(
        tmp_path: Path) -> None:
    publisher = GatedPublisher(failures=2)
    publisher.gate.set()
    handler = handler_for(tmp_path, publisher)
    batch(handler, "a1")
    handler.flush()

    with pytest.raises(TransientError):
        handler.settle()  # the first publish and its retry both failed
    handler.settle()      # the runner's next try: published

    assert publisher.stored == ["a1"]
    assert publisher.attempts == [["a1"], ["a1"], ["a1"]]
    handler.close()


class BrokenPublisher(GatedPublisher):
    """A publisher with a bug: its first publish raises something no one expected."""

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        if not self.attempts:
            self.attempts.append([])
            raise RuntimeError("a bug in the publisher")
        return super().publish(messages)


def test_a_batch_whose_publish_raised_unexpectedly_stays_unsettled(tmp_path: Path) -> None:
    """Not a transient failure, so not retried here, but never forgotten: every settle raises
    until it is published, so the runner commits nothing past it."""
    publisher = BrokenPublisher()
    publisher.gate.set()
    handler = handler_for(tmp_path, publisher)
    batch(handler, "a1")
    handler.flush()

    for _ in range(2):
        with pytest.raises(RuntimeError):
            handler.settle()
    assert publisher.stored == []
    handler.close()


class TopicsPublisher:
    """Keeps every message it is given, by topic: (key, event id, transaction id)."""

    def __init__(self) -> None:
        self.by_topic: dict[str, list[tuple[str | None, str, str]]] = {}

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        for m in messages:
            event = json.loads(m.value)
            self.by_topic.setdefault(m.topic, []).append(
                (m.key, event["id"], event["data"]["transaction_id"]))
        return [Delivery(m, 0, i) for i, m in enumerate(messages)]

    def close(self) -> None:
        pass


def published(tmp_path: Path, store: FakeStore, *batches: tuple[tuple[str, ...], timedelta]
              ) -> TopicsPublisher:
    publisher = TopicsPublisher()
    handler = handler_for(tmp_path, publisher, store=store)
    for ids, age in batches:
        batch(handler, *ids, age=age)
    handler.flush()
    handler.settle()
    handler.close()
    return publisher


def test_what_the_store_recorded_is_not_handed_to_the_state_writer(tmp_path: Path) -> None:
    publisher = published(tmp_path, FakeStore(), (("a1", "a2"), timedelta(0)))

    assert [tid for _, _, tid in publisher.by_topic[FRAUD_DECISIONS]] == ["a1", "a2"]
    assert TRANSACTIONS_UNRECORDED not in publisher.by_topic


def test_a_batch_decided_without_the_store_goes_to_the_state_writer_as_it_came(
        tmp_path: Path) -> None:
    store = FakeStore()
    store.failure = ConnectionError("redis down")

    publisher = published(tmp_path, store, (("a1", "a2"), timedelta(0)))

    assert [tid for _, _, tid in publisher.by_topic[FRAUD_DECISIONS]] == ["a1", "a2"]
    assert publisher.by_topic[TRANSACTIONS_UNRECORDED] == [
        ("card-a1", "e-a1", "a1"), ("card-a2", "e-a2", "a2")]


def test_only_the_transactions_the_store_skipped_go_to_the_state_writer(tmp_path: Path) -> None:
    store = FakeStore()
    store.skipping = {"a2": "breaker open for master 127.0.0.1:7001"}

    publisher = published(tmp_path, store, (("a1", "a2", "a3"), timedelta(0)))

    assert [tid for _, _, tid in publisher.by_topic[FRAUD_DECISIONS]] == ["a1", "a2", "a3"]
    assert publisher.by_topic[TRANSACTIONS_UNRECORDED] == [("card-a2", "e-a2", "a2")]


def test_transactions_too_old_to_decide_go_to_the_state_writer_undecided(tmp_path: Path) -> None:
    store = FakeStore()

    publisher = published(tmp_path, store, (("old1",), timedelta(hours=2)),
                          (("new1",), timedelta(0)), (("old2",), timedelta(hours=2)))

    assert [tid for _, _, tid in publisher.by_topic[FRAUD_DECISIONS]] == ["new1"]
    assert publisher.by_topic[TRANSACTIONS_UNRECORDED] == [
        ("card-old1", "e-old1", "old1"), ("card-old2", "e-old2", "old2")]
    assert store.reads == [["new1"]]


def test_a_batch_of_only_old_transactions_is_still_handed_over(tmp_path: Path) -> None:
    store = FakeStore()

    publisher = published(tmp_path, store, (("old1", "old2"), timedelta(hours=2)))

    assert FRAUD_DECISIONS not in publisher.by_topic
    assert [tid for _, _, tid in publisher.by_topic[TRANSACTIONS_UNRECORDED]] == ["old1", "old2"]
    assert store.reads == []
