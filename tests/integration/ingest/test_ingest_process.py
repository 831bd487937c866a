"""The real `python -m services.ingest` process on a free port: posts over HTTP land on Kafka."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.common.bus.topics import WATCH_EVENTS
from tests.harness import ServerProcess
from tests.support.ingest import read_back, start_ingest, watch

pytestmark = pytest.mark.integration


@pytest.fixture
def running(kafka_server: ServerProcess, redis_server: ServerProcess,
            tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_ingest(kafka_server, redis_server, tmp_path)
    yield server
    server.stop()


def test_an_event_posted_to_the_process_is_readable_from_its_topic_with_its_key(
        running: ServerProcess, kafka_server: ServerProcess) -> None:
    event_id = f"w-{uuid.uuid4().hex[:12]}"
    response = httpx.post(f"{running.address}/v1/events",
                          json={"events": [watch(event_id, user="u77")]}, timeout=10)
    assert response.status_code == 202, response.text
    [stored] = read_back(kafka_server.address, WATCH_EVENTS, {event_id})
    assert stored.key == "u77"
    metrics = httpx.get(f"{running.address}/metrics").text
    assert 'ingest_events_total{outcome="accepted",type="watch"} 1.0' in metrics


def test_sigterm_closes_the_producer_and_stops_cleanly(running: ServerProcess) -> None:
    running.process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells why.
    assert running.process.wait(timeout=20) == -signal.SIGTERM, running.log_tail()
    log = running.log_path.read_text()
    assert "Application shutdown complete." in log
    assert "Traceback" not in log
