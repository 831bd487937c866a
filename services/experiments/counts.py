"""Where the results' numbers come from: the stream processor's A/B counters, behind a port."""

from __future__ import annotations

from typing import Protocol

from services.common.redis_client import RedisClient
from services.designs.experiments.counts import (
    experiment_counts,
    experiment_counts_until,
    experiment_timeline,
)
from services.designs.experiments.tallies import Timeline, VariationCounts


class CountsReader(Protocol):
    def counts(self, experiment: str) -> dict[str, VariationCounts]: ...

    def counts_until(self, experiment: str, until_ms: int) -> dict[str, VariationCounts]: ...

    def timeline(self, experiment: str, points: int) -> Timeline: ...


class RedisCountsReader:
    """The counters as services/stream/experiments.py keeps them (services/designs/
    experiments/counts.py has the layout)."""

    def __init__(self, client: RedisClient, namespace: str = "fs") -> None:
        self._client = client
        self._namespace = namespace

    def counts(self, experiment: str) -> dict[str, VariationCounts]:
        return experiment_counts(self._client, experiment, self._namespace)

    def counts_until(self, experiment: str, until_ms: int) -> dict[str, VariationCounts]:
        return experiment_counts_until(self._client, experiment, until_ms, self._namespace)

    def timeline(self, experiment: str, points: int) -> Timeline:
        return experiment_timeline(self._client, experiment, points, self._namespace)
