"""The spool: durable, ordered, bounded; the forwarder deletes only what the broker acknowledged."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.bus.dedupe import InMemoryDeduplicator
from services.common.bus.envelope import decode_event
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.bus.ports import Delivery, OutboundMessage
from services.common.bus.topics import WATCH_EVENTS
from services.common.telemetry import Metrics
from services.ingest.admission import AdmissionLimits, InFlight
from services.ingest.app import create_app
from services.ingest.batching import Valid, validate_event
from services.ingest.dedupe import InMemoryDedupe
from services.ingest.errors import Shed
from services.ingest.ingestor import Ingestor
from services.ingest.metrics import IngestMetrics
from services.ingest.settings import IngestSettings
from services.ingest.spool import Forwarder, Spool, SpoolFull, SpoolLimits
from tests.support.ingest import Stalled, watch

LIMITS = SpoolLimits(max_events=10, max_age_s=30.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def message(n: int, key: str = "u1") -> OutboundMessage:
    return OutboundMessage(WATCH_EVENTS, key, f"event-{n}".encode(), (("h", b"\x00\x01"),))


def valid_message(raw: dict[str, Any]) -> OutboundMessage:
    valid = validate_event(0, raw)
    assert isinstance(valid, Valid)
    return valid.message


def opened(path: Path, limits: SpoolLimits = LIMITS, clock: Clock | None = None) -> Spool:
    spool = Spool(path, limits, clock or Clock())
    spool.open()
    return spool


class Counts:
    def __init__(self) -> None:
        self.by_type: dict[str, int] = {}

    def forwarded(self, event_type: str, n: int) -> None:
        self.by_type[event_type] = self.by_type.get(event_type, 0) + n


class Flaky(InMemoryPublisher):
    """Acknowledges only messages whose value is not in `refuse` (as a partition without a
    leader would); every call is recorded."""

    def __init__(self, broker: InMemoryBroker, refuse: set[bytes] | None = None) -> None:
        super().__init__(broker)
        self.refuse = refuse or set()
        self.sent: list[bytes] = []

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        self.sent += [m.value for m in messages]
        ok = super().publish([m for m in messages if m.value not in self.refuse])
        by_value = {d.message.value: d for d in ok}
        return [by_value.get(m.value) or Delivery(m, error="NOT_LEADER_OR_FOLLOWER")
                for m in messages]


# --- the spool -------------------------------------------------------------------------------
def test_the_head_comes_back_in_the_order_events_were_spooled_with_every_field(
        tmp_path: Path) -> None:
    spool = opened(tmp_path / "spool.sqlite3")
    spool.append([message(1), message(2, key="u2")], ["watch", "watch"])
    spool.append([message(3)], ["watch"])
    head = spool.head(10)
    assert [s.message for s in head] == [message(1), message(2, key="u2"), message(3)]
    assert [s.seq for s in head] == sorted(s.seq for s in head)
    assert spool.head(2) == head[:2]
    assert spool.depth() == 3


def test_what_was_spooled_is_there_after_the_file_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    first = opened(path)
    first.append([message(1), message(2)], ["watch", "watch"])
    first.delete([first.head(1)[0].seq])
    first.close()  # as a restart would, or a kill -9: each append was committed before return

    again = opened(path)
    assert [s.message for s in again.head(10)] == [message(2)]
    assert again.depth() == 1


def test_the_file_is_in_wal_mode_with_full_synchronous_commits(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    opened(path).append([message(1)], ["watch"])
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_batch_past_the_event_bound_is_refused_whole(tmp_path: Path) -> None:
    spool = opened(tmp_path / "spool.sqlite3")
    spool.append([message(n) for n in range(8)], ["watch"] * 8)
    with pytest.raises(SpoolFull, match="bound of 10"):
        spool.append([message(n) for n in range(8, 11)], ["watch"] * 3)
    assert spool.depth() == 8, "nothing of a refused batch is kept"
    spool.append([message(8), message(9)], ["watch"] * 2)
    assert spool.depth() == 10


def test_new_events_are_refused_once_the_oldest_has_waited_past_the_age_bound(
        tmp_path: Path) -> None:
    clock = Clock()
    spool = opened(tmp_path / "spool.sqlite3", clock=clock)
    spool.append([message(1)], ["watch"])
    clock.now += 29.0
    assert spool.oldest_age_s() == pytest.approx(29.0)
    spool.append([message(2)], ["watch"])
    clock.now += 2.0
    with pytest.raises(SpoolFull, match="bus is down"):
        spool.append([message(3)], ["watch"])
    spool.delete([s.seq for s in spool.head(2)])
    assert spool.oldest_age_s() == 0.0
    spool.append([message(3)], ["watch"])


# --- the forwarder ---------------------------------------------------------------------------
def test_the_forwarder_deletes_only_what_the_broker_acknowledged_and_resends_the_rest_in_order(
        tmp_path: Path) -> None:
    broker = InMemoryBroker()
    publisher = Flaky(broker, refuse={b"event-2", b"event-3"})
    spool = opened(tmp_path / "spool.sqlite3")
    spool.append([message(n) for n in range(1, 5)], ["watch"] * 4)
    counts = Counts()
    forwarder = Forwarder(spool, publisher, counts)

    assert forwarder.forward_once() == 2
    assert [s.message.value for s in spool.head(10)] == [b"event-2", b"event-3"]
    publisher.refuse.clear()  # the new leader is elected
    assert forwarder.forward_once() == 2
    assert spool.depth() == 0
    assert [r.value for r in broker.records(WATCH_EVENTS)] == [
        b"event-1", b"event-4", b"event-2", b"event-3"]
    assert counts.by_type == {"watch": 4}
    assert forwarder.forward_once() == 0


def test_events_acknowledged_but_not_yet_deleted_are_sent_again_and_absorbed_downstream(
        tmp_path: Path) -> None:
    """A kill between the broker's acknowledgement and the delete: the restarted forwarder
    sends those events again; a consumer's dedupe by event id applies each once."""
    path = tmp_path / "spool.sqlite3"
    broker = InMemoryBroker()
    publisher = InMemoryPublisher(broker)
    first = opened(path)
    first.append([valid_message(watch(f"w{n}", user=f"u{n}")) for n in range(3)],
                 ["watch"] * 3)
    publisher.publish([s.message for s in first.head(10)])  # acknowledged; then the kill
    first.close()

    second = opened(path)
    assert Forwarder(second, publisher, Counts()).forward_once() == 3
    assert second.depth() == 0
    ids = [decode_event(r.value).id for r in broker.records(WATCH_EVENTS) if r.value]
    assert sorted(ids) == ["w0", "w0", "w1", "w1", "w2", "w2"]
    seen = InMemoryDeduplicator(window_s=3600)
    applied = []
    for event_id in ids:
        if not seen.seen([event_id]):
            seen.mark([event_id])
            applied.append(event_id)
    assert sorted(applied) == ["w0", "w1", "w2"]  # records from every partition, each once


def test_the_forwarder_thread_drains_a_spool_it_finds_at_start(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    opened(path).append([message(n) for n in range(5)], ["watch"] * 5)
    broker = InMemoryBroker()
    spool = opened(path)
    forwarder = Forwarder(spool, InMemoryPublisher(broker), Counts())
    forwarder.start()
    try:
        deadline = threading.Event()
        for _ in range(200):
            if spool.depth() == 0:
                break
            deadline.wait(0.01)
    finally:
        forwarder.stop()
    assert [r.value for r in broker.records(WATCH_EVENTS)] == [
        f"event-{n}".encode() for n in range(5)]


# --- the use case ----------------------------------------------------------------------------
@pytest.fixture
def stalled(tmp_path: Path) -> Iterator[tuple[Ingestor, Stalled, Clock, Spool]]:
    publisher = Stalled(InMemoryBroker())
    clock = Clock()
    spool = opened(tmp_path / "spool.sqlite3")
    dedupe = InMemoryDedupe()
    ingestor = Ingestor(publisher, dedupe, IngestMetrics(Metrics("ingest")),
                        AdmissionLimits(0.5, 100), InFlight(clock), spool=spool)
    yield ingestor, publisher, clock, spool
    publisher.release.set()


def test_while_the_bus_is_stalled_a_batch_is_spooled_and_reported_stored(
        stalled: tuple[Ingestor, Stalled, Clock, Spool]) -> None:
    ingestor, publisher, clock, spool = stalled
    with ThreadPoolExecutor(1) as pool:
        pool.submit(ingestor.ingest, [watch("w1")])
        while publisher.calls == 0:
            threading.Event().wait(0.001)
        clock.now += 0.6  # the shedding bound: without a spool this batch would be a 503
        report = ingestor.ingest([watch("w2"), watch("w3"), watch("bad", type="purchase")])
        assert [v.id for v in report.spooled] == ["w2", "w3"]
        assert report.failed == [] and [r.id for r in report.rejected] == ["bad"]
        assert publisher.calls == 1, "a spooled batch is not sent by the route"
        # held, so a retry of the same ids is a duplicate, as for an acknowledged event
        assert [v.id for v in ingestor.ingest([watch("w2")]).duplicates] == ["w2"]
        publisher.release.set()
    assert spool.depth() == 2


def test_while_the_spool_holds_events_new_batches_queue_behind_them_even_if_the_bus_answers(
        stalled: tuple[Ingestor, Stalled, Clock, Spool]) -> None:
    ingestor, publisher, _, spool = stalled
    publisher.release.set()
    spool.append([message(1)], ["watch"])
    report = ingestor.ingest([watch("w9")])
    assert [v.id for v in report.spooled] == ["w9"] and report.accepted == []
    assert publisher.calls == 0
    assert spool.head(1)[0].message.value == b"event-1"


def test_events_the_broker_did_not_acknowledge_are_spooled_instead_of_failed(
        tmp_path: Path) -> None:
    broker = InMemoryBroker()
    first, second = watch("w1", user="u1"), watch("w2", user="u2")
    spool = opened(tmp_path / "spool.sqlite3")
    publisher = Flaky(broker)
    ingestor = Ingestor(publisher, InMemoryDedupe(), IngestMetrics(Metrics("ingest")),
                        AdmissionLimits(0.5, 100), spool=spool)
    publisher.refuse = {valid_message(second).value}
    report = ingestor.ingest([first, second])
    assert [v.id for v in report.accepted] == ["w1"]
    assert [v.id for v in report.spooled] == ["w2"] and report.failed == []
    assert spool.depth() == 1


def test_a_full_spool_refuses_the_batch_as_ingest_did_without_one(
        stalled: tuple[Ingestor, Stalled, Clock, Spool]) -> None:
    ingestor, _, _, spool = stalled
    spool.append([message(n) for n in range(9)], ["watch"] * 9)
    with pytest.raises(Shed) as refused:
        ingestor.ingest([watch("w1"), watch("w2")])
    assert "bound of 10" in refused.value.reason
    assert [(f.valid.id, f.sent) for f in refused.value.report.failed] == [
        ("w1", False), ("w2", False)]
    assert spool.depth() == 9


# --- over HTTP -------------------------------------------------------------------------------
def test_a_spooled_batch_is_202_with_its_ids_accepted_and_spooled_and_counted(
        tmp_path: Path) -> None:
    spool = opened(tmp_path / "spool.sqlite3")
    spool.append([message(0)], ["watch"])  # held: the next batch queues behind it
    publisher = Flaky(InMemoryBroker(), refuse={b"event-0"})
    app = create_app(IngestSettings(), publisher, InMemoryDedupe(), spool=spool)
    with TestClient(app) as client:
        response = client.post("/v1/events", json={"events": [watch("w1"), watch("w2")]})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["accepted"] == ["w1", "w2"] and body["spooled"] == ["w1", "w2"]
        assert "2 of the accepted in ingest's spool" in body["detail"]
        metrics = client.get("/metrics").text
    assert 'ingest_events_total{outcome="spooled",type="watch"} 2.0' in metrics
    assert "ingest_spool_depth_events " in metrics
    assert "ingest_spool_oldest_age_seconds " in metrics
    assert 'ingest_spool_forwarded_events_total{type="watch"}' in metrics


def test_an_acknowledged_batch_lists_nothing_as_spooled(tmp_path: Path) -> None:
    spool = opened(tmp_path / "spool.sqlite3")
    app = create_app(IngestSettings(), InMemoryPublisher(InMemoryBroker()), InMemoryDedupe(),
                     spool=spool)
    with TestClient(app) as client:
        body = client.post("/v1/events", json={"events": [watch("w1")]}).json()
    assert (body["accepted"], body["spooled"]) == (["w1"], [])


def test_the_default_spool_file_is_per_port_under_state() -> None:
    assert IngestSettings(ingest_port=8001).spool_file() == Path(
        ".state/ingest/spool-8001.sqlite3")
    assert IngestSettings(ingest_spool_path=Path("/data/s.sqlite3")).spool_file() == Path(
        "/data/s.sqlite3")
