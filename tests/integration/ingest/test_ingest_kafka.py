"""Ingest in-process against the real broker and Redis: stored when 202, once per id, 503 fast."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from services.common.bus.topics import TRANSACTIONS, WATCH_EVENTS
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.harness import ServerProcess, free_port
from tests.support.ingest import read_back, transaction, watch

pytestmark = pytest.mark.integration






def settings_for(kafka: str, redis_url: str, spool: Path | None = None) -> IngestSettings:
    """Without `spool`, ingest runs without one: a stalled bus is refused (503), as before."""
    return IngestSettings(kafka_bootstrap_servers=kafka, redis_url=redis_url, environment="test",
                          ingest_delivery_timeout_s=5.0, ingest_spool_enabled=spool is not None,
                          ingest_spool_path=spool)


def wait_ready(client: TestClient, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.1)


@pytest.fixture
def ingest(kafka_server: ServerProcess, redis_server: ServerProcess,
           redis_client: redis.Redis) -> Iterator[TestClient]:
    app = create_app(settings_for(kafka_server.address, redis_server.address))
    with TestClient(app) as client:
        wait_ready(client)
        yield client


def unique(prefix: str) -> str:
    # The platform topics outlive a test: ids unique per test keep tests independent.
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_an_acknowledged_event_is_on_its_topic_keyed_by_its_entity(
        ingest: TestClient, kafka_server: ServerProcess) -> None:
    watch_id, tx_id = unique("w"), unique("x")
    response = ingest.post("/v1/events", json={"events": [
        watch(watch_id, user="u42", content="t7", seconds=1200),
        transaction(tx_id, card="card9")]})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == [watch_id, tx_id]

    [stored_watch] = read_back(kafka_server.address, WATCH_EVENTS, {watch_id})
    assert stored_watch.key == "u42"
    assert stored_watch.event.data == {"user_id": "u42", "content_id": "t7",
                                       "watch_seconds": 1200, "completed": False}
    [stored_tx] = read_back(kafka_server.address, TRANSACTIONS, {tx_id})
    assert stored_tx.key == "card9"
    assert stored_tx.event.type == "transaction"


def test_a_batch_posted_twice_is_published_once_and_remembered_for_the_window(
        ingest: TestClient, kafka_server: ServerProcess, redis_client: redis.Redis) -> None:
    ids = [unique("w") for _ in range(5)]
    batch = {"events": [watch(i, user=f"u{n}") for n, i in enumerate(ids)]}
    first = ingest.post("/v1/events", json=batch)
    second = ingest.post("/v1/events", json=batch)

    assert (first.status_code, first.json()["accepted"]) == (202, ids)
    assert (second.status_code, second.json()["duplicates"]) == (202, ids)
    # Both answers came after every acknowledgement, so the topic's end is final for these ids.
    stored = read_back(kafka_server.address, WATCH_EVENTS, set(ids))
    assert sorted(s.event.id for s in stored) == sorted(ids)
    ttl = redis_client.ttl(f"fs:ingest:{{{ids[0]}}}")
    assert 86_000 < ttl <= 86_400


def test_one_users_events_are_stored_in_the_order_posted(
        ingest: TestClient, kafka_server: ServerProcess) -> None:
    ids = [unique("w") for _ in range(30)]
    for start in range(0, 30, 10):  # three posts, in order
        batch = {"events": [watch(i, user="u5") for i in ids[start:start + 10]]}
        assert ingest.post("/v1/events", json=batch).status_code == 202
    stored = read_back(kafka_server.address, WATCH_EVENTS, set(ids))
    assert len({s.partition for s in stored}) == 1
    assert [s.event.id for s in sorted(stored, key=lambda s: s.offset)] == ids


def test_without_redis_events_are_still_published_and_the_outage_is_counted(
        kafka_server: ServerProcess) -> None:
    settings = settings_for(kafka_server.address, f"redis://127.0.0.1:{free_port()}/0")
    event_id = unique("w")
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").json()["checks"]["kafka"] != "ok":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        response = client.post("/v1/events", json={"events": [watch(event_id)]})
        metrics = client.get("/metrics").text
        readyz = client.get("/readyz").json()

    assert response.status_code == 202
    assert readyz["checks"]["redis"] == "not ready"
    assert 'ingest_dedupe_errors_total{operation="stored"} 1.0' in metrics
    assert len(read_back(kafka_server.address, WATCH_EVENTS, {event_id})) == 1


def test_a_broker_on_a_closed_port_gets_503_with_retry_after_within_seconds(
        redis_server: ServerProcess) -> None:
    settings = settings_for(f"127.0.0.1:{free_port()}", redis_server.address)
    with TestClient(create_app(settings)) as client:
        started = time.perf_counter()
        response = client.post("/v1/events", json={"events": [watch(unique("w"))]})
        elapsed = time.perf_counter() - started
        healthz, readyz = client.get("/healthz"), client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["accepted"] == []
    assert elapsed < 3.0
    assert healthz.status_code == 200
    assert readyz.status_code == 503 and readyz.json()["checks"]["kafka"] == "not ready"
