"""The stream processor as a real process on real Kafka and Redis: the issue's guarantees."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from kafka import KafkaConsumer

from services.common.bus.envelope import Event
from services.common.bus.kafka_bus import KafkaPublisher, ensure_topics
from services.common.bus.ports import OutboundMessage, publish_or_raise
from services.common.bus.topics import WATCH_EVENTS, dlq_topic, platform_topics
from tests.e2e.conftest import ServiceProcess
from tests.harness import ServerProcess

pytestmark = pytest.mark.integration
StartService = Callable[..., ServiceProcess]


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def watches(n: int, run: str, users: int = 60, day: datetime | None = None
            ) -> list[OutboundMessage]:
    start = day or datetime.now(UTC)
    return [OutboundMessage.of(WATCH_EVENTS, f"u{i % users}", Event(
        id=f"{run}-{i}", type="watch", source="e2e", time=start + timedelta(milliseconds=i),
        data={"user_id": f"u{i % users}", "content_id": f"t{i % 50}", "watch_seconds": 600,
              "completed": True})) for i in range(n)]


def watches_counted(client: redis.Redis, day: datetime) -> int:
    """Sum of the per-title watch counters of a day: increments, so a double count shows."""
    counts = client.hgetall(f"fs:title_watches:{{global}}:{day:%Y-%m-%d}")
    return sum(int(v) for v in counts.values())


@pytest.fixture
def publisher(kafka_server: ServerProcess) -> KafkaPublisher:
    ensure_topics(kafka_server.address, platform_topics(3))
    return KafkaPublisher(kafka_server.address, client_id="e2e")


@pytest.fixture
def client(redis_client: redis.Redis) -> redis.Redis:
    return redis_client


def test_an_event_posted_to_ingest_shows_up_in_the_online_features(
        start_service: StartService, client: redis.Redis) -> None:
    start_service("stream", MLSD_STREAM_CONCERNS="watch-features,transaction-features")
    ingest = start_service("ingest")
    now = datetime.now(UTC).isoformat()
    body = {"events": [
        {"id": f"e2e-{uuid.uuid4().hex}", "type": "watch", "source": "e2e", "time": now,
         "data": {"user_id": "u7", "content_id": "t3", "watch_seconds": 900,
                  "completed": True}},
        {"id": f"e2e-{uuid.uuid4().hex}", "type": "transaction", "source": "e2e", "time": now,
         "data": {"transaction_id": "e2e-tx1", "user_id": "cust7", "card_id": "card7",
                  "amount": 42.0, "currency": "EUR", "transaction_type": "purchase",
                  "merchant_id": "m1", "merchant_category": "grocery", "terminal_id": "term1",
                  "latitude": 48.0, "longitude": 2.0, "timestamp": now,
                  "ip_address": "10.0.0.7", "device_id": "dev7"}},
    ]}
    posted = time.monotonic()
    response = httpx.post(f"{ingest.url}/v1/events", json=body, timeout=10)
    assert response.status_code == 202, response.text

    wait_for(lambda: client.zcard("fs:watch_history:{u7}") == 1, 10, "the watch in the history")
    wait_for(lambda: client.exists("fs:fraud_card_log:{card7}") == 1, 10, "the card's state")
    assert time.monotonic() - posted < 10


def test_two_processes_share_the_partitions_and_a_stopped_one_hands_over_exactly_once(
        start_service: StartService, publisher: KafkaPublisher, client: redis.Redis) -> None:
    first = start_service("stream", MLSD_STREAM_CONCERNS="watch-features")
    second = start_service("stream", MLSD_STREAM_CONCERNS="watch-features")
    day = datetime.now(UTC)
    publish_or_raise(publisher, watches(3000, "share", day=day))

    def assigned(service: ServiceProcess) -> set[str]:
        text = httpx.get(f"{service.url}/metrics", timeout=5).text
        return {line.split('partition="')[1].split('"')[0] for line in text.splitlines()
                if line.startswith("stream_consumer_lag_records{")
                and 'topic="watch-events"' in line}

    # The first member reports its old partitions until its revoke runs inside its next poll:
    # wait for the rebalance to finish, then the two must hold disjoint, non-empty shares.
    def split() -> bool:
        mine, theirs = assigned(first), assigned(second)
        return bool(mine) and bool(theirs) and mine.isdisjoint(theirs)

    wait_for(split, 30, "the partitions split between both")
    assert assigned(first).isdisjoint(assigned(second))
    wait_for(lambda: watches_counted(client, day) >= 500, 60, "some events applied")
    assert first.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a clean stop

    wait_for(lambda: watches_counted(client, day) >= 3000, 90, "every event applied")
    time.sleep(1.0)  # anything applied twice would show up now
    assert watches_counted(client, day) == 3000


def test_a_malformed_event_reaches_the_dlq_with_its_reason_and_the_processor_goes_on(
        start_service: StartService, publisher: KafkaPublisher, client: redis.Redis,
        kafka_server: ServerProcess) -> None:
    start_service("stream", MLSD_STREAM_CONCERNS="watch-features")
    day = datetime.now(UTC)
    good = watches(20, "dlq", day=day)
    bad = Event(id="dlq-bad", type="watch", source="e2e", time=day,
                data={"user_id": "u1", "content_id": "t1", "watch_seconds": -5,
                      "completed": True})
    publish_or_raise(publisher, [*good[:10], OutboundMessage.of(WATCH_EVENTS, "u1", bad),
                                 *good[10:]])

    wait_for(lambda: watches_counted(client, day) == 20, 30, "the good events")
    consumer = KafkaConsumer(dlq_topic(WATCH_EVENTS), bootstrap_servers=kafka_server.address,
                             auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    records: list[Any] = [r for r in consumer if b"dlq-bad" in (r.value or b"")]
    consumer.close()
    assert records, "the malformed event is not in the DLQ"
    reason = dict(records[0].headers)["dlq.reason"].decode()
    assert "watch_seconds" in reason and "greater than or equal to 0" in reason


def test_a_restarted_processor_resumes_from_its_committed_offsets(
        start_service: StartService, publisher: KafkaPublisher, client: redis.Redis) -> None:
    day = datetime.now(UTC)
    first = start_service("stream", MLSD_STREAM_CONCERNS="watch-features")
    publish_or_raise(publisher, watches(400, "restart-a", day=day))
    wait_for(lambda: watches_counted(client, day) == 400, 60, "the first 400")
    first.stop()
    publish_or_raise(publisher, watches(300, "restart-b", day=day))  # while it is down
    time.sleep(0.5)
    assert watches_counted(client, day) == 400

    start_service("stream", MLSD_STREAM_CONCERNS="watch-features")
    wait_for(lambda: watches_counted(client, day) >= 700, 60, "the 300 published while down")
    time.sleep(1.0)
    assert watches_counted(client, day) == 700  # nothing before the restart was applied again
