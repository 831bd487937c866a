"""Small in-memory fakes for the experiments tests: the Redis commands the exposure log sends, the
counters the results read, a queue that can be full, the record of changes; a definition body."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from services.common.bus.ports import OutboundMessage
from services.designs.experiments.definitions import ExperimentDefinition
from services.designs.experiments.records import Change
from services.designs.experiments.tallies import Timeline, VariationCounts


class FakeRedis:
    """SET NX PX, DEL, PING and non-transactional pipelines of them; `down` simulates an outage."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.values: dict[str, tuple[bytes, float | None]] = {}
        self.down = False
        self.round_trips = 0
        self._clock = clock

    def _check(self) -> None:
        if self.down:
            raise redis.ConnectionError("Connection refused (simulated)")

    def _live(self, key: str) -> bool:
        entry = self.values.get(key)
        if entry is None:
            return False
        expires = entry[1]
        if expires is not None and self._clock() >= expires:
            del self.values[key]
            return False
        return True

    def _set(self, key: str, value: Any, nx: bool = False, px: int | None = None) -> bool | None:
        if nx and self._live(key):
            return None
        expires = None if px is None else self._clock() + px / 1000
        self.values[key] = (str(value).encode(), expires)
        return True

    def set(self, key: str, value: Any, nx: bool = False, px: int | None = None) -> bool | None:
        self._check()
        self.round_trips += 1
        return self._set(key, value, nx, px)

    def delete(self, *keys: str) -> int:
        self._check()
        self.round_trips += 1
        return sum(self.values.pop(k, None) is not None for k in keys)

    def ping(self) -> bool:
        self._check()
        return True

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)

    def close(self) -> None:
        pass


@dataclass
class FakePipeline:
    redis: FakeRedis
    commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    def set(self, key: str, value: Any, nx: bool = False, px: int | None = None) -> FakePipeline:
        self.commands.append(("set", (key, value), {"nx": nx, "px": px}))
        return self

    def execute(self) -> list[Any]:
        self.redis._check()
        self.redis.round_trips += 1
        return [self.redis._set(*args, **kwargs) for _, args, kwargs in self.commands]


class FakeQueue:
    """BackgroundPublisher's submit(): keeps what it takes; refuses once `capacity` is reached."""

    def __init__(self, capacity: int = 1_000) -> None:
        self.messages: list[OutboundMessage] = []
        self.capacity = capacity

    def submit(self, message: OutboundMessage) -> bool:
        if len(self.messages) >= self.capacity:
            return False
        self.messages.append(message)
        return True


class FakeCounts:
    """The stream processor's counters, as the results read them; `down` simulates an outage."""

    def __init__(self) -> None:
        self.by_experiment: dict[str, dict[str, VariationCounts]] = {}
        self.timelines: dict[str, Timeline] = {}
        self.by_experiment_until: dict[tuple[str, int], dict[str, VariationCounts]] = {}
        self.down = False

    def counts(self, experiment: str) -> dict[str, VariationCounts]:
        if self.down:
            raise redis.TimeoutError("Timeout reading from socket (simulated)")
        return self.by_experiment.get(experiment, {})

    def counts_until(self, experiment: str, until_ms: int) -> dict[str, VariationCounts]:
        """The counts as of an instant: `by_experiment_until[(experiment, until_ms)]` if set."""
        return self.by_experiment_until.get((experiment, until_ms), self.counts(experiment))

    def timeline(self, experiment: str, points: int) -> Timeline:
        if self.down:
            raise redis.TimeoutError("Timeout reading from socket (simulated)")
        return self.timelines.get(experiment, Timeline((), {}, {}))


class FakeHistory:
    """The record of experiment changes (PostgreSQL) as a list; `failure` makes it refuse."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str, str, str]] = []  # change, key, status, actor
        self.failure: Exception | None = None

    def record(self, change: Change, definition: ExperimentDefinition, actor: str) -> None:
        if self.failure is not None:
            raise self.failure
        self.changes.append((change, definition.key, definition.status, actor))


def definition(key: str = "new-ranker", **changes: Any) -> dict[str, Any]:
    return {"key": key, "status": "draft", "variations": [
        {"name": "control", "weight": 0.5, "payload": {"algorithm": "blend"}},
        {"name": "treatment", "weight": 0.5, "payload": {"algorithm": "ranker"}}], **changes}
