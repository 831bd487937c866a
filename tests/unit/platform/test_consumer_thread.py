"""A consumer thread that dies takes its process down, so the supervisor starts it again."""

from __future__ import annotations

import os
import signal

import pytest

from services.common.bus import consumer
from services.common.bus.consumer import run_or_end_process


class Dying:
    def run(self) -> None:
        raise ConnectionError("retries ran out")


class Stopping:
    def run(self) -> None:
        return None


def test_a_runner_that_dies_ends_the_process_with_sigterm(
        monkeypatch: pytest.MonkeyPatch) -> None:
    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(consumer.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    run_or_end_process(Dying(), "test")  # type: ignore[arg-type]
    assert kills == [(os.getpid(), signal.SIGTERM)]


def test_a_runner_that_stops_leaves_the_process_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(consumer.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    run_or_end_process(Stopping(), "test")  # type: ignore[arg-type]
    assert kills == []
