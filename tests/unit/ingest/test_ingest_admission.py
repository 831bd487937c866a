"""Load shedding: a batch is refused unsent (503 Retry-After) while ingest's writes are stalled."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from services.common.bus.memory import InMemoryBroker
from services.common.bus.topics import WATCH_EVENTS
from services.common.telemetry import Metrics
from services.ingest.admission import AdmissionLimits, InFlight, InFlightState, refusal
from services.ingest.app import create_app
from services.ingest.dedupe import InMemoryDedupe
from services.ingest.errors import Shed
from services.ingest.ingestor import Ingestor
from services.ingest.metrics import IngestMetrics
from services.ingest.schemas import NOT_SENT
from services.ingest.settings import IngestSettings
from tests.support.ingest import Stalled, watch

LIMITS = AdmissionLimits(max_wait_s=0.5, max_in_flight_events=100)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the decision ----------------------------------------------------------------------------
def test_a_batch_is_admitted_while_the_oldest_write_is_younger_than_the_bound() -> None:
    assert refusal(InFlightState(oldest_wait_s=0.4, events=50), 10, LIMITS) is None


def test_a_batch_is_refused_once_the_oldest_write_has_waited_past_the_bound() -> None:
    reason = refusal(InFlightState(oldest_wait_s=0.7, events=1), 1, LIMITS)
    assert reason is not None and "0.7 s" in reason


def test_a_batch_is_refused_when_it_would_pass_the_in_flight_bound() -> None:
    assert refusal(InFlightState(oldest_wait_s=0.01, events=95), 5, LIMITS) is None
    reason = refusal(InFlightState(oldest_wait_s=0.01, events=95), 6, LIMITS)
    assert reason is not None and "95 events" in reason


def test_any_batch_is_admitted_when_nothing_is_in_flight() -> None:
    # even one larger than the bound: otherwise it could never be sent
    assert refusal(InFlightState(oldest_wait_s=0.0, events=0), 500, LIMITS) is None


def test_the_register_reports_the_oldest_batch_still_in_flight_and_every_event() -> None:
    clock = Clock()
    in_flight = InFlight(clock)
    first = in_flight.enter(3)
    clock.now += 2.0
    second = in_flight.enter(4)
    clock.now += 1.0
    assert in_flight.state() == InFlightState(3.0, 7)
    in_flight.leave(first)
    assert in_flight.state() == InFlightState(1.0, 4)
    in_flight.leave(second)
    assert in_flight.state() == InFlightState(0.0, 0)


# --- the use case ----------------------------------------------------------------------------
@pytest.fixture
def stalled() -> Iterator[tuple[Ingestor, Stalled, Clock, InMemoryBroker]]:
    broker = InMemoryBroker()
    publisher = Stalled(broker)
    clock = Clock()
    ingestor = Ingestor(publisher, InMemoryDedupe(), IngestMetrics(Metrics("ingest")), LIMITS,
                        InFlight(clock))
    yield ingestor, publisher, clock, broker
    publisher.release.set()


def test_while_a_write_is_stalled_new_batches_are_refused_unsent_then_admitted_once_it_is_acked(
        stalled: tuple[Ingestor, Stalled, Clock, InMemoryBroker]) -> None:
    ingestor, publisher, clock, broker = stalled
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(ingestor.ingest, [watch("w1")])
        while publisher.calls == 0:
            threading.Event().wait(0.001)
        clock.now += 0.6  # the first write has waited past the bound

        with pytest.raises(Shed) as refused:
            ingestor.ingest([watch("w2"), watch("w3"), watch("bad", type="purchase")])
        report = refused.value.report
        assert [(f.valid.id, f.sent) for f in report.failed] == [("w2", False), ("w3", False)]
        assert [r.id for r in report.rejected] == ["bad"]
        assert report.accepted == []
        assert publisher.calls == 1, "a refused batch is never sent"

        publisher.release.set()  # the new leaders are elected: the stalled write is acked
        assert [v.id for v in first.result(5).accepted] == ["w1"]
    assert [v.id for v in ingestor.ingest([watch("w2")]).accepted] == ["w2"]
    assert len(broker.records(WATCH_EVENTS)) == 2


def test_a_batch_of_duplicates_only_is_answered_even_while_the_bus_is_stalled(
        stalled: tuple[Ingestor, Stalled, Clock, InMemoryBroker]) -> None:
    ingestor, publisher, clock, _ = stalled
    publisher.release.set()
    ingestor.ingest([watch("w1")])
    publisher.release.clear()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(ingestor.ingest, [watch("w2")])
        while publisher.calls < 2:
            threading.Event().wait(0.001)
        clock.now += 0.6
        # nothing to send, so nothing to refuse: the client learns w1 is stored
        assert [v.id for v in ingestor.ingest([watch("w1")]).duplicates] == ["w1"]
        publisher.release.set()


# --- over HTTP -------------------------------------------------------------------------------
def test_a_refused_batch_is_503_with_retry_after_naming_each_event_not_sent() -> None:
    broker = InMemoryBroker()
    publisher = Stalled(broker)
    settings = IngestSettings(ingest_shed_after_s=0.05)
    app = create_app(settings, publisher, InMemoryDedupe())
    with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.post, "/v1/events", json={"events": [watch("w1")]})
        while publisher.calls == 0:
            threading.Event().wait(0.001)
        threading.Event().wait(0.1)

        response = client.post("/v1/events", json={"events": [watch("w2")]})
        assert response.status_code == 503
        assert response.headers["retry-after"] == str(settings.ingest_retry_after_s)
        body = response.json()
        assert body["detail"].startswith("ingest is refusing new writes for now")
        assert body["accepted"] == []
        assert body["failed"] == [{"index": 0, "id": "w2", "problem": NOT_SENT}]
        metrics = client.get("/metrics").text
        assert 'ingest_events_total{outcome="shed",type="watch"} 1.0' in metrics

        publisher.release.set()
        assert first.result(5).status_code == 202
        assert client.post("/v1/events", json={"events": [watch("w2")]}).status_code == 202
