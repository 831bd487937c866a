"""The consumer runner's contract, on the in-memory broker: at-least-once, dedupe, DLQ, retries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.bus.consumer import (
    ConsumerMetrics,
    ConsumerRunner,
    PoisonEvent,
    RunnerConfig,
    TransientError,
)
from services.common.bus.dedupe import InMemoryDeduplicator
from services.common.bus.envelope import Event
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
from services.common.bus.ports import OutboundMessage
from services.common.telemetry import Metrics

TOPIC = "watch-events"


class RecordingHandler:
    def __init__(self, poison_ids: set[str] = frozenset(),  # type: ignore[assignment]
                 transient_failures: int = 0) -> None:
        self.handled: list[str] = []
        self.flushed: list[list[str]] = []
        self._buffer: list[str] = []
        self._poison_ids = poison_ids
        self._transient_failures = transient_failures

    def handle(self, event: Event) -> None:
        if self._transient_failures > 0:
            self._transient_failures -= 1
            raise TransientError("redis hiccup")
        if event.id in self._poison_ids:
            raise PoisonEvent(f"user {event.data.get('user_id')!r} is not a user id")
        self._buffer.append(event.id)

    def flush(self) -> None:
        self.handled.extend(self._buffer)
        self.flushed.append(list(self._buffer))
        self._buffer.clear()


def watch(event_id: str, user: str = "u1") -> OutboundMessage:
    event = Event(id=event_id, type="watch", source="test", time=datetime.now(UTC),
                  data={"user_id": user, "content_id": "t1"})
    return OutboundMessage.of(TOPIC, user, event)


def make_runner(broker: InMemoryBroker, handler: RecordingHandler,
                dedupe: InMemoryDeduplicator | None = None,
                **config: float) -> tuple[ConsumerRunner, InMemoryRecordSource, Metrics]:
    source = InMemoryRecordSource(broker, "g", [TOPIC])
    metrics = Metrics("test")
    runner = ConsumerRunner(
        source, handler, dedupe or InMemoryDeduplicator(), InMemoryPublisher(broker),
        RunnerConfig(**{"group": "g", "topics": (TOPIC,), "commit_interval_s": 0.0,  # type: ignore[arg-type]
                        "backoff_initial_s": 0.001, "backoff_max_s": 0.002, **config}),
        ConsumerMetrics(metrics),
    )
    return runner, source, metrics


def committed(broker: InMemoryBroker) -> int:
    return sum(o for (group, _), o in broker.committed.items() if group == "g")


def test_handles_every_event_then_commits_its_offset() -> None:
    broker = InMemoryBroker()
    InMemoryPublisher(broker).publish([watch(f"e{i}", f"u{i}") for i in range(10)])
    handler = RecordingHandler()
    runner, _, _ = make_runner(broker, handler)

    outcome = runner.run_once()

    assert outcome.handled == 10
    assert sorted(handler.handled) == sorted(f"e{i}" for i in range(10))
    assert committed(broker) == 10


def test_skips_an_event_whose_id_was_already_handled() -> None:
    broker = InMemoryBroker()
    publisher = InMemoryPublisher(broker)
    publisher.publish([watch("e1"), watch("e1"), watch("e2")])
    handler = RecordingHandler()
    dedupe = InMemoryDeduplicator()
    runner, _, _ = make_runner(broker, handler, dedupe)
    runner.run_once()
    publisher.publish([watch("e2")])  # a producer retry after a lost ack

    outcome = runner.run_once()

    assert handler.handled == ["e1", "e2"]
    assert outcome.duplicates == 1


def test_a_malformed_message_goes_to_the_dlq_with_its_reason_and_the_consumer_goes_on() -> None:
    broker = InMemoryBroker()
    publisher = InMemoryPublisher(broker)
    publisher.publish([watch("e1"), OutboundMessage(TOPIC, "u1", b'{"id": "x", "type": 5}'),
                       watch("e2")])
    handler = RecordingHandler()
    runner, _, _ = make_runner(broker, handler)

    outcome = runner.run_once()

    assert handler.handled == ["e1", "e2"]
    assert outcome.dead_lettered == 1
    [dead] = broker.records("watch-events.dlq")
    headers = dict(dead.headers)
    assert dead.value == b'{"id": "x", "type": 5}'
    assert b"invalid event envelope" in headers["dlq.reason"]
    assert headers["dlq.topic"] == b"watch-events"
    assert committed(broker) == 3


def test_an_event_its_handler_rejects_is_dead_lettered_with_the_handlers_reason() -> None:
    broker = InMemoryBroker()
    InMemoryPublisher(broker).publish([watch("e1", "bad user"), watch("e2")])
    handler = RecordingHandler(poison_ids={"e1"})
    runner, _, _ = make_runner(broker, handler)

    runner.run_once()

    assert handler.handled == ["e2"]
    [dead] = broker.records("watch-events.dlq")
    assert b"PoisonEvent: user 'bad user' is not a user id" in dict(dead.headers)["dlq.reason"]


def test_dead_letter_count_is_zero_before_the_first_poison_event_so_increase_sees_it() -> None:
    broker = InMemoryBroker()
    InMemoryPublisher(broker).publish([watch("e1", "bad user")])
    runner, _, metrics = make_runner(broker, RecordingHandler(poison_ids={"e1"}))
    labels = {"group": "g", "topic": TOPIC, "outcome": "dead_lettered"}

    before = metrics.registry.get_sample_value("test_consumer_events_total", labels)
    runner.run_once()

    assert before == 0
    assert metrics.registry.get_sample_value("test_consumer_events_total", labels) == 1


def test_a_transient_error_is_retried_until_the_event_is_handled() -> None:
    broker = InMemoryBroker()
    InMemoryPublisher(broker).publish([watch("e1")])
    handler = RecordingHandler(transient_failures=2)
    runner, _, metrics = make_runner(broker, handler)

    runner.run_once()

    assert handler.handled == ["e1"]
    assert metrics.registry.get_sample_value("test_consumer_retries_total", {"group": "g"}) == 2


def test_persistent_transient_errors_stop_the_consumer_without_committing() -> None:
    broker = InMemoryBroker()
    InMemoryPublisher(broker).publish([watch("e1")])
    handler = RecordingHandler(transient_failures=100)
    runner, _, _ = make_runner(broker, handler, max_attempts=3)

    with pytest.raises(TransientError):
        runner.run_once()

    assert committed(broker) == 0
    assert handler.handled == []


def test_records_are_not_committed_while_their_dead_letters_cannot_be_stored() -> None:
    broker = InMemoryBroker()
    InMemoryPublisher(broker).publish([OutboundMessage(TOPIC, "u1", b"not json")])
    runner, _, _ = make_runner(broker, RecordingHandler(), max_attempts=2)
    broker.unavailable = True

    with pytest.raises(TransientError):
        runner.run_once()

    assert committed(broker) == 0


def test_buffered_effects_are_flushed_before_offsets_are_committed() -> None:
    broker = InMemoryBroker()
    InMemoryPublisher(broker).publish([watch("e1"), watch("e2")])
    handler = RecordingHandler()
    runner, _, _ = make_runner(broker, handler)

    runner.run_once()

    assert handler.flushed == [["e1", "e2"]]
    assert committed(broker) == 2


def test_a_new_member_resumes_from_the_committed_offsets() -> None:
    broker = InMemoryBroker()
    publisher = InMemoryPublisher(broker)
    publisher.publish([watch("e1"), watch("e2")])
    first = RecordingHandler()
    make_runner(broker, first)[0].run_once()
    publisher.publish([watch("e3")])
    second = RecordingHandler()

    make_runner(broker, second)[0].run_once()

    assert first.handled == ["e1", "e2"]
    assert second.handled == ["e3"]


def test_stop_ends_the_loop_commits_and_closes_the_source() -> None:
    broker = InMemoryBroker()
    InMemoryPublisher(broker).publish([watch("e1")])
    handler = RecordingHandler()
    runner, source, _ = make_runner(broker, handler, commit_interval_s=3600)

    class StopAfterFirstFlush(RecordingHandler):
        def flush(self) -> None:
            super().flush()
            runner.stop()

    runner._handler = StopAfterFirstFlush()
    runner.run()

    assert source.closed
    assert committed(broker) == 1


def test_lag_is_exported_per_partition() -> None:
    broker = InMemoryBroker(partitions=1)
    InMemoryPublisher(broker).publish([watch(f"e{i}") for i in range(5)])
    runner, _, metrics = make_runner(broker, RecordingHandler(), max_batch=2)

    runner.run_once()

    lag = metrics.registry.get_sample_value(
        "test_consumer_lag_records", {"group": "g", "topic": TOPIC, "partition": "0"})
    assert lag == 3


class SettlingHandler(RecordingHandler):
    """Flushes without its effects being durable yet: settle() makes them so, or fails."""

    def __init__(self, settle_failures: int) -> None:
        super().__init__()
        self.settled: list[str] = []
        self._settle_failures = settle_failures

    def settle(self) -> None:
        if self._settle_failures > 0:
            self._settle_failures -= 1
            raise TransientError("the broker did not acknowledge")
        self.settled = list(self.handled)


def test_a_settling_handler_is_settled_before_its_offsets_are_committed() -> None:
    broker = InMemoryBroker()
    InMemoryPublisher(broker).publish([watch(f"e{i}", f"u{i}") for i in range(4)])
    handler = SettlingHandler(settle_failures=2)  # retried by the runner, then settled
    runner, _, _ = make_runner(broker, handler)

    runner.run_once()

    assert sorted(handler.settled) == [f"e{i}" for i in range(4)]
    assert committed(broker) == 4


def test_nothing_is_committed_while_the_handler_cannot_settle() -> None:
    broker = InMemoryBroker()
    InMemoryPublisher(broker).publish([watch(f"e{i}", f"u{i}") for i in range(4)])
    handler = SettlingHandler(settle_failures=100)
    runner, _, _ = make_runner(broker, handler, max_attempts=3)

    with pytest.raises(TransientError):
        runner.run_once()

    assert handler.settled == []
    assert committed(broker) == 0
