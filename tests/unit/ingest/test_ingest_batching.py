"""Ingest's pure core: each event validated on its own, keyed by its entity, published once."""

from __future__ import annotations

import json

from services.common.bus.ports import Delivery
from services.common.bus.topics import TRANSACTIONS, WATCH_EVENTS
from services.ingest.batching import (
    MAX_PROBLEMS_PER_EVENT,
    Rejected,
    Valid,
    plan_publication,
    tally,
    validate_batch,
    validate_event,
)
from tests.support.ingest import TIME, transaction, watch


def rejected(raw: object) -> Rejected:
    outcome = validate_event(0, raw)
    assert isinstance(outcome, Rejected), outcome
    return outcome


def fields(outcome: Rejected) -> set[str]:
    return {p.field for p in outcome.problems}


def test_a_watch_event_goes_to_watch_events_keyed_by_its_user() -> None:
    outcome = validate_event(0, watch("e1", user="u42"))
    assert isinstance(outcome, Valid)
    assert (outcome.message.topic, outcome.message.key) == (WATCH_EVENTS, "u42")
    assert json.loads(outcome.message.value)["id"] == "e1"


def test_a_transaction_goes_to_transactions_keyed_by_its_card() -> None:
    outcome = validate_event(0, transaction("e1", card="card7"))
    assert isinstance(outcome, Valid)
    assert (outcome.message.topic, outcome.message.key) == (TRANSACTIONS, "card7")


def test_the_published_payload_is_the_validated_one_in_canonical_form() -> None:
    outcome = validate_event(0, transaction("e1", amount="12.50"))
    assert isinstance(outcome, Valid)
    data = json.loads(outcome.message.value)["data"]
    assert data["amount"] == 12.5
    assert data["timestamp"] == TIME


def test_a_bad_payload_field_is_named_with_its_path_inside_the_event() -> None:
    outcome = rejected(watch("e1", user="4\x002"))
    assert fields(outcome) == {"data.user_id"}
    assert outcome.id == "e1" and outcome.type == "watch"


def test_envelope_and_payload_problems_are_reported_together() -> None:
    event = watch("bad\nid", time="yesterday")
    event["data"]["watch_seconds"] = -1
    assert fields(rejected(event)) == {"id", "time", "data.watch_seconds"}


def test_an_unknown_type_is_named_with_the_known_ones() -> None:
    outcome = rejected(watch("e1", type="purchase"))
    assert fields(outcome) == {"type"}
    assert "'purchase'" in outcome.problems[0].problem
    assert "watch" in outcome.problems[0].problem
    assert outcome.type is None


def test_a_time_without_a_timezone_is_rejected() -> None:
    assert fields(rejected(watch("e1", time="2026-11-21T10:00:00"))) == {"time"}


def test_an_event_that_is_not_an_object_is_rejected_as_a_whole() -> None:
    outcome = rejected(["not", "an", "event"])
    assert outcome.id is None and fields(outcome) == {""}


def test_the_problems_of_one_event_are_bounded() -> None:
    event = watch("e1")
    event["data"] |= {f"extra{i}": i for i in range(100)}
    outcome = rejected(event)
    assert len(outcome.problems) == MAX_PROBLEMS_PER_EVENT
    assert "more problems" in outcome.problems[-1].problem


def test_an_echoed_id_is_bounded() -> None:
    outcome = rejected(watch("x" * 10_000))
    assert outcome.id is not None and len(outcome.id) == 128


def test_a_batch_keeps_each_events_index() -> None:
    batch = validate_batch([watch("e0"), {"id": "e1"}, watch("e2")])
    assert [v.index for v in batch.valid] == [0, 2]
    assert [r.index for r in batch.rejected] == [1]


def test_an_id_seen_before_or_earlier_in_the_batch_is_a_duplicate() -> None:
    batch = validate_batch([watch("old"), watch("new"), watch("new", user="u2")])
    publication = plan_publication(batch.valid, stored_before={"old"})
    assert [v.id for v in publication.publish] == ["new"]
    assert [(v.index, v.id) for v in publication.duplicates] == [(0, "old"), (2, "new")]


def test_only_acknowledged_events_are_reported_accepted() -> None:
    batch = validate_batch([watch("e0"), watch("e1")])
    publication = plan_publication(batch.valid, stored_before=set())
    deliveries = [Delivery(publication.publish[0].message, 0, 5),
                  Delivery(publication.publish[1].message, error="KafkaTimeoutError")]
    report = tally(batch, publication, deliveries)
    assert [v.id for v in report.accepted] == ["e0"]
    assert [(f.valid.id, f.error) for f in report.failed] == [("e1", "KafkaTimeoutError")]
