"""The circuit breaker: opens after consecutive failures, one trial when due, calls concurrent;
a breaker per part of a dependency (BreakerSet)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from services.common.breaker import BreakerSet, CircuitBreaker, CircuitOpen


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


# --- a breaker per part (BreakerSet) -------------------------------------------------------------
def by_prefix(key: str) -> str:
    """A stand-in slot map: a key's part is what precedes its colon."""
    return key.split(":", maxsplit=1)[0]


def test_a_part_that_keeps_failing_opens_only_its_own_breaker() -> None:
    clock = Clock()
    breakers = BreakerSet("store", by_prefix, fail_max=2, reset_s=5, clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breakers.for_key("a:card1").call(boom)
    with pytest.raises(CircuitOpen, match="store a"):
        breakers.for_key("a:card2").call(lambda: 1)
    assert breakers.for_key("b:card3").call(lambda: 2) == 2
    assert breakers.states() == {"a": "open", "b": "closed"}
    clock.now = 5
    assert breakers.for_key("a:card1").call(lambda: 3) == 3    # its trial, then closed
    assert breakers.states() == {"a": "closed", "b": "closed"}


def test_one_call_to_several_parts_is_counted_against_the_parts_that_failed() -> None:
    clock = Clock()
    breakers = BreakerSet("store", by_prefix, fail_max=1, reset_s=5, clock=clock)
    permits = breakers.admit(["a", "b", "c"])
    assert permits.keys() == {"a", "b", "c"}
    breakers.settle(permits, failed=["b"])
    assert breakers.states() == {"a": "closed", "b": "open", "c": "closed"}
    assert breakers.admit(["a", "b"]).keys() == {"a"}            # the open part is left out


def test_a_trial_permit_not_used_is_handed_to_the_next_call() -> None:
    clock = Clock()
    breakers = BreakerSet("store", by_prefix, fail_max=1, reset_s=5, clock=clock)
    breakers.settle(breakers.admit(["a"]), failed=["a"])
    clock.now = 5
    trial = breakers.admit(["a"])
    assert breakers.admit(["a"]) == {}                           # one trial at a time
    breakers.release(trial)
    assert breakers.admit(["a"]).keys() == {"a"}


def test_with_one_part_every_key_shares_one_breaker() -> None:
    breakers = BreakerSet.single("redis", fail_max=1, reset_s=5)
    with pytest.raises(ConnectionError):
        breakers.for_key("a:card1").call(boom)
    with pytest.raises(CircuitOpen):
        breakers.for_key("b:card2").call(lambda: 1)


def test_only_one_part_is_named_so_callers_need_not_place_their_keys() -> None:
    assert BreakerSet.single("redis").only == "redis"
    assert BreakerSet("cluster", lambda key: key[:1]).only is None


def test_while_a_part_is_open_its_keys_are_located_again_at_most_every_refresh_s() -> None:
    """After a failover the slot map moves the dead master's keys to the promoted replica: the
    refresh finds it, and the keys are whole again without waiting for the dead part's trial.
    The call that starts a refresh goes on with the map it had (the refresh runs apart)."""
    clock = Clock()
    where = {"card1": "old"}
    refreshes = []

    def refresh() -> None:
        refreshes.append(clock.now)
        if clock.now >= 3:
            where["card1"] = "new"                               # the replica was promoted

    breakers = BreakerSet("store", lambda key: where[key], fail_max=1, reset_s=60,
                          refresh=refresh, refresh_s=1.0, clock=clock, spawn=lambda run: run())
    with pytest.raises(ConnectionError):
        breakers.for_key("card1").call(boom)
    for now in (0.0, 0.5, 1.0, 1.2, 3.0):
        clock.now = now
        assert breakers.part_of("card1") == "old"               # the map it had
    assert refreshes == [0.0, 1.0, 3.0]
    assert breakers.part_of("card1") == "new"
    assert breakers.for_key("card1").call(lambda: 1) == 1
    clock.now = 10
    breakers.part_of("card1")
    assert refreshes == [0.0, 1.0, 3.0]                          # nothing open: no refresh


def test_a_part_the_caller_placed_itself_starts_a_refresh_while_it_is_open() -> None:
    """located(): a key the set's locate does not take (the recommender's trending list, beside
    the user ids it places) gets part_of's refresh all the same."""
    refreshes = []
    breakers = BreakerSet("store", by_prefix, fail_max=1, reset_s=60,
                          refresh=lambda: refreshes.append(1), clock=Clock(),
                          spawn=lambda run: run())
    assert breakers.located("b") == "b" and refreshes == []      # closed: no refresh
    with pytest.raises(ConnectionError):
        breakers.part("b").call(boom)
    assert breakers.located("b") == "b" and refreshes == [1]


def test_a_refresh_runs_apart_and_one_at_a_time() -> None:
    started: list[Callable[[], None]] = []
    calls = []
    breakers = BreakerSet("store", by_prefix, fail_max=1, reset_s=60,
                          refresh=lambda: calls.append(1), refresh_s=0.0, clock=Clock(),
                          spawn=started.append)
    with pytest.raises(ConnectionError):
        breakers.for_key("a:x").call(boom)
    breakers.part_of("a:x")
    breakers.part_of("a:x")                                      # one is running: none more
    assert len(started) == 1 and calls == []                     # not run by the caller
    started[0]()
    assert calls == [1]
    breakers.part_of("a:x")
    assert len(started) == 2                                     # done: the next may start


def test_a_refresh_that_fails_is_tried_again_later() -> None:
    clock = Clock()

    def refresh() -> None:
        raise RuntimeError("slots not covered")

    breakers = BreakerSet("store", by_prefix, fail_max=1, reset_s=60, refresh=refresh,
                          clock=clock, spawn=lambda run: run())
    with pytest.raises(ConnectionError):
        breakers.for_key("a:x").call(boom)
    assert breakers.part_of("a:x") == "a"                        # the failure is not raised


def test_a_failure_that_cannot_be_placed_counts_against_every_part() -> None:
    """A timeout of a whole slow cluster opens every part's breaker after fail_max failures in
    all, not fail_max on each; a refused connection counts against its own part only."""
    breakers = BreakerSet("store", by_prefix, fail_max=2, reset_s=5, clock=Clock(),
                          everywhere=lambda error: isinstance(error, TimeoutError))
    assert breakers.call("a:x", lambda: 1) == breakers.call("b:x", lambda: 1) == 1

    def refused() -> None:
        raise ConnectionRefusedError("refused")

    def slow() -> None:
        raise TimeoutError("timed out")

    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            breakers.call("a:x", refused)
    assert breakers.states() == {"a": "open", "b": "closed"}
    with pytest.raises(TimeoutError):
        breakers.call("c:x", slow)
    with pytest.raises(TimeoutError):
        breakers.call("c:y", slow)
    assert breakers.states() == {"a": "open", "b": "open", "c": "open"}
