"""Exposure logging: one `exposure` event per unit and experiment, for units the hash bucketed.

    exposures = ExposureLog(redis_client, background_publisher, namespace)
    exposures.record(assign(definition, "u42"), "u42")   # "logged" | "duplicate" | ...

Only an assignment with reason "bucketed" is an exposure: a forced (QA) unit, or one outside
coverage or the namespace, saw nothing the analysis should count. Dedupe has two layers:

1. a bounded in-process memory of (experiment, unit) pairs already handled: no I/O at all;
2. `SET <ns>:exp_exposure_logged:{<unit>}:<experiment> 1 NX PX <ttl>` in Redis, shared by every
   process (recommender replicas, the experiments service); one pipelined round trip per call.

The event goes to the background publisher's queue (a request never waits on Kafka). Dedupe
only saves volume: the stream's counters are sets and keep each unit's earliest exposure, so a
duplicate changes no count. Hence the failure choices: Redis down -> publish anyway (a possible
duplicate); queue full -> the marks are taken back, so a later request tries again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import redis

from services.common.bus import topics
from services.common.bus.envelope import Event
from services.common.bus.ports import OutboundMessage
from services.common.ids import check_id, event_id, hash_tag
from services.common.redis_client import RedisClient
from services.designs.experiments.assignment import Assignment
from services.designs.payloads import ExposureData

logger = logging.getLogger(__name__)

Outcome = Literal["logged", "duplicate", "not_exposed", "dropped"]
DEDUPE_TTL = timedelta(days=30)


class Submitter(Protocol):
    """What BackgroundPublisher offers: queue a message, False when the queue is full."""

    def submit(self, message: OutboundMessage) -> bool: ...


def logged_key(unit_id: str, experiment: str, namespace: str = "fs") -> str:
    """The unit's tag first, so a unit's marks share a slot with its other experiment keys."""
    return f"{namespace}:exp_exposure_logged:{hash_tag(unit_id)}:{experiment}"


def exposure_event(assignment: Assignment, unit_id: str, source: str,
                   at: datetime) -> Event:
    """The event id is the pair itself: a repeat is also skipped by the consumers' dedupe."""
    assert assignment.variation is not None
    data = ExposureData(experiment=assignment.experiment, variation=assignment.variation,
                        unit_id=unit_id)
    return Event.new("exposure", source, data.model_dump(), time=at,
                     id=exposure_event_id(assignment.experiment, unit_id))


def exposure_event_id(experiment: str, unit_id: str) -> str:
    """`exposure:<experiment>:<unit>`, or the unit's digest where that would be too long."""
    return event_id(f"exposure:{experiment}", unit_id)


class _Memory:
    """A bounded set that forgets its oldest entries first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._seen: dict[tuple[str, str], None] = {}
        self._lock = threading.Lock()

    def __contains__(self, pair: tuple[str, str]) -> bool:
        return pair in self._seen

    def add(self, pair: tuple[str, str]) -> None:
        with self._lock:
            self._seen[pair] = None
            while len(self._seen) > self._capacity:
                del self._seen[next(iter(self._seen))]

    def discard(self, pair: tuple[str, str]) -> None:
        with self._lock:
            self._seen.pop(pair, None)


class ExposureLog:
    def __init__(self, client: RedisClient, publisher: Submitter, namespace: str = "fs", *,
                 source: str = "experiments", topic: str = topics.EXPOSURES,
                 ttl: timedelta = DEDUPE_TTL, memory_size: int = 100_000,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._client = client
        self._publisher = publisher
        self._namespace = namespace
        self._source = source
        self._topic = topic
        self._ttl_ms = int(ttl / timedelta(milliseconds=1))
        self._memory = _Memory(memory_size)
        self._clock = clock

    def remembers(self, experiment: str, unit_id: str) -> bool:
        """This process handled the pair already: record() would say "duplicate" with no I/O."""
        return (experiment, unit_id) in self._memory

    def record(self, assignment: Assignment, unit_id: str) -> Outcome:
        """Log the exposure unless it is not one or was logged before; never raises on I/O."""
        [outcome] = self.record_all([assignment], unit_id)
        return outcome

    def record_all(self, assignments: Sequence[Assignment], unit_id: str) -> list[Outcome]:
        """record() for several experiments of one unit, in at most one Redis round trip."""
        check_id(unit_id)
        outcomes: list[Outcome] = ["not_exposed"] * len(assignments)
        fresh: list[int] = []
        for i, a in enumerate(assignments):
            if a.exposed:
                if (a.experiment, unit_id) in self._memory:
                    outcomes[i] = "duplicate"
                else:
                    fresh.append(i)
        if not fresh:
            return outcomes
        marked = self._mark([assignments[i].experiment for i in fresh], unit_id)
        now = self._clock()
        for i, first in zip(fresh, marked, strict=True):
            pair = (assignments[i].experiment, unit_id)
            self._memory.add(pair)
            if not first:
                outcomes[i] = "duplicate"
                continue
            event = exposure_event(assignments[i], unit_id, self._source, now)
            if self._publisher.submit(OutboundMessage.of(self._topic, unit_id, event)):
                outcomes[i] = "logged"
            else:
                outcomes[i] = "dropped"
                self._forget(pair)
        return outcomes

    def _mark(self, experiments: Sequence[str], unit_id: str) -> list[bool]:
        """For each experiment, whether this call is the first to log it (SET NX won)."""
        pipe = self._client.pipeline(transaction=False)
        for experiment in experiments:
            pipe.set(logged_key(unit_id, experiment, self._namespace), 1, nx=True,
                     px=self._ttl_ms)
        try:
            return [bool(won) for won in pipe.execute()]
        except redis.RedisError as exc:
            logger.warning("exposure dedupe unavailable; logging without it",
                           extra={"error": f"{type(exc).__name__}: {exc}"})
            return [True] * len(experiments)

    def _forget(self, pair: tuple[str, str]) -> None:
        self._memory.discard(pair)
        # If Redis fails here too, the mark expires with its TTL; until then the exposure of
        # this unit is missing (the results undercount it by one).
        with contextlib.suppress(redis.RedisError):
            self._client.delete(logged_key(pair[1], pair[0], self._namespace))
