"""POST /v1/events on the in-memory broker: 202 only once stored, per-event outcomes, clear 4xxs."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.common.bus.envelope import decode_event
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.bus.ports import Delivery, OutboundMessage, Publisher
from services.common.bus.topics import TRANSACTIONS, WATCH_EVENTS
from services.ingest.app import create_app
from services.ingest.dedupe import InMemoryDedupe
from services.ingest.settings import IngestSettings
from tests.support.ingest import transaction, watch


@dataclass
class Ingest:
    client: TestClient
    broker: InMemoryBroker
    dedupe: InMemoryDedupe

    def post(self, *events: object) -> tuple[int, dict[str, Any]]:
        response = self.client.post("/v1/events", json={"events": list(events)})
        return response.status_code, response.json()

    def published(self, topic: str) -> list[tuple[str | None, str]]:
        """(key, event id) of every record on the topic, in partition then offset order."""
        return [(r.key.decode() if r.key else None, decode_event(r.value).id)
                for r in self.broker.records(topic)]

    def metric(self, name: str, **labels: str) -> float:
        for family in text_string_to_metric_families(self.client.get("/metrics").text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


def start(settings: IngestSettings | None = None,
          publisher: Publisher | None = None) -> Iterator[Ingest]:
    broker = InMemoryBroker()
    dedupe = InMemoryDedupe()
    app = create_app(settings or IngestSettings(), publisher or InMemoryPublisher(broker), dedupe)
    with TestClient(app) as client:
        yield Ingest(client, broker, dedupe)


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    yield from start()


class FailingForTopic(InMemoryPublisher):
    """Stores and acknowledges every topic but one, as when one partition leader is unreachable."""

    def __init__(self, broker: InMemoryBroker, failing_topic: str) -> None:
        super().__init__(broker)
        self.failing_topic = failing_topic

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        deliveries = []
        for message in messages:
            if message.topic == self.failing_topic:
                deliveries.append(Delivery(message, error="KafkaTimeoutError: no leader"))
            else:
                deliveries += super().publish([message])
        return deliveries


# --- stored ----------------------------------------------------------------------------------
def test_a_valid_batch_is_answered_202_once_every_event_is_on_its_topic_keyed_by_entity(
        ingest: Ingest) -> None:
    status, body = ingest.post(watch("w1", user="u1"), transaction("x1", card="card9"),
                               watch("w2", user="u2"))
    assert status == 202
    assert body["accepted"] == ["w1", "x1", "w2"]
    assert body["duplicates"] == body["rejected"] == body["failed"] == []
    assert sorted(ingest.published(WATCH_EVENTS)) == [("u1", "w1"), ("u2", "w2")]
    assert ingest.published(TRANSACTIONS) == [("card9", "x1")]


def test_one_users_events_keep_their_order_in_one_partition(ingest: Ingest) -> None:
    ingest.post(*(watch(f"w{i}", user="u7") for i in range(20)))
    partitions = {r.partition for r in ingest.broker.records(WATCH_EVENTS)}
    assert len(partitions) == 1
    assert [event_id for _, event_id in ingest.published(WATCH_EVENTS)] == [
        f"w{i}" for i in range(20)]


def test_a_mixed_batch_stores_the_valid_events_and_names_each_rejected_one(
        ingest: Ingest) -> None:
    status, body = ingest.post(watch("w1"), watch("w2", user="no\tbody"), "oops", watch("w3"))
    assert status == 202
    assert body["accepted"] == ["w1", "w3"]
    assert body["rejected"] == [
        {"index": 1, "id": "w2", "errors": [
            {"field": "data.user_id", "problem": "Value error, an id may not hold a control "
                                                 "character (U+0009 at position 2)"}]},
        {"index": 2, "id": None, "errors": [
            {"field": "", "problem": "an event must be a JSON object"}]},
    ]
    assert [event_id for _, event_id in ingest.published(WATCH_EVENTS)] == ["w1", "w3"]


def test_a_batch_with_no_valid_event_is_422_with_the_per_event_report(ingest: Ingest) -> None:
    status, body = ingest.post(watch("w1", type="purchase"), {"id": "w2"})
    assert status == 422
    assert body["detail"].startswith("no event of the batch is valid")
    assert [r["index"] for r in body["rejected"]] == [0, 1]
    assert body["accepted"] == []
    assert ingest.broker.records(WATCH_EVENTS) == []


# --- duplicates ------------------------------------------------------------------------------
def test_an_event_posted_again_is_acknowledged_as_duplicate_and_not_republished(
        ingest: Ingest) -> None:
    assert ingest.post(watch("w1"))[0] == 202
    status, body = ingest.post(watch("w1"), watch("w2"))
    assert status == 202
    assert (body["accepted"], body["duplicates"]) == (["w2"], ["w1"])
    assert [event_id for _, event_id in ingest.published(WATCH_EVENTS)].count("w1") == 1


def test_an_id_twice_in_one_batch_is_published_once(ingest: Ingest) -> None:
    status, body = ingest.post(watch("w1"), watch("w1", user="u2"))
    assert status == 202
    assert (body["accepted"], body["duplicates"]) == (["w1"], ["w1"])
    assert ingest.published(WATCH_EVENTS) == [("u1", "w1")]


def test_a_dedupe_cache_outage_never_fails_a_post_and_is_counted(ingest: Ingest) -> None:
    ingest.dedupe.unavailable = True
    assert ingest.post(watch("w1"))[0] == 202
    assert ingest.post(watch("w1"))[0] == 202
    # Published twice: consumers dedupe by event id, which is why ingest may go on without Redis.
    assert len(ingest.published(WATCH_EVENTS)) == 2
    assert ingest.metric("ingest_dedupe_errors_total", operation="stored") == 2
    assert ingest.metric("ingest_dedupe_errors_total", operation="remember") == 2
    assert ingest.client.get("/readyz").json()["checks"]["redis"] == "not ready"


# --- broker outage ---------------------------------------------------------------------------
def test_a_broker_outage_is_503_with_retry_after_and_nothing_reported_stored(
        ingest: Ingest) -> None:
    ingest.broker.unavailable = True
    response = ingest.client.post("/v1/events", json={"events": [watch("w1"), watch("w2")]})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    body = response.json()
    assert body["accepted"] == body["duplicates"] == []
    assert [(f["index"], f["id"]) for f in body["failed"]] == [(0, "w1"), (1, "w2")]
    assert "retry" in body["detail"]


def test_events_that_failed_are_published_when_the_client_retries(ingest: Ingest) -> None:
    ingest.broker.unavailable = True
    assert ingest.post(watch("w1"))[0] == 503
    ingest.broker.unavailable = False
    status, body = ingest.post(watch("w1"))
    assert (status, body["accepted"]) == (202, ["w1"])


def test_a_partial_outage_is_503_reporting_only_the_acknowledged_events_as_stored() -> None:
    broker = InMemoryBroker()
    for ingest in start(publisher=FailingForTopic(broker, TRANSACTIONS)):
        status, body = ingest.post(watch("w1"), transaction("x1"))
        assert status == 503
        assert body["accepted"] == ["w1"]
        assert [f["id"] for f in body["failed"]] == ["x1"]
    assert [r.key for r in broker.records(WATCH_EVENTS)] == [b"u1"]


def test_a_retried_batch_after_a_partial_outage_publishes_only_what_was_missing() -> None:
    broker = InMemoryBroker()
    publisher = FailingForTopic(broker, TRANSACTIONS)
    dedupe = InMemoryDedupe()
    with TestClient(create_app(IngestSettings(), publisher, dedupe)) as client:
        batch = {"events": [watch("w1"), transaction("x1")]}
        assert client.post("/v1/events", json=batch).status_code == 503
        publisher.failing_topic = "none"  # the leader is back
        body = client.post("/v1/events", json=batch).json()
    assert (body["accepted"], body["duplicates"]) == (["x1"], ["w1"])
    assert len(broker.records(WATCH_EVENTS)) == len(broker.records(TRANSACTIONS)) == 1


# --- refused as a whole ----------------------------------------------------------------------
def test_a_body_over_the_limit_is_413_by_its_content_length() -> None:
    for ingest in start(IngestSettings(ingest_max_body_bytes=1000)):
        response = ingest.client.post("/v1/events", json={"events": [watch(f"w{i}")
                                                                     for i in range(20)]})
        assert response.status_code == 413
        assert "limit is 1000" in response.json()["detail"]
        assert ingest.broker.records(WATCH_EVENTS) == []


def test_a_streamed_body_over_the_limit_is_413_while_it_streams() -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"events": ['
        for _ in range(100):
            yield b" " * 100
        yield b"]}"

    for ingest in start(IngestSettings(ingest_max_body_bytes=1000)):
        response = ingest.client.post("/v1/events", content=chunks())
        assert response.status_code == 413
        assert "over the limit of 1000 bytes" in response.json()["detail"]


def test_a_batch_with_too_many_events_is_413_before_any_is_validated() -> None:
    for ingest in start(IngestSettings(ingest_max_batch_events=3)):
        status, body = ingest.post(*(watch(f"w{i}") for i in range(4)))
        assert status == 413
        assert body["detail"] == "the batch has 4 events; the limit is 3"


def test_malformed_json_is_400_saying_where(ingest: Ingest) -> None:
    response = ingest.client.post("/v1/events", content=b'{"events": [}',
                                  headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("the body is not valid JSON")
    assert "line 1 column" in response.json()["detail"]


@pytest.mark.parametrize(("body", "field"), [
    ({"event": []}, "events"),
    ({"events": {}}, "events"),
    ([watch("w1")], "body"),
    ({"events": []}, "events"),
])
def test_a_body_that_is_not_a_batch_is_422_naming_the_field(ingest: Ingest, body: object,
                                                            field: str) -> None:
    response = ingest.client.post("/v1/events", json=body)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.json()["errors"]}


def test_a_compressed_body_is_415(ingest: Ingest) -> None:
    response = ingest.client.post(
        "/v1/events", content=gzip.compress(json.dumps({"events": [watch("w1")]}).encode()),
        headers={"content-encoding": "gzip"})
    assert response.status_code == 415


# --- operations ------------------------------------------------------------------------------
def test_events_are_counted_by_type_and_outcome(ingest: Ingest) -> None:
    ingest.post(watch("w1"), watch("w1"), transaction("x1"), {"type": "nonsense"})
    ingest.broker.unavailable = True
    ingest.post(watch("w2"))
    count = ingest.metric
    assert count("ingest_events_total", type="watch", outcome="accepted") == 1
    assert count("ingest_events_total", type="watch", outcome="duplicate") == 1
    assert count("ingest_events_total", type="transaction", outcome="accepted") == 1
    assert count("ingest_events_total", type="unknown", outcome="rejected") == 1
    assert count("ingest_events_total", type="watch", outcome="failed") == 1
    assert count("ingest_batch_size_events_count") == 2
    assert count("ingest_publish_duration_seconds_count", outcome="ok") == 1
    assert count("ingest_publish_duration_seconds_count", outcome="failed") == 1


def test_a_client_chosen_type_never_becomes_a_metric_label(ingest: Ingest) -> None:
    ingest.post(*({"type": f"t{i}"} for i in range(5)))
    assert 'type="t1"' not in ingest.client.get("/metrics").text


def test_the_openapi_document_describes_each_event_type(ingest: Ingest) -> None:
    schema = ingest.client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/events"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    variants = body["properties"]["events"]["items"]["oneOf"]
    assert {v["properties"]["type"]["const"] for v in variants} >= {"watch", "transaction"}
    assert {"202", "400", "413", "422", "503"} <= set(operation["responses"])
