"""Exposure logging: once per unit and experiment, bucketed units only, never failing a request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from services.common.bus.envelope import decode_event
from services.common.bus.topics import EXPOSURES
from services.designs.experiments.assignment import Assignment, assign
from services.designs.experiments.definitions import ExperimentDefinition, parse_definition
from services.designs.experiments.exposures import ExposureLog, logged_key
from tests.support.experiments_fakes import FakeQueue, FakeRedis

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def definition(key: str = "rec-algorithm", **changes: Any) -> ExperimentDefinition:
    return parse_definition({"key": key, "status": "running", "variations": [
        {"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}], **changes})


def exposure_log(redis: FakeRedis | None = None, queue: FakeQueue | None = None,
                 memory_size: int = 1_000) -> tuple[ExposureLog, FakeRedis, FakeQueue]:
    redis = redis or FakeRedis()
    queue = queue or FakeQueue()
    return (ExposureLog(cast(Any, redis), queue, "fs", source="test", memory_size=memory_size,
                        clock=lambda: NOW), redis, queue)


def test_a_bucketed_unit_is_logged_once_with_its_variation() -> None:
    log, _, queue = exposure_log()
    assignment = assign(definition(), "u42")

    outcomes = [log.record(assignment, "u42") for _ in range(3)]

    assert outcomes == ["logged", "duplicate", "duplicate"]
    [message] = queue.messages
    event = decode_event(message.value)
    assert (message.topic, message.key) == (EXPOSURES, "u42")
    assert (event.type, event.source, event.time) == ("exposure", "test", NOW)
    assert event.data == {"experiment": "rec-algorithm", "variation": assignment.variation,
                          "unit_id": "u42"}
    assert event.id == "exposure:rec-algorithm:u42"


def test_a_second_process_finds_the_mark_in_redis_and_does_not_log_again() -> None:
    shared = FakeRedis()
    first, _, first_queue = exposure_log(shared)
    second, _, second_queue = exposure_log(shared)
    assignment = assign(definition(), "u42")

    assert first.record(assignment, "u42") == "logged"
    assert second.record(assignment, "u42") == "duplicate"
    assert (len(first_queue.messages), len(second_queue.messages)) == (1, 0)
    assert logged_key("u42", "rec-algorithm") in shared.values


def test_a_remembered_pair_costs_no_redis_round_trip() -> None:
    log, redis, _ = exposure_log()
    assignment = assign(definition(), "u42")
    log.record(assignment, "u42")
    trips = redis.round_trips

    log.record(assignment, "u42")

    assert redis.round_trips == trips


def test_the_memory_is_bounded_and_redis_still_dedupes_what_it_forgot() -> None:
    log, _, queue = exposure_log(memory_size=2)
    units = ["u1", "u2", "u3"]
    for unit in units:
        log.record(assign(definition(), unit), unit)

    assert log.record(assign(definition(), "u1"), "u1") == "duplicate"  # forgotten, asked Redis
    assert len(queue.messages) == 3


@pytest.mark.parametrize(("changes", "unit", "reason"), [
    ({"forced_variations": {"u1": "treatment"}}, "u1", "forced"),
    ({"coverage": 0.0}, "u1", "coverage"),
    ({"namespace": {"id": "homepage", "start": 0.0, "end": 0.001}}, "u1", "namespace"),
    ({"status": "draft"}, "u1", "draft"),
    ({"status": "stopped"}, "u1", "stopped"),
])
def test_units_the_hash_did_not_bucket_are_never_exposures(changes: dict[str, Any], unit: str,
                                                           reason: str) -> None:
    log, redis, queue = exposure_log()
    assignment = assign(definition(**changes), unit)
    assert assignment.reason == reason

    assert log.record(assignment, unit) == "not_exposed"
    assert queue.messages == [] and redis.round_trips == 0


def test_several_experiments_of_one_unit_cost_one_round_trip() -> None:
    log, redis, queue = exposure_log()
    assignments = [assign(definition(key), "u7") for key in ("a", "b", "c")]

    assert log.record_all(assignments, "u7") == ["logged"] * 3
    assert redis.round_trips == 1
    assert sorted(decode_event(m.value).data["experiment"] for m in queue.messages) == [
        "a", "b", "c"]


def test_with_redis_down_the_exposure_is_logged_anyway() -> None:
    # A duplicate exposure changes no count (the counters are sets); a lost one would.
    log, redis, queue = exposure_log()
    redis.down = True

    assert log.record(assign(definition(), "u42"), "u42") == "logged"
    assert len(queue.messages) == 1


def test_a_full_queue_drops_the_exposure_and_takes_its_marks_back() -> None:
    log, redis, queue = exposure_log(queue=FakeQueue(capacity=0))
    assignment = assign(definition(), "u42")

    assert log.record(assignment, "u42") == "dropped"
    assert logged_key("u42", "rec-algorithm") not in redis.values

    queue.capacity = 10
    assert log.record(assignment, "u42") == "logged"  # the next request tries again


def test_a_unit_id_that_is_no_opaque_id_is_a_caller_error() -> None:
    log, _, _ = exposure_log()
    assignment: Assignment = assign(definition(), "u\x0042")

    with pytest.raises(ValueError, match="id"):
        log.record(assignment, "u\x0042")
