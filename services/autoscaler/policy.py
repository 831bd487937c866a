"""The scaling decision, pure: one observation window in, +1, -1 or 0 workers out.

Bounded (never below `min_workers` nor above `max_workers`) and with hysteresis, so a noisy p99
does not make the worker count flap: scale up only after `up_after` windows in a row over
budget, down only after `down_after` windows in a row well under it (below `low_water` times the
budget and nothing queued), and never twice within `cooldown_s` (a new worker needs a moment to
start and to take its share before its effect can be measured).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    p99_budget_ms: float
    queue_budget: int  # requests waiting for a worker (the balancer's queue) before it is "over"
    min_workers: int = 1
    max_workers: int = 4
    up_after: int = 2
    down_after: int = 30  # slow down, fast up: the load step flapped with 6 (12 s of calm)
    low_water: float = 0.5
    cooldown_s: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_workers <= self.max_workers:
            raise ValueError(f"need 1 <= min_workers <= max_workers, got {self.min_workers} "
                             f"and {self.max_workers}")
        if not 0 < self.low_water < 1:
            raise ValueError("low_water is a share of the budget, between 0 and 1")


@dataclass(frozen=True)
class Observation:
    """One window: the p99 of the requests answered in it (None: none were), the queue depth at
    its end, and how many workers served it."""

    p99_ms: float | None
    queue: int
    workers: int


class Scaler:
    """Remembers the streak of windows over (or under) budget and when it last acted."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._over = 0
        self._under = 0
        self._last_change_s: float | None = None

    def decide(self, seen: Observation, now_s: float) -> int:
        p = self.policy
        over = (seen.p99_ms is not None and seen.p99_ms > p.p99_budget_ms) \
            or seen.queue > p.queue_budget
        under = (seen.p99_ms is None or seen.p99_ms < p.low_water * p.p99_budget_ms) \
            and seen.queue == 0
        self._over = self._over + 1 if over else 0
        self._under = self._under + 1 if under else 0
        cooling = self._last_change_s is not None and now_s - self._last_change_s < p.cooldown_s
        step = 0
        if cooling:
            step = 0
        elif self._over >= p.up_after and seen.workers < p.max_workers:
            step = 1
        elif self._under >= p.down_after and seen.workers > p.min_workers:
            step = -1
        if step:
            self._last_change_s = now_s
            self._over = self._under = 0
        return step
