"""The bus's contract against the real Kafka broker, run against every Kafka client it can use.

Each test runs once per adapter (confluent-kafka, kafka-python): round trip, order, DLQ, manual
commits, lag, hand-over on rebalance, stop and crash mid-stream, a failed delivery.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import pytest
import redis
from kafka import KafkaConsumer
from kafka.partitioner.default import murmur2

from services.common.bus.clients import kafka_publisher, kafka_record_source
from services.common.bus.consumer import ConsumerMetrics, ConsumerRunner, RunnerConfig
from services.common.bus.envelope import Event, decode_event
from services.common.bus.kafka_bus import ensure_topics, group_lags
from services.common.bus.ports import (
    OutboundMessage,
    Publisher,
    Record,
    RecordSource,
    TopicPartitionKey,
    publish_or_raise,
)
from services.common.bus.runtime import build_kafka_consumer
from services.common.bus.topics import TopicSpec, dlq_topic
from services.common.settings import KafkaClient, PlatformSettings
from services.common.telemetry import Metrics
from tests.harness import REPO_ROOT, ServerProcess
from tests.support.consumer_worker import CountingHandler

pytestmark = pytest.mark.integration


@pytest.fixture(params=get_args(KafkaClient))
def client(request: pytest.FixtureRequest) -> KafkaClient:
    """Every test that asks for a Kafka client runs once with each."""
    name: KafkaClient = request.param
    return name


def bus_settings(kafka: ServerProcess, client: KafkaClient, **fields: str) -> PlatformSettings:
    return PlatformSettings(kafka_bootstrap_servers=kafka.address, service_name="it",
                            kafka_client=client, **fields)


@pytest.fixture
def topic(kafka_server: ServerProcess) -> str:
    name = f"it-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_server.address, [TopicSpec(name, 3), TopicSpec(dlq_topic(name), 1)])
    return name


@pytest.fixture
def publisher(kafka_server: ServerProcess, client: KafkaClient) -> Iterator[Publisher]:
    producer = kafka_publisher(bus_settings(kafka_server, client), client_id="it-producer")
    yield producer
    producer.close()


def events(topic: str, n: int) -> list[OutboundMessage]:
    return [
        OutboundMessage.of(topic, f"u{i % 7}", Event(
            id=f"ev-{i}", type="watch", source="it", time=datetime.now(UTC),
            data={"user_id": f"u{i % 7}", "content_id": f"t{i}"}))
        for i in range(n)
    ]


def handled_counts(client: redis.Redis, prefix: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(f"{prefix}:handled").items()}


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def in_process_runner(kafka: ServerProcess, redis_server: ServerProcess, client: redis.Redis,
                      topic: str, prefix: str, metrics: Metrics,
                      kafka_client: KafkaClient) -> ConsumerRunner:
    settings = bus_settings(kafka, kafka_client, redis_url=redis_server.address)
    return build_kafka_consumer(
        settings, client, CountingHandler(client, prefix, 0.0), ConsumerMetrics(metrics),
        RunnerConfig(group=f"{topic}-group", topics=(topic,), max_batch=50,
                     commit_interval_s=0.2, poll_timeout_s=0.2),
        session_timeout_s=6.0,
    )


def run_in_thread(runner: ConsumerRunner) -> threading.Thread:
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    return thread


def start_worker(kafka: ServerProcess, redis_server: ServerProcess, topic: str, prefix: str,
                 log: Path, client: KafkaClient, **options: float) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tests.support.consumer_worker",
            "--bootstrap", kafka.address, "--redis-url", redis_server.address,
            "--group", f"{topic}-group", "--topic", topic, "--prefix", prefix,
            "--client", client]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return subprocess.Popen(args, cwd=REPO_ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


@contextmanager
def member(kafka: ServerProcess, client: KafkaClient, topic: str,
           group: str, fetch_wait_ms: int = 0) -> Iterator[RecordSource]:
    source = kafka_record_source(bus_settings(kafka, client), group, [topic],
                                 client_id=f"it-{group}", session_timeout_s=6.0,
                                 fetch_wait_ms=fetch_wait_ms)
    try:
        yield source
    finally:
        source.close()


def poll_records(source: RecordSource, n: int, timeout_s: float = 30.0,
                 settle_s: float = 0.0) -> list[Record]:
    """Poll until `n` records arrived (then `settle_s` more, to catch any extra), or time out."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < n and time.monotonic() < deadline:
        records += source.poll(0.5, max_records=100)
    settle_until = time.monotonic() + settle_s
    while time.monotonic() < settle_until:
        records += source.poll(0.2, max_records=100)
    assert len(records) == n, f"expected {n} records, got {len(records)}"
    return records


def next_offsets(records: Sequence[Record]) -> dict[TopicPartitionKey, int]:
    """Per partition, the offset after the last record read: what a member commits."""
    offsets: dict[TopicPartitionKey, int] = {}
    for record in records:
        key = (record.topic, record.partition)
        offsets[key] = max(offsets.get(key, 0), record.offset + 1)
    return offsets


def keep_polling(source: RecordSource, stop: threading.Event) -> None:
    while not stop.is_set():
        source.poll(0.2, max_records=10)


def test_published_events_are_acknowledged_then_consumed_by_the_group(
        kafka_server: ServerProcess, redis_server: ServerProcess, redis_client: redis.Redis,
        topic: str, publisher: Publisher, client: KafkaClient) -> None:
    deliveries = publish_or_raise(publisher, events(topic, 100))
    assert all(d.offset is not None and d.offset >= 0 for d in deliveries)
    metrics = Metrics("it")
    runner = in_process_runner(kafka_server, redis_server, redis_client, topic, "rt", metrics,
                               client)
    thread = run_in_thread(runner)

    wait_for(lambda: len(handled_counts(redis_client, "rt")) == 100, 30, "100 events handled")
    runner.stop()
    thread.join(15)

    assert set(handled_counts(redis_client, "rt").values()) == {1}
    handled = metrics.registry.get_sample_value(
        "it_consumer_events_total",
        {"group": f"{topic}-group", "topic": topic, "outcome": "handled"})
    assert handled == 100


def test_one_entitys_events_keep_their_order_in_one_partition(
        topic: str, publisher: Publisher) -> None:
    deliveries = publish_or_raise(publisher, events(topic, 70))
    by_user: dict[str, set[int]] = {}
    for d in deliveries:
        by_user.setdefault(d.message.key or "", set()).add(d.partition or 0)
    assert all(len(partitions) == 1 for partitions in by_user.values())
    for user, _ in by_user.items():
        offsets = [d.offset for d in deliveries if d.message.key == user]
        assert offsets == sorted(offsets)  # published in order, stored in order


def test_a_key_lands_in_the_partition_javas_hash_gives_it_whichever_client_wrote_it(
        topic: str, publisher: Publisher) -> None:
    messages = [OutboundMessage(topic, f"card-{i}", b"{}") for i in range(60)]
    deliveries = publish_or_raise(publisher, messages)
    java = {m.key: (murmur2(m.key.encode()) & 0x7FFFFFFF) % 3 for m in messages if m.key}
    assert {d.message.key: d.partition for d in deliveries} == java


def test_a_malformed_message_lands_in_the_dlq_with_its_reason_and_the_consumer_goes_on(
        kafka_server: ServerProcess, redis_server: ServerProcess, redis_client: redis.Redis,
        topic: str, publisher: Publisher, client: KafkaClient) -> None:
    good = events(topic, 10)
    poison = OutboundMessage(topic, "u1", b'{"id": "p1", "type": "watch"}')  # no time, no data
    publish_or_raise(publisher, [*good[:5], poison, *good[5:]])
    runner = in_process_runner(kafka_server, redis_server, redis_client, topic, "dlq",
                               Metrics("it"), client)
    thread = run_in_thread(runner)

    wait_for(lambda: len(handled_counts(redis_client, "dlq")) == 10, 30, "the good events")
    runner.stop()
    thread.join(15)

    dlq = KafkaConsumer(dlq_topic(topic), bootstrap_servers=kafka_server.address,
                        auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    [dead] = [record for record in dlq][:1]
    dlq.close()
    headers = {k: v.decode() for k, v in dead.headers}
    assert dead.value == poison.value
    assert "invalid event envelope" in headers["dlq.reason"]
    assert "time: Field required" in headers["dlq.reason"]
    assert headers["dlq.topic"] == topic


def test_a_member_stopped_mid_stream_hands_over_without_losing_or_repeating_events(
        kafka_server: ServerProcess, redis_server: ServerProcess, redis_client: redis.Redis,
        topic: str, publisher: Publisher, client: KafkaClient, tmp_path: Path) -> None:
    publish_or_raise(publisher, events(topic, 300))
    first = start_worker(kafka_server, redis_server, topic, "stop", tmp_path / "first.log",
                         client, delay_ms=10, max_batch=20)
    wait_for(lambda: len(handled_counts(redis_client, "stop")) >= 60, 60, "the first member")

    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0, (tmp_path / "first.log").read_text()
    handled_by_first = len(handled_counts(redis_client, "stop"))
    assert handled_by_first < 300, "the first member was meant to stop mid-stream"
    runner = in_process_runner(kafka_server, redis_server, redis_client, topic, "stop",
                               Metrics("it"), client)
    thread = run_in_thread(runner)
    wait_for(lambda: len(handled_counts(redis_client, "stop")) == 300, 60, "the second member")
    runner.stop()
    thread.join(15)

    counts = handled_counts(redis_client, "stop")
    assert len(counts) == 300  # nothing lost
    assert set(counts.values()) == {1}  # nothing applied twice


def test_a_member_killed_mid_stream_is_replayed_and_the_dedupe_absorbs_the_replay(
        kafka_server: ServerProcess, redis_server: ServerProcess, redis_client: redis.Redis,
        topic: str, publisher: Publisher, client: KafkaClient, tmp_path: Path) -> None:
    publish_or_raise(publisher, events(topic, 300))
    # A long commit interval: everything the first member handles is still uncommitted when it dies.
    first = start_worker(kafka_server, redis_server, topic, "kill", tmp_path / "first.log",
                         client, delay_ms=10, max_batch=20, commit_interval_s=600)
    wait_for(lambda: len(handled_counts(redis_client, "kill")) >= 100, 60, "the first member")

    first.send_signal(signal.SIGKILL)
    first.wait(10)
    handled_by_first = len(handled_counts(redis_client, "kill"))
    metrics = Metrics("it")
    runner = in_process_runner(kafka_server, redis_server, redis_client, topic, "kill", metrics,
                               client)
    thread = run_in_thread(runner)
    wait_for(lambda: len(handled_counts(redis_client, "kill")) == 300, 60, "the second member")
    runner.stop()
    thread.join(15)

    counts = handled_counts(redis_client, "kill")
    assert len(counts) == 300  # nothing lost
    duplicates = metrics.registry.get_sample_value(
        "it_consumer_events_total",
        {"group": f"{topic}-group", "topic": topic, "outcome": "duplicate"}) or 0
    # The replay of what the first member handled was skipped by event id...
    assert duplicates >= handled_by_first - 20
    # ...except at most the one batch it had applied but not yet marked when it died.
    assert sum(1 for c in counts.values() if c > 1) <= 20


def test_a_message_the_broker_cannot_store_is_a_failed_delivery_not_a_hang(
        kafka_server: ServerProcess, client: KafkaClient) -> None:
    publisher = kafka_publisher(bus_settings(kafka_server, client), client_id="it",
                                delivery_timeout_s=1.0)
    start = time.monotonic()
    [delivery] = publisher.publish([OutboundMessage("no-such-topic", "k", b"{}")])
    elapsed = time.monotonic() - start
    publisher.close()

    assert not delivery.ok
    assert delivery.error is not None
    assert elapsed < 10


def test_a_member_reads_back_each_record_with_its_key_value_and_headers(
        kafka_server: ServerProcess, topic: str, publisher: Publisher,
        client: KafkaClient) -> None:
    [message] = events(topic, 1)
    with_headers = OutboundMessage(topic, "u0", message.value, (("trace", b"t-1"), ("n", b"2")))
    [delivery] = publish_or_raise(publisher, [with_headers])
    with member(kafka_server, client, topic, f"{topic}-read") as source:
        [record] = poll_records(source, 1)

    assert (record.topic, record.partition, record.offset) == (
        topic, delivery.partition, delivery.offset)
    assert record.key == b"u0"
    assert decode_event(record.value) == decode_event(message.value)
    assert record.headers == (("trace", b"t-1"), ("n", b"2"))


def test_a_gathering_member_gets_every_record_and_a_lone_one_within_its_wait(
        kafka_server: ServerProcess, topic: str, publisher: Publisher,
        client: KafkaClient) -> None:
    with member(kafka_server, client, topic, f"{topic}-gather", fetch_wait_ms=300) as source:
        publish_or_raise(publisher, events(topic, 30))
        assert len(poll_records(source, 30)) == 30
        [lone] = events(topic, 1)
        sent = time.monotonic()
        publish_or_raise(publisher, [lone])
        poll_records(source, 1, timeout_s=10)
        # held for company up to the wait, not until a megabyte is there
        assert time.monotonic() - sent < 0.3 + 2.0


def test_a_new_member_resumes_from_exactly_the_offsets_committed(
        kafka_server: ServerProcess, topic: str, publisher: Publisher,
        client: KafkaClient) -> None:
    deliveries = publish_or_raise(publisher, events(topic, 60))
    group = f"{topic}-resume"
    with member(kafka_server, client, topic, group) as first:
        ends = next_offsets(poll_records(first, 60))
        # Commit half of each partition: the next member must start there, not at the end.
        first.commit({key: end // 2 for key, end in ends.items()})
    with member(kafka_server, client, topic, group) as second:
        replayed = poll_records(second, sum(end - end // 2 for end in ends.values()))

    expected = {(d.partition, d.offset) for d in deliveries
                if d.offset is not None and d.offset >= ends[(topic, d.partition or 0)] // 2}
    assert {(r.partition, r.offset) for r in replayed} == expected


def test_lag_counts_the_records_a_member_has_not_consumed_yet(
        kafka_server: ServerProcess, topic: str, publisher: Publisher,
        client: KafkaClient) -> None:
    one_key = [OutboundMessage(topic, "u1", m.value) for m in events(topic, 30)]
    [partition] = {d.partition for d in publish_or_raise(publisher, one_key)}
    with member(kafka_server, client, topic, f"{topic}-lag") as source:
        consumed = 0
        deadline = time.monotonic() + 30
        while consumed < 10 and time.monotonic() < deadline:
            consumed += len(source.poll(0.5, max_records=1))
        assert consumed == 10
        lag = source.lag()
    assert lag[(topic, partition)] == 20
    assert sum(lag.values()) == 20  # the topic's other partitions are empty: nothing behind


def test_a_member_with_nothing_left_to_read_reports_zero_lag_on_every_partition_it_holds(
        kafka_server: ServerProcess, topic: str, publisher: Publisher,
        client: KafkaClient) -> None:
    publish_or_raise(publisher, events(topic, 30))
    group = f"{topic}-caught-up"
    with member(kafka_server, client, topic, group) as first:
        first.commit(next_offsets(poll_records(first, 30)))
    with member(kafka_server, client, topic, group) as second:
        wait_for(lambda: second.poll(0.2, 10) == [] and len(second.lag()) == 3, 30,
                 "the lag of all three partitions")
        assert second.lag() == {(topic, p): 0 for p in range(3)}


def test_a_member_is_told_before_its_partitions_go_and_what_it_commits_then_holds(
        kafka_server: ServerProcess, topic: str, publisher: Publisher,
        client: KafkaClient) -> None:
    publish_or_raise(publisher, events(topic, 30))
    group = f"{topic}-rebalance"
    with member(kafka_server, client, topic, group) as first:
        read = next_offsets(poll_records(first, 30))
        revoked: list[Sequence[TopicPartitionKey]] = []

        def hand_over(partitions: Sequence[TopicPartitionKey]) -> None:
            revoked.append(partitions)
            first.commit({key: read[key] for key in partitions if key in read})

        first.on_revoke(hand_over)
        # A second member joins: the group takes partitions from the first, which is told
        # inside its poll() and commits its progress before they go.
        second = kafka_record_source(bus_settings(kafka_server, client), group, [topic],
                                     client_id="it-second", session_timeout_s=6.0)
        try:
            stop = threading.Event()
            polling = threading.Thread(target=lambda: keep_polling(second, stop), daemon=True)
            polling.start()
            wait_for(lambda: bool(first.poll(0.2, 10) == [] and revoked), 60, "a revocation")
            stop.set()
            polling.join(15)
            handed_over = {key for partitions in revoked for key in partitions}
        finally:
            second.close()
    # Range assignment is eager: every partition is revoked, so all that was read is committed.
    assert handed_over >= set(read)
    with member(kafka_server, client, topic, group) as third:
        assert poll_records(third, 0, settle_s=3.0) == []


def test_group_lag_counts_what_the_group_has_not_committed(
        kafka_server: ServerProcess, redis_server: ServerProcess, redis_client: redis.Redis,
        topic: str, publisher: Publisher, client: KafkaClient) -> None:
    publish_or_raise(publisher, events(topic, 40))
    group = f"{topic}-group"
    assert group_lags(kafka_server.address, {group: [topic]}) == {group: 40}
    runner = in_process_runner(kafka_server, redis_server, redis_client, topic, "lag",
                               Metrics("it"), client)
    thread = run_in_thread(runner)
    wait_for(lambda: len(handled_counts(redis_client, "lag")) == 40, 30, "40 events handled")
    runner.stop()
    thread.join(15)

    assert group_lags(kafka_server.address, {group: [topic]}) == {group: 0}
