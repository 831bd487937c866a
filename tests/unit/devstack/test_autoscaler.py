"""The autoscaler's decision (bounded, with hysteresis) and its p99 from histogram scrapes."""

from __future__ import annotations

import httpx
import pytest

from services.autoscaler.observe import latency_buckets, next_window, window_p99_ms
from services.autoscaler.policy import Observation, Policy, Scaler

POLICY = Policy(p99_budget_ms=100, queue_budget=10, min_workers=1, max_workers=3, up_after=2,
                down_after=3, cooldown_s=10)


def run(scaler: Scaler, windows: list[tuple[float | None, int, int]], start_s: float = 0.0,
        every_s: float = 2.0) -> list[int]:
    return [scaler.decide(Observation(p99, queue, workers), start_s + i * every_s)
            for i, (p99, queue, workers) in enumerate(windows)]


def test_one_slow_window_is_noise_two_in_a_row_add_a_worker() -> None:
    assert run(Scaler(POLICY), [(150, 0, 1), (50, 0, 1), (150, 0, 1), (150, 0, 1)]) \
        == [0, 0, 0, 1]


def test_a_queue_over_its_budget_adds_a_worker_even_when_answers_are_fast() -> None:
    assert run(Scaler(POLICY), [(20, 11, 1), (20, 11, 1)]) == [0, 1]


def test_no_second_step_inside_the_cooldown_and_never_past_the_bounds() -> None:
    scaler = Scaler(POLICY)
    over = [(500.0, 50, w) for w in (1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3)]
    steps = run(scaler, over)  # a window every 2 s: the cooldown spans 5 windows
    assert steps[:2] == [0, 1] and steps[2:6] == [0, 0, 0, 0]
    assert sum(steps) == 2, "three workers is the maximum"


def test_workers_are_removed_only_after_a_long_calm_and_never_below_the_minimum() -> None:
    scaler = Scaler(POLICY)
    # between half the budget and the budget: neither over nor calm, nothing changes
    assert run(scaler, [(70, 0, 2)] * 6) == [0] * 6
    assert run(scaler, [(10, 0, 2), (None, 0, 2), (10, 0, 2)], start_s=100) == [0, 0, -1]
    assert run(scaler, [(10, 0, 1)] * 6, start_s=200) == [0] * 6


def test_bounds_that_cannot_hold_are_refused() -> None:
    with pytest.raises(ValueError, match="min_workers"):
        Policy(p99_budget_ms=100, queue_budget=0, min_workers=4, max_workers=2)


def metrics(counts: dict[str, float], route: str = "/v1/x") -> str:
    lines = ["# HELP svc_http_request_duration_seconds latency",
             "# TYPE svc_http_request_duration_seconds histogram"]
    for status in ("200", "503"):
        for bound, count in counts.items():
            lines.append(f'svc_http_request_duration_seconds_bucket{{le="{bound}",'
                         f'method="GET",route="{route}",status="{status}"}} {count}')
    lines.append('svc_http_request_duration_seconds_bucket{le="+Inf",method="GET",'
                 'route="/other",status="200"} 999')
    return "\n".join(lines) + "\n"


def test_the_window_p99_is_the_bucket_holding_the_99th_request_of_that_window_only() -> None:
    name, labels = "svc_http_request_duration_seconds", {"route": "/v1/x"}
    before = latency_buckets(metrics({"0.05": 100, "0.1": 100, "0.5": 100, "+Inf": 100}),
                             name, labels)
    # in the window: 200 more requests (100 per status), 10 of them between 0.1 and 0.5 s
    after = latency_buckets(metrics({"0.05": 190, "0.1": 195, "0.5": 200, "+Inf": 200}),
                            name, labels)
    assert window_p99_ms(before, after) == 500.0
    assert window_p99_ms(after, after) is None  # nothing answered: no p99


def test_a_scrape_the_service_could_not_answer_is_a_window_over_budget_not_a_crash() -> None:
    before = {0.05: 10.0, 0.1: 10.0, float("inf"): 10.0}

    def overloaded() -> dict[float, float]:
        raise httpx.ReadTimeout("timed out")

    p99_ms, kept = next_window(before, overloaded, timeout_s=2.0)
    assert p99_ms == 2000.0 and p99_ms > POLICY.p99_budget_ms
    assert kept is before, "the next window counts from the last buckets read"

    later = {0.05: 10.0, 0.1: 10.0, float("inf"): 110.0}
    p99_ms, kept = next_window(kept, lambda: later)
    assert p99_ms == 200.0 and kept is later  # the +Inf bucket: twice the highest bound
