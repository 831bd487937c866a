"""What the A/B counters hold, as values: per variation, and over time (pure; the Redis
adapter that keeps them is counts.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VariationCounts:
    exposed: int      # distinct units bucketed into the variation
    converted: int    # of those, units that clicked a recommendation at or after exposure
    impressions: int  # recommendation lists (request ids) served under the variation
    clicks: int       # clicks on those lists


@dataclass(frozen=True)
class Timeline:
    """Cumulative exposed and converted units of each variation at each instant of `times_ms`."""

    times_ms: tuple[int, ...]
    exposed: dict[str, tuple[int, ...]]
    converted: dict[str, tuple[int, ...]]
