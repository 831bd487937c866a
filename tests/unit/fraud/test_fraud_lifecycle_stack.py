"""The lifecycle run's pure parts: events cut into phases by time, and the alert's timeline read
from Prometheus samples (the run itself, minutes on real services, is `make shadow-run`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from services.common.bus.envelope import Event
from services.common.bus.ports import OutboundMessage
from tests.support.scripts import load_script

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def stack() -> ModuleType:
    return load_script("benchmarks/fraud_lifecycle_stack.py", "fraud_lifecycle_stack")


def message(hours: int) -> OutboundMessage:
    event = Event(id=f"e{hours}", type="transaction", source="test",
                  time=T0 + timedelta(hours=hours), data={})
    return OutboundMessage.of("transactions", "card", event)


def test_each_event_falls_in_the_phase_whose_cut_follows_it(stack: ModuleType) -> None:
    messages = [message(h) for h in range(10)]
    cuts = [T0 + timedelta(hours=3), T0 + timedelta(hours=7), T0 + timedelta(hours=20)]

    a, b, c = stack.phases(messages, cuts)

    assert [len(a), len(b), len(c)] == [4, 4, 2]  # hour 3 is in A (<= its cut), 7 in B
    assert a + b + c == messages


def at(minute: int, second: int = 0) -> str:
    return f"2026-12-06T10:{minute:02d}:{second:02d}+00:00"


def sample(when: str, state: str, psi: float | None) -> dict[str, Any]:
    return {"at": when, "state": state, "columns": [], "max_input_psi": psi}


MARKS = {"phase_a_published": at(0), "promoted": at(5)}


def drifted_then_promoted() -> list[dict[str, Any]]:
    return [sample(at(0), "inactive", 0.5), sample(at(1), "pending", 0.5),
            sample(at(2), "firing", 0.5), sample(at(5), "firing", 0.5),
            sample(at(6), "inactive", None),    # promoted: the new window is still empty
            sample(at(6, 30), "inactive", 0.6),  # read, the rule not evaluated yet
            sample(at(7), "inactive", 0.04)]


def test_the_alert_clears_only_once_the_new_version_has_gauges_under_the_threshold(
        stack: ModuleType) -> None:
    moments = stack.timeline(drifted_then_promoted(), MARKS)

    assert moments["drift_started"] == at(0) and moments["first_fired"] == at(2)
    assert moments["at_promotion"] == "firing"
    assert moments["cleared"] == at(7)
    assert [s["state"] for s in moments["state_changes"]] == [
        "inactive", "pending", "firing", "inactive"]


def test_the_watch_after_the_resolution_holds_only_if_every_sample_stays_resolved_long_enough(
        stack: ModuleType) -> None:
    quiet = [*drifted_then_promoted(), sample(at(8), "inactive", 0.05),
             sample(at(9), "inactive", 0.06)]
    assert stack.timeline(quiet, MARKS, hold_s=120)["hold"] == {
        "asked_s": 120, "watched_s": 120, "samples": 3, "states": ["inactive"],
        "stayed_inactive": True}

    too_short = stack.timeline(quiet, MARKS, hold_s=180)["hold"]
    assert not too_short["stayed_inactive"]

    relapse = [*drifted_then_promoted(), sample(at(8), "pending", 0.4),
               sample(at(9), "inactive", 0.06)]
    held = stack.timeline(relapse, MARKS, hold_s=120)["hold"]
    assert held["states"] == ["inactive", "pending"] and not held["stayed_inactive"]


def test_an_alert_that_never_resolves_records_no_clearing(stack: ModuleType) -> None:
    stuck = [*drifted_then_promoted()[:5], sample(at(7), "pending", 0.4),
             sample(at(8), "firing", 0.4)]
    moments = stack.timeline(stuck, MARKS, hold_s=120)
    assert moments["cleared"] is None and not moments["hold"]["stayed_inactive"]
