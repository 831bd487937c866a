"""The experiment handler's handle(): poison and buffering, before any Redis is touched."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from services.common.bus.consumer import PoisonEvent
from services.common.bus.envelope import Event
from services.stream.experiments import ExperimentEventsHandler

EXPOSURE = {"experiment": "ranker-v2", "variation": "control", "unit_id": "u1"}
IMPRESSION = {"user_id": "u1", "content_ids": ["t1"], "request_id": "r1",
              "experiment": "ranker-v2", "variation": "control"}
CLICK = {"user_id": "u1", "content_id": "t1", "position": 0, "request_id": "r1"}


def handler() -> ExperimentEventsHandler:
    # Nothing listens on port 1: handle() must buffer without touching Redis.
    return ExperimentEventsHandler(redis.Redis(port=1))


def event(type_: str, data: dict[str, Any]) -> Event:
    return Event(id="e1", type=type_, source="test", time=datetime(2026, 9, 7, tzinfo=UTC),
                 data=data)


@pytest.mark.parametrize(("type_", "data"), [
    ("exposure", EXPOSURE), ("impression", IMPRESSION), ("click", CLICK),
    ("click", CLICK | {"request_id": None}), ("impression", IMPRESSION | {"experiment": None}),
    ("impression", IMPRESSION | {"content_ids": [], "latency_ms": 12.5}),
])
def test_exposures_impressions_and_clicks_are_buffered_without_touching_redis(
        type_: str, data: dict[str, Any]) -> None:
    handler().handle(event(type_, data))


@pytest.mark.parametrize(("type_", "data"), [
    ("exposure", EXPOSURE | {"variation": ""}),
    ("impression", IMPRESSION | {"latency_ms": -1.0}),
    ("impression", IMPRESSION | {"content_ids": ["t1"] * 101}),
    ("click", CLICK | {"position": -1}),
    ("click", CLICK | {"user_id": ""}),
])
def test_invalid_data_is_poison(type_: str, data: dict[str, Any]) -> None:
    with pytest.raises(PoisonEvent, match=f"invalid {type_} data"):
        handler().handle(event(type_, data))


@pytest.mark.parametrize(("type_", "data"), [
    ("exposure", EXPOSURE | {"experiment": "a\nb"}),
    ("exposure", EXPOSURE | {"unit_id": "u\x001"}),
    ("impression", IMPRESSION | {"request_id": "r\t1"}),
    ("click", CLICK | {"request_id": "x" * 129}),
])
def test_an_id_with_a_control_character_or_too_long_is_poison(
        type_: str, data: dict[str, Any]) -> None:
    with pytest.raises(PoisonEvent, match=f"invalid {type_} data"):
        handler().handle(event(type_, data))


@pytest.mark.parametrize(("type_", "data"), [
    ("exposure", EXPOSURE | {"experiment": "a{b}"}),
    ("exposure", EXPOSURE | {"unit_id": "{u1}|/ü"}),
    ("impression", IMPRESSION | {"request_id": "r{1}"}),
    ("click", CLICK | {"request_id": "}", "user_id": "user_123"}),
])
def test_an_id_with_braces_or_bars_is_ordinary_data(type_: str, data: dict[str, Any]) -> None:
    handler().handle(event(type_, data))


def test_an_event_type_that_is_not_an_experiment_event_is_poison() -> None:
    with pytest.raises(PoisonEvent, match="watch"):
        handler().handle(event("watch", {}))


def test_flushing_nothing_touches_no_redis() -> None:
    handler().flush()
