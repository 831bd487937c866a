"""A service's vital signs from two reads of its /metrics: request rate, p99, consumer lag.

Pure: the text in, numbers out. No Prometheus server is needed; the window is the time between
the two scrapes, so the p99 is of the requests answered in it (what histogram_quantile over
rate() gives, with the same linear interpolation inside a bucket)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

LATENCY_SUFFIX = "_http_request_duration_seconds"
LAG_SUFFIX = "_consumer_lag_records"
EVENTS_SUFFIX = "_consumer_events_total"
# Probes and scrapes are the platform talking to itself, not the service's traffic.
PLATFORM_ROUTES = frozenset({"/metrics", "/healthz", "/readyz"})


@dataclass(frozen=True)
class Snapshot:
    """What one scrape said: latency buckets and counts summed over the kept routes."""

    at_s: float
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    requests: float = 0.0
    events: float = 0.0
    lag: float | None = None  # None: the process runs no consumer (or none is assigned yet)


@dataclass(frozen=True)
class Vitals:
    rate_rps: float | None      # None until two scrapes exist
    p99_ms: float | None        # None: no request in the window
    events_per_s: float | None
    lag: float | None


def parse(text: str, at_s: float, route: str | None = None) -> Snapshot:
    """One scrape. `route`: count only this route template (a design's endpoint); otherwise
    every route but the platform's own."""
    buckets: dict[float, float] = defaultdict(float)
    requests = events = 0.0
    lag: float | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith(LATENCY_SUFFIX + "_bucket"):
                if _kept(labels.get("route", ""), route):
                    buckets[float(labels["le"])] += sample.value
            elif sample.name.endswith(LATENCY_SUFFIX + "_count"):
                if _kept(labels.get("route", ""), route):
                    requests += sample.value
            elif sample.name.endswith(LAG_SUFFIX):
                lag = (lag or 0.0) + sample.value
            elif sample.name.endswith(EVENTS_SUFFIX):
                events += sample.value
    return Snapshot(at_s, dict(buckets), requests, events, lag)


def _kept(template: str, route: str | None) -> bool:
    return template == route if route is not None else template not in PLATFORM_ROUTES


def vitals(before: Snapshot | None, after: Snapshot) -> Vitals:
    """The window between two scrapes. A restarted process (counters went down) reads as a
    fresh start: its counts since the restart are the window."""
    if before is None or after.at_s <= before.at_s:
        return Vitals(None, None, None, after.lag)
    seconds = after.at_s - before.at_s
    restarted = after.requests < before.requests
    base = Snapshot(before.at_s) if restarted else before
    window = {le: count - base.buckets.get(le, 0.0) for le, count in after.buckets.items()}
    events = after.events - before.events if after.events >= before.events else after.events
    return Vitals(rate_rps=(after.requests - base.requests) / seconds,
                  p99_ms=_quantile_ms(0.99, window), events_per_s=events / seconds,
                  lag=after.lag)


def _quantile_ms(q: float, cumulative: dict[float, float]) -> float | None:
    """histogram_quantile: find the bucket holding rank q * total, interpolate linearly in it.
    Past the last finite edge the answer is that edge (Prometheus does the same)."""
    edges = sorted(cumulative)
    if not edges or (total := cumulative[edges[-1]]) <= 0:
        return None
    rank = q * total
    lower_edge, lower_count = 0.0, 0.0
    for edge in edges:
        count = cumulative[edge]
        if count >= rank:
            if math.isinf(edge):
                return lower_edge * 1000
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return (lower_edge + (edge - lower_edge) * share) * 1000
        lower_edge, lower_count = edge, count
    return lower_edge * 1000
