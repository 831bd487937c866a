"""The spool against a real broker: paused, ingest still answers 202; resumed, every event lands.

The broker here is this module's own (SIGSTOP on the session's broker would stall other tests):
a paused broker is what acks=all looks like during an election, no write acknowledged.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from services.common.bus.dedupe import RedisDeduplicator
from services.common.bus.topics import WATCH_EVENTS
from services.common.probe import kafka_ready
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.harness import ServerProcess, start_kafka
from tests.support.ingest import Stored, read_back, start_ingest, watch

pytestmark = pytest.mark.integration

DELIVERY_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_kafka(Path(tmp_path_factory.mktemp("spool-kafka")))
    yield server
    os.kill(server.process.pid, signal.SIGCONT)  # never leave it stopped
    server.stop()


def pause(kafka: ServerProcess) -> None:
    os.kill(kafka.process.pid, signal.SIGSTOP)


def resume(kafka: ServerProcess) -> None:
    os.kill(kafka.process.pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while not kafka_ready(kafka.address, timeout_s=2.0):
        assert time.monotonic() < deadline, "the broker did not answer after SIGCONT"


def batch(run: str, first: int, n: int, user: str = "u1") -> list[dict[str, object]]:
    return [watch(f"{run}-{k}", user=user) for k in range(first, first + n)]


def await_on_topic(kafka: ServerProcess, ids: set[str], timeout_s: float = 60.0) -> list[Stored]:
    deadline = time.monotonic() + timeout_s
    while True:
        stored = read_back(kafka.address, WATCH_EVENTS, ids)
        if {s.event.id for s in stored} == ids or time.monotonic() > deadline:
            return stored
        time.sleep(0.5)


def applied_once(client: redis.Redis, stored: list[Stored], run: str) -> list[str]:
    """The ids a consumer applies, through the consumers' own dedupe (by event id, in Redis)."""
    seen = RedisDeduplicator.with_prefix(client, f"test:{run}:", 3600)
    applied = []
    for record in sorted(stored, key=lambda s: (s.partition, s.offset)):
        if not seen.seen([record.event.id]):
            seen.mark([record.event.id])
            applied.append(record.event.id)
    return applied


def test_while_the_broker_is_paused_batches_are_spooled_202_and_all_arrive_once_it_resumes(
        own_kafka: ServerProcess, redis_server: ServerProcess, redis_client: redis.Redis,
        tmp_path: Path) -> None:
    run = f"sp{uuid.uuid4().hex[:8]}"
    settings = IngestSettings(kafka_bootstrap_servers=own_kafka.address,
                              redis_url=redis_server.address, environment="test",
                              ingest_delivery_timeout_s=DELIVERY_TIMEOUT_S,
                              ingest_spool_path=tmp_path / "spool.sqlite3")
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.1)
        live = client.post("/v1/events", json={"events": batch(run, 0, 5)})
        assert (live.status_code, live.json()["spooled"]) == (202, [])

        pause(own_kafka)
        try:
            stalled = client.post("/v1/events", json={"events": batch(run, 5, 5)})
            started = time.perf_counter()
            behind = client.post("/v1/events", json={"events": batch(run, 10, 5)})
            behind_s = time.perf_counter() - started
            held = client.get("/metrics").text
        finally:
            resume(own_kafka)
        # sent, not acknowledged within the delivery timeout: spooled, then answered 202
        assert stalled.status_code == 202, stalled.text
        assert stalled.json()["spooled"] == [f"{run}-{k}" for k in range(5, 10)]
        # queued behind the spooled ones, without waiting for the broker's delivery timeout
        assert behind.status_code == 202 and behind.json()["spooled"] == batch_ids(run, 10, 15)
        assert behind_s < DELIVERY_TIMEOUT_S
        assert "ingest_spool_depth_events 10.0" in held

        deadline = time.monotonic() + 60
        while "ingest_spool_depth_events 0.0" not in client.get("/metrics").text:
            assert time.monotonic() < deadline, "the forwarder did not drain the spool"
            time.sleep(0.2)
        metrics = client.get("/metrics").text
    assert 'ingest_spool_forwarded_events_total{type="watch"} 10.0' in metrics

    ids = set(batch_ids(run, 0, 15))
    stored = await_on_topic(own_kafka, ids)
    assert {s.event.id for s in stored} == ids, "an event answered 202 is missing"
    # one user: one partition, in the order the batches were accepted (a copy the paused broker
    # stored anyway may come earlier; the order of first copies is what a consumer applies)
    assert applied_once(redis_client, stored, run) == batch_ids(run, 0, 15)


def batch_ids(run: str, start: int, end: int) -> list[str]:
    return [f"{run}-{k}" for k in range(start, end)]


def test_ingest_killed_with_a_full_spool_forwards_it_after_a_restart(
        own_kafka: ServerProcess, redis_server: ServerProcess, redis_client: redis.Redis,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = f"sk{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLSD_INGEST_DELIVERY_TIMEOUT_S", str(DELIVERY_TIMEOUT_S))
    first = start_ingest(own_kafka, redis_server, tmp_path)
    try:
        pause(own_kafka)
        try:
            answers = [httpx.post(f"{first.address}/v1/events",
                                  json={"events": batch(run, n * 5, 5, user=f"u{n % 2}")},
                                  timeout=30) for n in range(4)]
            assert [a.status_code for a in answers] == [202] * 4, answers[-1].text
            assert sum(len(a.json()["spooled"]) for a in answers) == 20
            first.process.send_signal(signal.SIGKILL)  # kill -9 with 20 events spooled
            first.process.wait(10)
        finally:
            resume(own_kafka)
    finally:
        first.stop()

    second = start_ingest(own_kafka, redis_server, tmp_path)  # same folder: same spool file
    try:
        ids = set(batch_ids(run, 0, 20))
        stored = await_on_topic(own_kafka, ids)
        assert {s.event.id for s in stored} == ids, "a spooled event was lost with the process"
        assert sorted(applied_once(redis_client, stored, run)) == sorted(ids)
        assert "resuming the spool" in second.log_path.read_text()
    finally:
        second.stop()
