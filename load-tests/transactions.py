"""Fraud-service traffic: POST /v1/score bodies drawn from the synthetic world's customers.

Pure (no Locust, no network): a locustfile wires `TrafficGenerator` to its users. By default
about 97 % of requests are a customer's ordinary day (own card, own device, home IP, a terminal
near home, an amount from the customer's own distribution) and about 3 % follow one of the fraud
patterns the models were trained on (services/trainer/worlds/transactions.py):

- card testing: a burst of 3-8 probes under SMALL_AMOUNT at one digital merchant, one card,
  from a fraudster's device and IP;
- impossible travel: a normal transaction near home, then the same card at a terminal over
  1,000 km away, 2-30 minutes later;
- account takeover: 1-3 large transfers from a device and an IP the customer never used;
- amount spike: the customer's own setting, 5-10 x their mean amount.

Requests of one episode go out back to back, so a burst looks like a burst to the service.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from services.designs.model_features import SMALL_AMOUNT
from services.trainer.fraud_features import haversine_km
from services.trainer.worlds.transactions import (
    CARD_TESTING_CATEGORIES,
    CURRENCY,
    MERCHANT_CATEGORIES,
)

# The load test of the fraud service: the request name in the stats (and the gate), the design's
# decision budget (docs/architecture.md), the default rate, the world `make models` writes.
ENDPOINT = "POST /v1/score"
P99_BUDGET_MS = 50.0
DEFAULT_TARGET_RPS = 500.0
DEFAULT_WORLD = Path(".state/worlds/transactions")

LEGITIMATE = "legitimate"
CARD_TESTING = "card_testing"
IMPOSSIBLE_TRAVEL = "impossible_travel"
ACCOUNT_TAKEOVER = "account_takeover"
AMOUNT_SPIKE = "amount_spike"
FRAUD_PATTERNS = (CARD_TESTING, IMPOSSIBLE_TRAVEL, ACCOUNT_TAKEOVER, AMOUNT_SPIKE)

TRANSACTION_TYPES: dict[str, str] = {c: kind for c, (_, kind) in MERCHANT_CATEGORIES.items()}
TAKEOVER_CATEGORY = "money_transfer"
HOME_RADIUS_KM = 50.0           # the world's radius 5 on its 100 x 100 grid
IMPOSSIBLE_TRAVEL_KM = 1_000.0
TRAVEL_GAP_MINUTES = (2.0, 30.0)  # > 2,000 km/h: no flight makes it
CARD_TESTING_PROBES = (3, 8)
TAKEOVER_TRANSFERS = (1, 3)
TAKEOVER_AMOUNT = (200.0, 3_000.0)
SPIKE_FACTOR = (5.0, 10.0)
# Devices and IPs no world customer has: dev<N> above the world's numbering, RFC 2544's block.
FRAUDSTER_DEVICE_BASE = 10_000_000

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Customer:
    customer_id: str
    card_id: str
    latitude: float
    longitude: float
    mean_amount: float
    std_amount: float
    device_id: str
    second_device_id: str | None
    home_ip: str
    transactions_per_day: float = 1.0  # how often the customer shows up in the traffic


@dataclass(frozen=True)
class Terminal:
    terminal_id: str
    latitude: float
    longitude: float
    merchant_id: str
    merchant_category: str


class World:
    """Customers and terminals, indexed once (terminals near each home, terminals per category),
    then only read: every simulated client of a load test shares one."""

    def __init__(self, customers: Sequence[Customer], terminals: Sequence[Terminal],
                 home_radius_km: float = HOME_RADIUS_KM) -> None:
        self.terminals = tuple(terminals)
        self._lat = np.array([t.latitude for t in self.terminals], dtype=np.float64)
        self._lon = np.array([t.longitude for t in self.terminals], dtype=np.float64)
        near, farthest = self._index_homes(customers, home_radius_km)
        # As in the world, a customer with no terminal in reach never transacts.
        keep = [i for i, c in enumerate(customers) if near[i] and c.transactions_per_day > 0]
        if not keep:
            raise ValueError("no customer has a terminal near home: nothing to generate")
        self.customers = tuple(customers[i] for i in keep)
        self.near_home = tuple(near[i] for i in keep)
        self.cum_weights = tuple(accumulate(c.transactions_per_day for c in self.customers))
        # Far enough from home that any terminal near home is still IMPOSSIBLE_TRAVEL_KM away.
        self.travellers = tuple(k for k, i in enumerate(keep)
                                if farthest[i] >= IMPOSSIBLE_TRAVEL_KM + home_radius_km)
        self.card_testing_merchants = self._of_category(CARD_TESTING_CATEGORIES)
        self.transfer_merchants = self._of_category((TAKEOVER_CATEGORY,))
        self._refuse_missing_patterns()

    def _index_homes(self, customers: Sequence[Customer],
                     radius_km: float) -> tuple[list[tuple[int, ...]], list[float]]:
        """Per customer: the terminals within radius_km of home, and the farthest terminal's km."""
        lat = np.array([c.latitude for c in customers], dtype=np.float64)
        lon = np.array([c.longitude for c in customers], dtype=np.float64)
        near: list[tuple[int, ...]] = []
        farthest: list[float] = []
        for start in range(0, len(customers), 128):  # bounded memory: 128 x n_terminals at a time
            km = haversine_km(lat[start:start + 128, None], lon[start:start + 128, None],
                              self._lat[None, :], self._lon[None, :])
            near.extend(tuple(np.flatnonzero(row < radius_km).tolist()) for row in km)
            farthest.extend(km.max(axis=1).tolist())
        return near, farthest

    def _of_category(self, categories: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(self.terminals) if t.merchant_category in categories)

    def _refuse_missing_patterns(self) -> None:
        if not self.card_testing_merchants:
            raise ValueError(f"card testing needs a terminal in {CARD_TESTING_CATEGORIES}")
        if not self.transfer_merchants:
            raise ValueError(f"account takeover needs a {TAKEOVER_CATEGORY} terminal")
        if not self.travellers:
            raise ValueError(f"impossible travel needs a terminal {IMPOSSIBLE_TRAVEL_KM:g} km "
                             "from some customer's home")

    def terminals_beyond(self, origin: Terminal, km: float) -> IntArray:
        """Indices of the terminals at least km from origin."""
        distance = haversine_km(np.array([origin.latitude]), np.array([origin.longitude]),
                                self._lat, self._lon)
        return np.flatnonzero(distance >= km)


def load_world(directory: Path) -> World:
    """The world `make models` wrote: customers.parquet and terminals.parquet in directory."""
    paths = {name: directory / f"{name}.parquet" for name in ("customers", "terminals")}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no synthetic world at {', '.join(missing)}: run `make models`")
    customers = pd.read_parquet(paths["customers"])
    terminals = pd.read_parquet(paths["terminals"])
    return World(
        [Customer(r.customer_id, r.card_id, r.latitude, r.longitude, r.mean_amount, r.std_amount,
                  r.device_id, r.second_device_id if isinstance(r.second_device_id, str) else None,
                  r.home_ip, getattr(r, "mean_nb_tx_per_day", 1.0))
         for r in customers.itertuples(index=False)],
        [Terminal(r.terminal_id, r.latitude, r.longitude, r.merchant_id, r.merchant_category)
         for r in terminals.itertuples(index=False)],
    )


# --- The mix ---------------------------------------------------------------------------------

# Per episode: (mean fraudulent requests, genuine requests). Impossible travel's first
# transaction is the customer's own, genuine one.
_EPISODE_SIZES: dict[str, tuple[float, int]] = {
    CARD_TESTING: (sum(CARD_TESTING_PROBES) / 2, 0),
    IMPOSSIBLE_TRAVEL: (1.0, 1),
    ACCOUNT_TAKEOVER: (sum(TAKEOVER_TRANSFERS) / 2, 0),
    AMOUNT_SPIKE: (1.0, 0),
}


@dataclass(frozen=True)
class Mix:
    """The share of requests that are fraudulent, and how often each pattern is picked."""

    fraud_share: float = 0.03
    pattern_weights: Mapping[str, float] = field(
        default_factory=lambda: dict.fromkeys(FRAUD_PATTERNS, 1.0))

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraud_share <= 1.0:
            raise ValueError(f"fraud_share must be in [0, 1], got {self.fraud_share}")
        unknown = set(self.pattern_weights) - set(FRAUD_PATTERNS)
        if unknown or not sum(self.pattern_weights.values()) > 0:
            raise ValueError(f"pattern_weights needs positive weights of {FRAUD_PATTERNS}")

    def fraud_episode_probability(self) -> float:
        """The chance an episode is fraud, so that fraud_share of *requests* are: a fraud
        episode has several requests (a card-testing burst) and sometimes a genuine one too."""
        total = sum(self.pattern_weights.values())
        fraud = sum(w * _EPISODE_SIZES[p][0] for p, w in self.pattern_weights.items()) / total
        genuine = sum(w * _EPISODE_SIZES[p][1] for p, w in self.pattern_weights.items()) / total
        # share = q * fraud / (q * (fraud + genuine) + 1 - q), solved for q
        denominator = fraud - self.fraud_share * (fraud + genuine - 1)
        return 1.0 if denominator <= 0 else min(1.0, self.fraud_share / denominator)


# --- The generator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreRequest:
    pattern: str           # LEGITIMATE or one of FRAUD_PATTERNS
    body: dict[str, Any]   # the JSON body of POST /v1/score


@dataclass(frozen=True)
class _Planned:
    """A request of an episode before it is sent: id and timestamp are set when it goes out."""

    pattern: str
    fields: dict[str, Any]
    age: timedelta = timedelta(0)  # how long before sending it happened


def utc_now() -> datetime:
    return datetime.now(UTC)


class TrafficGenerator:
    """An endless stream of score requests for one simulated client; episodes come out whole."""

    def __init__(self, world: World, rng: random.Random, mix: Mix | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self._world = world
        self._rng = rng
        self._mix = mix or Mix()
        self._fraud_episode = self._mix.fraud_episode_probability()
        self._patterns = list(self._mix.pattern_weights)
        self._pattern_weights = list(self._mix.pattern_weights.values())
        self._clock = clock
        self._pending: deque[_Planned] = deque()
        self._episodes: dict[str, Callable[[], list[_Planned]]] = {
            CARD_TESTING: self._card_testing,
            IMPOSSIBLE_TRAVEL: self._impossible_travel,
            ACCOUNT_TAKEOVER: self._account_takeover,
            AMOUNT_SPIKE: self._amount_spike,
        }

    def __iter__(self) -> Iterator[ScoreRequest]:
        return self

    def __next__(self) -> ScoreRequest:
        if not self._pending:
            self._pending.extend(self._episode())
        planned = self._pending.popleft()
        body = {
            "transaction_id": f"lt-{self._rng.getrandbits(128):032x}",
            **planned.fields,
            "timestamp": (self._clock() - planned.age).isoformat(timespec="milliseconds"),
        }
        return ScoreRequest(planned.pattern, body)

    def _episode(self) -> list[_Planned]:
        if self._rng.random() >= self._fraud_episode:
            return [self._legitimate(self._customer())]
        pattern = self._rng.choices(self._patterns, weights=self._pattern_weights)[0]
        return self._episodes[pattern]()

    # --- customers, terminals, devices -----------------------------------------------------

    def _customer(self) -> int:
        """A customer index, busier customers more often (as many requests as transactions)."""
        w = self._world.cum_weights
        return bisect.bisect_right(w, self._rng.random() * w[-1])

    def _near_home(self, customer: int) -> Terminal:
        return self._world.terminals[self._rng.choice(self._world.near_home[customer])]

    def _one_of(self, terminals: tuple[int, ...]) -> Terminal:
        return self._world.terminals[self._rng.choice(terminals)]

    def _fraudster_access(self) -> tuple[str, str]:
        """A device and an IP this card never used: dev<N> past the world's, 198.18.0.0/15."""
        rng = self._rng
        ip = f"198.{18 + rng.randrange(2)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        return f"dev{FRAUDSTER_DEVICE_BASE + rng.randrange(1_000_000)}", ip

    def _fields(self, customer: Customer, terminal: Terminal, amount: float,
                device_id: str, ip_address: str) -> dict[str, Any]:
        category = terminal.merchant_category
        return {
            "user_id": customer.customer_id,
            "card_id": customer.card_id,
            "amount": max(0.01, round(amount, 2)),
            "currency": CURRENCY,
            "transaction_type": TRANSACTION_TYPES[category],
            "merchant_id": terminal.merchant_id,
            "merchant_category": category,
            "terminal_id": terminal.terminal_id,
            "latitude": round(terminal.latitude, 6),
            "longitude": round(terminal.longitude, 6),
            "ip_address": ip_address,
            "device_id": device_id,
        }

    def _own_fields(self, customer: Customer, terminal: Terminal, amount: float) -> dict[str, Any]:
        """The customer's own setting: one of their devices, their home IP."""
        device = customer.device_id
        if customer.second_device_id and self._rng.random() < 0.5:
            device = customer.second_device_id
        return self._fields(customer, terminal, amount, device, customer.home_ip)

    # --- episodes ---------------------------------------------------------------------------

    def _legitimate(self, index: int, terminal: Terminal | None = None,
                    age: timedelta = timedelta(0)) -> _Planned:
        customer = self._world.customers[index]
        amount = self._rng.gauss(customer.mean_amount, customer.std_amount)
        terminal = terminal or self._near_home(index)
        return _Planned(LEGITIMATE, self._own_fields(customer, terminal, amount), age)

    def _card_testing(self) -> list[_Planned]:
        customer = self._world.customers[self._customer()]
        merchant = self._one_of(self._world.card_testing_merchants)
        device, ip = self._fraudster_access()
        return [
            _Planned(CARD_TESTING, self._fields(
                customer, merchant, self._rng.uniform(0.5, SMALL_AMOUNT - 0.01), device, ip))
            for _ in range(self._rng.randint(*CARD_TESTING_PROBES))
        ]

    def _impossible_travel(self) -> list[_Planned]:
        index = self._rng.choice(self._world.travellers)
        here = self._near_home(index)
        gap = timedelta(minutes=self._rng.uniform(*TRAVEL_GAP_MINUTES))
        far = self._world.terminals_beyond(here, IMPOSSIBLE_TRAVEL_KM)
        there = self._world.terminals[int(far[self._rng.randrange(len(far))])]
        device, ip = self._fraudster_access()  # the cloned card is used by someone else
        cloned = self._fields(self._world.customers[index], there,
                              self._rng.uniform(50.0, 800.0), device, ip)
        return [self._legitimate(index, here, age=gap), _Planned(IMPOSSIBLE_TRAVEL, cloned)]

    def _account_takeover(self) -> list[_Planned]:
        customer = self._world.customers[self._customer()]
        device, ip = self._fraudster_access()
        return [
            _Planned(ACCOUNT_TAKEOVER, self._fields(
                customer, self._one_of(self._world.transfer_merchants),
                self._rng.uniform(*TAKEOVER_AMOUNT), device, ip))
            for _ in range(self._rng.randint(*TAKEOVER_TRANSFERS))
        ]

    def _amount_spike(self) -> list[_Planned]:
        index = self._customer()
        customer = self._world.customers[index]
        amount = customer.mean_amount * self._rng.uniform(*SPIKE_FACTOR)
        return [_Planned(AMOUNT_SPIKE, self._own_fields(customer, self._near_home(index), amount))]
