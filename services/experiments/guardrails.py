"""Guardrails: a running experiment whose variation hurts a guarded metric is stopped.

    every MLSD_EXPERIMENTS_GUARDRAIL_INTERVAL_S:
      running experiments with guardrails ─▶ counts (Redis) ─▶ breaches (pure, below)
        ─▶ status stopped, by actor "guardrail:<metric>" (recorded like any change) ─▶ log, metric

A breach needs all three: each arm has `min_units` in the metric's denominator; the variation is
worse than control with the 95 % interval of the difference entirely on the harmful side of 0;
and the observed relative change exceeds the guardrail's tolerance. The first keeps an early,
noisy read from firing; the second, chance; the third, a real but tolerated cost.

- click_through, conversion (harm: lower): the Wald interval of the difference of two rates.
- empty_list_rate (harm: higher): the same test on empty lists / lists. A control that served no
  empty list has no relative change to compare; any significant rise is then a breach.
- latency_p99 (harm: higher): each arm's p99 with its distribution-free 97.5 % interval (order
  statistics of the logged processing times); the difference's interval runs from the
  variation's low minus control's high to the variation's high minus control's low, so it
  covers at >= 95 % (Bonferroni). A quantile has no Wald interval; this one assumes nothing
  about the latency distribution's shape.

The check runs each interval on the running totals, so it peeks: with ~1 check a minute over a
week the false-stop rate is above the nominal 2.5 %, the price of stopping harm early (a
sequential boundary would hold it; docs/experiments.md#guardrails).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from services.designs.experiments.definitions import (
    HIGHER_IS_BETTER,
    ExperimentDefinition,
    Guardrail,
)
from services.designs.experiments.tallies import VariationCounts
from services.experiments.statistics import two_proportion_test

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Breach:
    experiment: str
    variation: str
    metric: str
    control_rate: float            # the metric's value: a rate, or for latency_p99 milliseconds
    variation_rate: float
    relative: float | None         # (variation - control) / control; None when control is 0
    interval: tuple[float, float]  # 95 % interval of the absolute difference

    def describe(self) -> str:
        relative = "control at 0" if self.relative is None else f"{self.relative:+.1%}"
        return (f"{self.experiment}: {self.variation} {self.metric} "
                f"{self.variation_rate:.4f} vs control {self.control_rate:.4f} "
                f"({relative}, 95% CI of the difference "
                f"[{self.interval[0]:+.4f}, {self.interval[1]:+.4f}])")


def _rate_parts(counts: VariationCounts, metric: str) -> tuple[int, int]:
    """(successes, trials) of a rate metric."""
    if metric == "click_through":
        return counts.clicks, counts.impressions
    if metric == "empty_list_rate":
        return counts.empty, counts.impressions
    return counts.converted, counts.exposed


def breaches(definition: ExperimentDefinition,
             counts: Mapping[str, VariationCounts]) -> list[Breach]:
    """Every (variation, guardrail) breached now; empty when all hold."""
    control = counts.get(definition.control)
    if control is None:
        return []
    found = []
    for guardrail in definition.guardrails:
        for variation in definition.variations:
            if variation.name == definition.control or variation.name not in counts:
                continue
            breach = _breach(definition.key, variation.name, guardrail, control,
                             counts[variation.name])
            if breach is not None:
                found.append(breach)
    return found


def _breach(experiment: str, variation: str, guardrail: Guardrail, control: VariationCounts,
            counts: VariationCounts) -> Breach | None:
    if guardrail.metric == "latency_p99":
        return _latency_breach(experiment, variation, guardrail, control, counts)
    c_hits, c_trials = _rate_parts(control, guardrail.metric)
    v_hits, v_trials = _rate_parts(counts, guardrail.metric)
    if min(c_trials, v_trials) < guardrail.min_units:
        return None
    lift = two_proportion_test(c_hits, c_trials, v_hits, v_trials)
    if lift is None:
        return None
    low, high = lift.absolute_interval
    if guardrail.metric in HIGHER_IS_BETTER:
        hurt = (high < 0 and lift.relative is not None
                and lift.relative < -guardrail.tolerance)
    else:
        hurt = low > 0 and (lift.relative is None or lift.relative > guardrail.tolerance)
    if not hurt:
        return None
    return Breach(experiment, variation, guardrail.metric, c_hits / c_trials, v_hits / v_trials,
                  lift.relative, lift.absolute_interval)


def _latency_breach(experiment: str, variation: str, guardrail: Guardrail,
                    control: VariationCounts, counts: VariationCounts) -> Breach | None:
    c, v = control.latency, counts.latency
    if c is None or v is None or min(c.samples, v.samples) < guardrail.min_units:
        return None
    if any(math.isnan(x) for x in (c.low, c.high, v.low, v.high, c.value, v.value)):
        return None       # a rank read past the end of a shrinking set: read again next time
    interval = (v.low - c.high, v.high - c.low)
    relative = (v.value - c.value) / c.value if c.value > 0 else None
    if interval[0] > 0 and (relative is None or relative > guardrail.tolerance):
        return Breach(experiment, variation, guardrail.metric, c.value, v.value, relative,
                      interval)
    return None


class GuardrailWatch:
    """Checks the running experiments' guardrails every `interval_s` on a daemon thread; stops
    an experiment through `stop` (the service's set_status: recorded, stored, refreshed)."""

    def __init__(self, running: Callable[[], list[ExperimentDefinition]],
                 counts: Callable[[str], Mapping[str, VariationCounts]],
                 stop: Callable[[str, str], object], interval_s: float,
                 on_stop: Callable[[Breach], None] = lambda breach: None) -> None:
        self._running = running
        self._counts = counts
        self._stop = stop
        self._interval_s = interval_s
        self._on_stop = on_stop
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self) -> list[Breach]:
        """One pass: the breaches that stopped an experiment (the first per experiment)."""
        stopped = []
        for definition in self._running():
            if not definition.guardrails or definition.status != "running":
                continue
            found = breaches(definition, self._counts(definition.key))
            if not found:
                continue
            first = found[0]
            self._stop(definition.key, f"guardrail:{first.metric}")
            logger.warning("experiment stopped by a guardrail",
                           extra={"experiment": definition.key, "breach": first.describe()})
            self._on_stop(first)
            stopped.append(first)
        return stopped

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="guardrails", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._halt.wait(self._interval_s):
            try:
                self.check_once()
            except Exception:  # Redis or the record down: try again next interval
                logger.exception("guardrail check failed")
