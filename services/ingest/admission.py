"""Load shedding: refuse a batch at once (503) while the event bus is not acknowledging.

During a Kafka leader election every acks=all write waits: the dead broker still counts as in
sync until the controller fences it (seconds), so a batch accepted then is answered seconds late
whatever ingest does. Waiting longer helps nobody: the client's budget is gone, and each waiting
batch holds a worker thread that later batches queue behind. So ingest watches its own writes in
flight: once the oldest has waited past a bound, or too many events are unacknowledged, new
batches are refused with 503 + Retry-After before anything is sent. The writes already sent keep
their delivery timeout; when they are acknowledged (the new leaders are elected), the oldest wait
drops and batches are admitted again, without a timer: the stalled writes are the probe.
With ingest's spool (spool.py) the same decision spills a batch to the spool instead of
refusing it, at a shorter bound (ingest_spool_after_s): an fsync costs less than a refusal.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class AdmissionLimits:
    max_wait_s: float  # an unacknowledged write older than this: the bus is stalled
    max_in_flight_events: int  # events sent and not yet acknowledged, over every batch


@dataclass(frozen=True)
class InFlightState:
    """Ingest's writes to the bus at one instant."""

    oldest_wait_s: float  # 0.0 when nothing is in flight
    events: int


def refusal(state: InFlightState, adding: int, limits: AdmissionLimits) -> str | None:
    """Why a batch of `adding` events must be refused now, or None to admit it. A batch is
    admitted when nothing is in flight, whatever its size, so one over the in-flight bound
    cannot be refused forever."""
    if state.events and state.oldest_wait_s > limits.max_wait_s:
        return (f"the event bus has not acknowledged a write for {state.oldest_wait_s:.1f} s "
                f"(over {limits.max_wait_s:g} s; a broker is probably being replaced)")
    if state.events and state.events + adding > limits.max_in_flight_events:
        return (f"{state.events} events are waiting for the event bus; {adding} more would pass "
                f"the bound of {limits.max_in_flight_events}")
    return None


class InFlight:
    """Thread-safe register of the batches being published (the route runs them on threads)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tickets = itertools.count()
        self._batches: dict[int, tuple[float, int]] = {}  # ticket -> (sent at, events)

    def enter(self, events: int) -> int:
        with self._lock:
            ticket = next(self._tickets)
            self._batches[ticket] = (self._clock(), events)
            return ticket

    def leave(self, ticket: int) -> None:
        with self._lock:
            self._batches.pop(ticket, None)

    def state(self) -> InFlightState:
        with self._lock:
            if not self._batches:
                return InFlightState(0.0, 0)
            # dicts keep insertion order and tickets only grow: the first is the oldest
            sent_at = next(iter(self._batches.values()))[0]
            events = sum(n for _, n in self._batches.values())
        return InFlightState(max(0.0, self._clock() - sent_at), events)
