"""Recommendation-service traffic: who asks GET /v1/recommendations/{user_id}, for how many.

Pure (no Locust, no network): the locustfile (recs.py) and the open-loop driver (openloop.py)
wire `TrafficGenerator` to their clients. The askers are the viewing world's users
(users.parquet), in three segments:

- hot: the users Mix.hot_users names send Mix.hot_share of the requests, Zipf-weighted among
  themselves (the user of rank r in proportion to 1 / r**Mix.zipf_exponent).
- tail: every other world user, uniformly: rarely asked twice in a run, so mostly computed.
- cold: ids no world has (u9000000 and up, a new one each time): cold start.

Two mixes are named (MIXES). `population`, the default: every world user is ranked (at random,
seeded) and asks in proportion to 1 / rank**0.8, and 10 % of requests come from users no
world has. `skewed`, the load test's mix until issue 15: 60 % of requests from 60 users, which
put 63-76 % of answers in the cache. Either way, a run's report states the cache share it
produced (served_from).

k is 10 for most requests, sometimes 5, 20, 50 or 100 (a carousel, a full page).
`Tally` checks each answer against the contract and counts where it was served from.
"""

from __future__ import annotations

import bisect
import csv
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

import pandas as pd

# The load test of the recommendation service: the request name in the stats (and the gate), the
# design's budget (docs/architecture.md), the default rate, the world `make models` writes.
ENDPOINT = "GET /v1/recommendations/{user_id}"
P99_BUDGET_MS = 100.0
DEFAULT_TARGET_RPS = 300.0
DEFAULT_WORLD = Path(".state/worlds/viewing")

HOT, TAIL, COLD = "hot", "tail", "cold"
COLD_USER_BASE = 9_000_000  # far above the world's numbering (u0 ... u5999 by default)
COLD_USER_SPAN = 1_000_000
K_RANGE = (1, 100)  # what the service accepts; anything else is a 422
K_WEIGHTS: dict[int, float] = {10: 0.85, 5: 0.04, 20: 0.06, 50: 0.04, 100: 0.01}


@dataclass(frozen=True)
class Mix:
    """Who asks: the hot head's size and share of requests, the cold share (the rest is the
    tail), how steep the head is, and how often each k is asked for."""

    hot_users: int = 60          # 1 % of the default world's 6,000 users
    hot_share: float = 0.6
    cold_share: float = 0.05
    zipf_exponent: float = 1.0   # the hot user of rank r asks in proportion to 1 / r**exponent
    k_weights: Mapping[int, float] = field(default_factory=lambda: dict(K_WEIGHTS))

    def __post_init__(self) -> None:
        if min(self.hot_share, self.cold_share) < 0 or self.hot_share + self.cold_share > 1:
            raise ValueError("hot_share and cold_share must be >= 0 and add up to at most 1, "
                             f"got {self.hot_share} and {self.cold_share}")
        if self.hot_users < 1:
            raise ValueError(f"hot_users must be at least 1, got {self.hot_users}")
        low, high = K_RANGE
        if not self.k_weights or any(not low <= k <= high or w <= 0
                                     for k, w in self.k_weights.items()):
            raise ValueError(f"k_weights needs positive weights of k in {low}..{high}")

    @property
    def tail_share(self) -> float:
        return 1.0 - self.hot_share - self.cold_share


EVERY_USER = 10**12  # hot_users beyond any world's size: the whole population is ranked
MIXES: dict[str, Mix] = {
    "population": Mix(hot_users=EVERY_USER, hot_share=0.9, cold_share=0.1, zipf_exponent=0.8),
    "skewed": Mix(),
}
DEFAULT_MIX = "population"


class Population:
    """The world's users split once into a hot head and a tail: the split is seeded, so every
    simulated client of a run (each with its own generator) has the same hot users."""

    def __init__(self, user_ids: Sequence[str], mix: Mix | None = None, seed: int = 0) -> None:
        self.mix = mix or MIXES[DEFAULT_MIX]
        users = list(dict.fromkeys(user_ids))  # unique, in order
        if not users:
            raise ValueError("a population needs at least one user")
        random.Random(seed).shuffle(users)  # the world's numbering says nothing about activity
        head = min(self.mix.hot_users, len(users))
        if head == len(users) and self.mix.tail_share > 0:
            head -= 1  # keep a tail to draw from
        self.hot = tuple(users[:head])
        self.tail = tuple(users[head:])
        if not self.hot and self.mix.hot_share > 0:
            raise ValueError("a hot share needs at least two users: one hot, one in the tail")
        self.known = frozenset(users)
        self.hot_cum_weights = tuple(accumulate(
            1.0 / rank ** self.mix.zipf_exponent for rank in range(1, len(self.hot) + 1)))
        self.ks = tuple(self.mix.k_weights)
        self.k_cum_weights = tuple(accumulate(self.mix.k_weights.values()))


def load_users(directory: Path) -> list[str]:
    """The user ids of the viewing world `make models` wrote (users.parquet in directory)."""
    path = directory / "users.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no viewing world at {path}: run `make models`")
    return [str(u) for u in pd.read_parquet(path, columns=["user_id"])["user_id"]]


# --- The generator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RecsRequest:
    segment: str  # HOT, TAIL or COLD
    user_id: str
    k: int

    @property
    def path(self) -> str:
        return f"/v1/recommendations/{self.user_id}?k={self.k}"


class TrafficGenerator:
    """An endless stream of recommendation requests for one simulated client."""

    def __init__(self, population: Population, rng: random.Random) -> None:
        self._population = population
        self._rng = rng
        mix = population.mix
        self._hot_below = mix.hot_share
        self._cold_below = mix.hot_share + mix.cold_share

    def __iter__(self) -> Iterator[RecsRequest]:
        return self

    def __next__(self) -> RecsRequest:
        draw = self._rng.random()
        if draw < self._hot_below:
            segment, user = HOT, self._hot_user()
        elif draw < self._cold_below:
            segment, user = COLD, self._cold_user()
        else:
            segment, user = TAIL, self._rng.choice(self._population.tail)
        return RecsRequest(segment, user, self._k())

    def _hot_user(self) -> str:
        weights = self._population.hot_cum_weights
        return self._population.hot[bisect.bisect_right(weights, self._rng.random() * weights[-1])]

    def _cold_user(self) -> str:
        while True:  # a world as large as the cold range would loop; none is
            user = f"u{COLD_USER_BASE + self._rng.randrange(COLD_USER_SPAN)}"
            if user not in self._population.known:
                return user

    def _k(self) -> int:
        weights = self._population.k_cum_weights
        return self._population.ks[bisect.bisect_right(weights, self._rng.random() * weights[-1])]


# --- The answers -----------------------------------------------------------------------------

SERVED_FROM = ("cache", "computed", "fallback")
UNCACHED = {"Cache-Control": "no-cache, no-store"}  # the recommender computes, and keeps nothing
FIELDS = ("user_id", "items", "variant", "model_version", "served_from", "processing_time_ms")


class MalformedAnswer(Exception):
    """A 200 answer that breaks the contract; the message says how."""


def served_from(body: object, request: RecsRequest) -> str:
    """Where a 200 answer's JSON body says it was served from, once it holds every field of the
    contract, is about the user asked about, has at most k items and a known served_from."""
    if not isinstance(body, dict):
        raise MalformedAnswer("not a JSON object")
    missing = [name for name in FIELDS if name not in body]
    if missing:
        raise MalformedAnswer(f"missing {', '.join(missing)}")
    if body["served_from"] not in SERVED_FROM:
        raise MalformedAnswer(f"served_from {body['served_from']!r} not in "
                              f"{', '.join(SERVED_FROM)}")
    if body["user_id"] != request.user_id:
        raise MalformedAnswer("user_id is not the one asked about")
    if not isinstance(body["items"], list) or len(body["items"]) > request.k:
        raise MalformedAnswer("items is not a list of at most k")
    return str(body["served_from"])


def uncached_problem(body: Mapping[str, object]) -> str | None:
    """What is wrong with a well-formed answer to a request that asked for a list computed now
    (UNCACHED): anything served another way."""
    source = body["served_from"]
    return None if source == "computed" else f"served from {source}, not computed"


@dataclass
class Tally:
    """Where well-formed answers were served from, and the malformed ones by problem."""

    served_from: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)

    def record(self, body: object, request: RecsRequest) -> str | None:
        """Count one 200 answer; what is wrong with it, or None."""
        try:
            self.served_from[served_from(body, request)] += 1
        except MalformedAnswer as problem:
            self.malformed[str(problem)] += 1
            return str(problem)
        return None

    def clear(self) -> None:
        self.served_from.clear()
        self.malformed.clear()

    def merge(self, other: Mapping[str, Mapping[str, int]]) -> None:
        """Add another tally's counts, as `as_dict` gives them (a Locust worker's share)."""
        self.served_from.update(other.get("served_from", {}))
        self.malformed.update(other.get("malformed", {}))

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"served_from": dict(self.served_from), "malformed": dict(self.malformed)}

    def problems(self) -> list[str]:
        """What fails the endpoint: any malformed answer is a broken contract."""
        if not self.malformed:
            return []
        example = self.malformed.most_common(1)[0][0]
        return [f"{self.malformed.total():,} malformed answer(s), e.g. {example}"]

    def line(self) -> str:
        """e.g. served_from: cache 5,112 (56.8%), computed 3,421 (38.0%), fallback 467 (5.2%);
        0 malformed"""
        total = self.served_from.total()
        shares = ", ".join(f"{source} {self.served_from[source]:,} "
                           f"({self.served_from[source] / total if total else 0:.1%})"
                           for source in SERVED_FROM)
        return f"served_from: {shares}; {self.malformed.total():,} malformed"

    def write_csv(self, path: Path) -> None:
        """served_from,answers per source, then a `malformed` row: what the report shows."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["served_from", "answers"])
            writer.writerows((source, self.served_from[source]) for source in SERVED_FROM)
            writer.writerow(["malformed", self.malformed.total()])


def read_tally_csv(path: Path) -> dict[str, int]:
    """What Tally.write_csv wrote: answers per served_from, and `malformed`."""
    with path.open(newline="") as file:
        return {row["served_from"]: int(row["answers"]) for row in csv.DictReader(file)}
