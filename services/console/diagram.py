"""The whiteboard diagram of docs/architecture.md as boxes with places, and each box's state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from services.console.vitals import Vitals

Health = Literal["ready", "not ready", "down", "unknown"]


@dataclass(frozen=True)
class Box:
    name: str                   # an upstream's name, or a store seen through its clients' probes
    label: str
    x: int                      # top-left corner in the diagram's 1000 x 560 view box
    y: int
    route: str | None = None    # the design's endpoint: rate and p99 are of it alone
    budget_ms: float | None = None
    store: bool = False         # Redis, Kafka: no HTTP of their own


WIDTH, HEIGHT = 170, 84
BOXES: tuple[Box, ...] = (
    # what lasts and what is analysed (docs/data.md): the lake and the system of record, fed
    # by Kafka from above so their arrows cross no other box
    Box("lake", "lake :8065", 20, 20),
    Box("records", "records :8055", 580, 20),
    Box("postgres", "PostgreSQL", 810, 20, store=True),
    Box("ingest", "ingest :8000", 20, 180),
    Box("kafka", "Kafka", 300, 180, store=True),
    Box("stream", "stream :8050", 580, 180),
    Box("recommender", "recommender :8030", 20, 320, route="/v1/recommendations/{user_id}",
        budget_ms=100.0),
    Box("redis", "Redis", 300, 320, store=True),
    Box("fraud", "fraud :8040", 580, 320, route="/v1/score", budget_ms=50.0),
    Box("fraud-stream-1", "fraud-stream :8041", 810, 320),
    Box("fraud-stream-2", "fraud-stream :8042", 810, 460),
    Box("experiments", "experiments :8020", 20, 460),
    Box("model-server", "model-server :8010", 580, 460),
)
# (from, to, what flows): the arrows of docs/architecture.md's diagram
ARROWS: tuple[tuple[str, str, str], ...] = (
    ("ingest", "kafka", "events"),
    ("kafka", "stream", "consumer groups"),
    ("kafka", "fraud-stream-1", "transactions"),
    ("stream", "redis", "features"),
    ("redis", "recommender", "one round trip"),
    ("redis", "fraud", "one round trip"),
    ("fraud", "model-server", "OIP v2 (remote)"),
    ("experiments", "redis", "A/B counts"),
    ("kafka", "lake", "every topic"),
    ("kafka", "records", "decisions, labels"),
    ("records", "postgres", "of record"),
)
# The probe names under which services report a store in /readyz's checks.
STORE_CHECKS = {"redis": ("redis",), "kafka": ("kafka", "broker", "bus"),
                "postgres": ("postgres",)}


@dataclass(frozen=True)
class BoxState:
    box: Box
    health: Health
    vitals: Vitals | None

    @property
    def over_budget(self) -> bool:
        p99 = self.vitals.p99_ms if self.vitals else None
        return self.box.budget_ms is not None and p99 is not None and p99 > self.box.budget_ms


@dataclass(frozen=True)
class Probe:
    """One service's /readyz: None when it did not answer at all."""

    ready: bool | None
    checks: Mapping[str, str]


def health_of(probe: Probe | None) -> Health:
    if probe is None:
        return "unknown"
    if probe.ready is None:
        return "down"
    return "ready" if probe.ready else "not ready"


def store_health(store: str, probes: Mapping[str, Probe]) -> Health:
    """A store is as its clients see it: ready when each service that checks it says ok."""
    seen = [detail == "ok" for probe in probes.values() for check, detail in probe.checks.items()
            if any(word in check for word in STORE_CHECKS[store])]
    if not seen:
        return "unknown"
    return "ready" if all(seen) else "not ready"


def board(probes: Mapping[str, Probe], vitals: Mapping[str, Vitals]) -> list[BoxState]:
    """Every store, and every service the console knows an address for (one scorer box per
    scorer process the settings say runs)."""
    return [BoxState(box, store_health(box.name, probes) if box.store
                     else health_of(probes.get(box.name)), vitals.get(box.name))
            for box in BOXES if box.store or box.name in probes]


def arrow_points(source: str, target: str) -> tuple[int, int, int, int]:
    """From the edge of one box to the edge of the other, along the line joining centres."""
    a = next(b for b in BOXES if b.name == source)
    b = next(b for b in BOXES if b.name == target)
    ax, ay = a.x + WIDTH // 2, a.y + HEIGHT // 2
    bx, by = b.x + WIDTH // 2, b.y + HEIGHT // 2
    dx, dy = bx - ax, by - ay
    # shorten each end to the box border: scale so the larger relative offset reaches the edge
    scale = max(abs(dx) / (WIDTH / 2), abs(dy) / (HEIGHT / 2), 1e-9)
    ex, ey = int(dx / scale), int(dy / scale)
    return ax + ex, ay + ey, bx - ex, by - ey
