"""Fault 5 of issue 17: poison and oversized events, produced by a foreign client straight to
every consumed topic, each end in the topic's dead-letter twin with a reason, once per consumer
group, and the consumers go on with the good events behind them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer, TopicPartition
from redis.cluster import RedisCluster

from services.common.bus import topics
from services.common.bus.envelope import MAX_EVENT_BYTES
from services.common.kafka_access import KafkaAccess
from tests.chaos.load import write_report
from tests.e2e.conftest import StartService
from tests.harness import ClusterTopology, ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.chaos]

# Every consumed topic and the consumer groups that read it (services/stream/concerns.py,
# services/fraud/stream.py, services/records/app.py).
CONSUMERS = {
    topics.WATCH_EVENTS: ("stream-watch-features",),
    topics.TRANSACTIONS: ("fraud-scorer",),
    topics.TRANSACTIONS_UNRECORDED: ("stream-unrecorded-transactions",),
    topics.FRAUD_LABELS: ("stream-fraud-labels", "records-fraud-labels"),
    topics.EXPOSURES: ("stream-experiments",),
    topics.REC_IMPRESSIONS: ("stream-experiments",),
    topics.REC_CLICKS: ("stream-experiments",),
    topics.CATALOG: ("stream-catalog-titles",),
    topics.FRAUD_DECISIONS: ("records-fraud-decisions",),
}
GOOD_AFTER = 200  # good watch events behind the poison: the consumer must go on


def poison(prefix: str) -> dict[str, tuple[str, bytes]]:
    """Three kinds -> (marker, value): each value carries its marker, so that its dead letter
    can be found."""
    now = datetime.now(UTC).isoformat()
    return {
        "not-json": (f"{prefix}not-json", f"\x00{prefix}not-json is not JSON".encode()),
        "bad-envelope": (f"{prefix}bad-envelope",
                         json.dumps({"id": f"{prefix}bad-envelope", "type": "watch"}).encode()),
        "oversized": (f"{prefix}oversized", json.dumps(
            {"id": f"{prefix}oversized", "type": "watch", "source": "foreign", "time": now,
             "data": {"pad": "x" * MAX_EVENT_BYTES}}).encode()),
    }


def dead_letters(kafka: KafkaAccess, topic: str) -> Iterator[tuple[bytes, dict[str, bytes]]]:
    consumer = KafkaConsumer(**kafka.python_config(), enable_auto_commit=False,
                             max_partition_fetch_bytes=4 * 1024 * 1024)
    try:
        partition = TopicPartition(topics.dlq_topic(topic), 0)
        consumer.assign([partition])
        consumer.seek_to_beginning()
        end = consumer.end_offsets([partition])[partition]
        while consumer.position(partition) < end:
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    yield record.value or b"", {k: v for k, v in record.headers}
    finally:
        consumer.close()


def test_poison_and_oversized_events_on_every_topic_end_in_their_dlq_with_a_reason(
        on_cluster: StartService, cluster_topology: ClusterTopology,
        cluster_client: RedisCluster, postgres_server: ServerProcess,
        report_dir: Path) -> None:
    on_cluster("stream")  # its default concerns
    on_cluster("fraud.stream")
    on_cluster("records", MLSD_POSTGRES_PORT=postgres_server.extra["port"])
    run = uuid.uuid4().hex[:8]
    producer = Producer({**cluster_topology.kafka_access.librdkafka_config(), "acks": "all",
                         "message.max.bytes": 2 * 1024 * 1024})
    sent: dict[tuple[str, str], str] = {}
    started = datetime.now(UTC)
    produced_at = time.monotonic()
    for topic in CONSUMERS:
        for kind, (marker, value) in poison(f"poison-{run}-{topic}-").items():
            producer.produce(topic, value=value, key=b"poison")
            sent[(topic, kind)] = marker
    day = datetime.now(UTC)
    good_titles = [f"g{run}-{k}" for k in range(10)]
    for n in range(GOOD_AFTER):
        event = {"id": f"good-{run}-{n}", "type": "watch", "source": "foreign",
                 "time": day.isoformat(), "data": {"user_id": f"u{n % 50}",
                                                   "content_id": good_titles[n % 10],
                                                   "watch_seconds": 60, "completed": False}}
        producer.produce(topics.WATCH_EVENTS, value=json.dumps(event).encode(),
                         key=f"u{n % 50}".encode())
    assert producer.flush(30) == 0

    expected = {(topic, kind, group) for (topic, kind) in sent for group in CONSUMERS[topic]}
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    deadline = time.monotonic() + 90
    while expected - found.keys() and time.monotonic() < deadline:
        time.sleep(1.0)
        for topic in CONSUMERS:
            for value, headers in dead_letters(cluster_topology.kafka_access, topic):
                for kind in ("not-json", "bad-envelope", "oversized"):
                    key = (topic, kind, headers.get("dlq.group", b"").decode())
                    if sent[(topic, kind)].encode() in value and key not in found:
                        found[key] = {"reason": headers.get("dlq.reason", b"").decode()[:160],
                                      "seen_after_s": round(time.monotonic() - produced_at, 1)}
    day_key = f"fs:title_watches:{{global}}:{day:%Y-%m-%d}"

    def applied() -> int:
        return sum(int(v or 0) for v in cluster_client.hmget(day_key, good_titles))

    deadline = time.monotonic() + 60
    while applied() < GOOD_AFTER and time.monotonic() < deadline:
        time.sleep(0.5)
    good_applied_after = round(time.monotonic() - produced_at, 1)

    results = {
        "poison_sent": len(sent), "dead_letters_expected": len(expected),
        "dead_letters_found": len(found), "missing": sorted(map(list, expected - found.keys())),
        "good_events_after_poison": GOOD_AFTER, "good_events_applied": applied(),
        "good_events_applied_within_s": good_applied_after,
        "by_topic": {f"{t} / {k} / {g}": v for (t, k, g), v in sorted(found.items())},
    }
    write_report(report_dir, "poison_events",
                 "a foreign client (confluent-kafka, raw bytes) produces three poison events to "
                 "each consumed topic: not JSON, an invalid envelope, an oversized event over "
                 f"MAX_EVENT_BYTES ({MAX_EVENT_BYTES:,} bytes); then good watch events behind "
                 "them", started, {"topics": list(CONSUMERS), "good_after": GOOD_AFTER}, results)

    assert not expected - found.keys(), f"not dead-lettered: {expected - found.keys()}"
    assert all(v["reason"] for v in found.values())
    assert all("oversized" in v["reason"] for (_, k, _), v in found.items() if k == "oversized")
    assert applied() == GOOD_AFTER, "the consumer stopped behind the poison"
