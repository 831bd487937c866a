"""The circuit breaker: opens after consecutive failures, one trial when due, calls concurrent."""

from __future__ import annotations

import threading
import time

import pytest

from services.common.breaker import CircuitBreaker, CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def boom() -> None:
    raise ConnectionError("down")


def test_opens_after_fail_max_consecutive_failures_and_skips_calls_while_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker("redis", fail_max=3, reset_s=5, clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(boom)
    assert breaker.state == "closed"
    assert breaker.call(lambda: 1) == 1            # a success resets the count
    for _ in range(3):
        with pytest.raises(ConnectionError):
            breaker.call(boom)
    assert breaker.state == "open"
    calls = []
    with pytest.raises(CircuitOpen, match="redis"):
        breaker.call(calls.append, 1)
    assert calls == []                              # not called at all


def test_after_reset_one_trial_decides_closed_again_or_open_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker("model", fail_max=1, reset_s=5, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(boom)
    clock.now = 5.0
    assert breaker.state == "half-open"
    with pytest.raises(ConnectionError):
        breaker.call(boom)                          # the trial fails: open for another 5 s
    assert breaker.state == "open"
    clock.now = 9.9
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: 1)
    clock.now = 10.0
    assert breaker.call(lambda: 2) == 2            # the trial succeeds: closed
    assert breaker.state == "closed"


def test_only_one_trial_runs_while_half_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker("redis", fail_max=1, reset_s=1, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(boom)
    clock.now = 1.0
    inside, release = threading.Event(), threading.Event()

    def slow_trial() -> str:
        inside.set()
        release.wait(5)
        return "ok"

    worker = threading.Thread(target=breaker.call, args=(slow_trial,))
    worker.start()
    assert inside.wait(5)
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: 1)                     # a second caller during the trial
    release.set()
    worker.join(5)
    assert breaker.state == "closed"


def test_calls_run_concurrently_not_one_at_a_time() -> None:
    breaker = CircuitBreaker("redis")
    running, most = 0, 0
    lock = threading.Lock()

    def io() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    threads = [threading.Thread(target=breaker.call, args=(io,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert most > 1                                 # pybreaker would give 1


def test_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", fail_max=0)
