"""The lifecycle run's pure parts: events cut into phases by time, and the alert's timeline read
from Prometheus samples (the run itself, minutes on real services, is `make shadow-run`)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from services.common.bus.envelope import Event
from services.common.bus.ports import OutboundMessage
from tests.harness import REPO_ROOT

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def stack() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fraud_lifecycle_stack", REPO_ROOT / "benchmarks/fraud_lifecycle_stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


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


def sample(at: str, state: str, psi: float | None) -> dict[str, Any]:
    return {"at": at, "state": state, "columns": [], "max_input_psi": psi}


def test_the_alert_clears_only_once_the_new_version_has_gauges_under_the_threshold(
        stack: ModuleType) -> None:
    samples = [sample("10:00", "inactive", 0.5), sample("10:01", "pending", 0.5),
               sample("10:02", "firing", 0.5), sample("10:05", "firing", 0.5),
               sample("10:06", "inactive", None),   # promoted: the new window is still empty
               sample("10:07", "inactive", 0.04)]
    marks = {"phase_a_published": "09:59", "promoted": "10:05"}

    moments = stack.timeline(samples, marks)

    assert moments["drift_started"] == "09:59" and moments["first_fired"] == "10:02"
    assert moments["cleared"] == "10:07"
    assert [s["state"] for s in moments["state_changes"]] == [
        "inactive", "pending", "firing", "inactive"]
