"""What the A/B counters hold, as values: per variation, and over time (pure; the Redis
adapter that keeps them is counts.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

LATENCY_QUANTILE = 0.99
# Each arm's quantile interval at 97.5 %: two of them bound a difference at >= 95 % (Bonferroni),
# which is how the latency guardrail uses them.
QUANTILE_CONFIDENCE = 0.975


@dataclass(frozen=True)
class Quantile:
    """A quantile of an arm's samples with its distribution-free interval (order statistics)."""

    q: float
    samples: int
    value: float
    low: float
    high: float


def quantile_ranks(n: int, q: float,
                   confidence: float = QUANTILE_CONFIDENCE) -> tuple[int, int, int]:
    """0-based ranks (low, point, high) in n sorted samples of the q-quantile and its interval's
    ends: the count of samples under the true quantile is Binomial(n, q), so the order
    statistics at n q -+ z sqrt(n q (1 - q)) bracket it with the given confidence (Conover's
    normal approximation, fine for the n q >= 10 the guardrails' min_units give)."""
    if n < 1:
        raise ValueError("no samples")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    half = z * math.sqrt(n * q * (1 - q))
    point = math.ceil(n * q) - 1
    low = math.floor(n * q - half) - 1
    high = math.ceil(n * q + half) - 1
    return max(low, 0), min(max(point, 0), n - 1), min(high, n - 1)


@dataclass(frozen=True)
class VariationCounts:
    exposed: int      # distinct units bucketed into the variation
    converted: int    # of those, units that clicked a recommendation at or after exposure
    impressions: int  # recommendation lists (request ids) served under the variation
    clicks: int       # clicks on those lists
    empty: int = 0    # of those lists, the ones served without a title
    latency: Quantile | None = None   # p99 processing time (ms) of the lists; None: not logged


@dataclass(frozen=True)
class Timeline:
    """Cumulative exposed and converted units of each variation at each instant of `times_ms`."""

    times_ms: tuple[int, ...]
    exposed: dict[str, tuple[int, ...]]
    converted: dict[str, tuple[int, ...]]
