"""Starting without a broker: the producer is built in the background, posts fail fast till then."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.common.bus import deferred
from services.common.bus.deferred import NOT_CONNECTED, DeferredPublisher
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.bus.ports import Delivery, OutboundMessage, Publisher
from services.common.bus.topics import REC_IMPRESSIONS, platform_topics
from services.common.settings import PlatformSettings
from services.ingest.app import create_app
from services.ingest.dedupe import InMemoryDedupe
from services.ingest.settings import IngestSettings
from tests.support.ingest import watch

MESSAGE = OutboundMessage("watch-events", "u1", b"{}")


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class FlakyConnect:
    """Fails `failures` times, then hands out a publisher on the in-memory broker."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.broker = InMemoryBroker()

    def __call__(self) -> Publisher:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError("no broker")
        return InMemoryPublisher(self.broker)


class Raising(InMemoryPublisher):
    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        raise RuntimeError("producer closed")


def test_before_it_connects_every_message_fails_at_once() -> None:
    publisher = DeferredPublisher(FlakyConnect(failures=10**6), backoff_initial_s=0.01)
    started = time.perf_counter()
    deliveries = publisher.publish([MESSAGE, MESSAGE])
    assert time.perf_counter() - started < 0.1
    assert [d.error for d in deliveries] == [NOT_CONNECTED, NOT_CONNECTED]
    assert not publisher.connected


def test_it_keeps_trying_until_the_broker_answers_then_publishes() -> None:
    connect = FlakyConnect(failures=3)
    publisher = DeferredPublisher(connect, backoff_initial_s=0.01, backoff_max_s=0.02)
    publisher.start()
    wait_for(lambda: publisher.connected)
    assert connect.attempts == 4
    assert all(d.ok for d in publisher.publish([MESSAGE]))
    assert len(connect.broker.records("watch-events")) == 1
    publisher.close()


def test_closing_while_the_broker_is_away_stops_the_retries_promptly() -> None:
    publisher = DeferredPublisher(FlakyConnect(failures=10**6), backoff_initial_s=0.01,
                                  backoff_max_s=60)
    publisher.start()
    time.sleep(0.1)
    started = time.perf_counter()
    publisher.close()
    assert time.perf_counter() - started < 1.0
    assert not any(t.name == "broker-connect" and t.is_alive() for t in threading.enumerate())


def test_a_publisher_that_raises_becomes_failed_deliveries() -> None:
    publisher = DeferredPublisher(lambda: Raising(InMemoryBroker()))
    publisher.start()
    wait_for(lambda: publisher.connected)
    [delivery] = publisher.publish([MESSAGE])
    assert delivery.error == "RuntimeError: producer closed"
    publisher.close()


def test_a_service_without_a_broker_is_alive_and_answers_posts_503() -> None:
    publisher = DeferredPublisher(FlakyConnect(failures=10**6), backoff_initial_s=0.01)
    with TestClient(create_app(IngestSettings(), publisher, InMemoryDedupe())) as client:
        assert client.get("/healthz").status_code == 200
        response = client.post("/v1/events", json={"events": [watch("w1")]})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["accepted"] == []


def test_with_a_user_per_service_the_connector_creates_no_topic_of_another_service(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the single-node stack a service's first connection creates every missing topic of the
    platform; with a user per service it only checks those it sends to (its user may create
    none)."""
    ensured: list[list[str]] = []
    monkeypatch.setattr(deferred, "kafka_ready", lambda *_: True)
    monkeypatch.setattr(deferred, "ensure_topics",
                        lambda _, specs: ensured.append([s.name for s in specs]))
    monkeypatch.setattr(deferred, "kafka_publisher", lambda *_, **__: InMemoryPublisher(
        InMemoryBroker()))

    def connect(settings: PlatformSettings) -> list[str]:
        deferred.kafka_connector(settings, probe_timeout_s=1, delivery_timeout_s=1,
                                 warm_topics=[REC_IMPRESSIONS])()
        return ensured[-1]

    assert set(connect(PlatformSettings())) == {s.name for s in platform_topics(1)}
    (tmp_path / "recommender").write_text("p" * 24)
    assert connect(PlatformSettings(
        service_name="recommender", kafka_security_protocol="SASL_PLAINTEXT",
        kafka_users_dir=tmp_path)) == [REC_IMPRESSIONS]
