"""The card-transaction world: the Fraud Detection Handbook's simulator plus a live service's view.

The base follows the simulator of Le Borgne et al., "Reproducible Machine Learning for Credit Card
Fraud Detection - Practical Handbook", chapter "Transaction data simulator":

- customers and terminals sit uniformly on a 100 x 100 grid; a customer uses the terminals
  strictly within radius 5 of home, picked uniformly;
- a customer's mean amount is U(5, 100), its std half the mean; mean transactions per day
  U(0, 4), the count of each day Poisson;
- a transaction's second of the day is int(N(43,200, 20,000)); as in the handbook, draws outside
  the day are dropped (not clipped), which is why a day has slightly fewer transactions than the
  Poisson means say;
- an amount is N(mean, std), a negative one redrawn as U(0, 2 x mean), rounded to cents;
- scenario 1: any amount > 220 is fraud; scenario 2: each day 2 terminals are compromised and
  all their transactions of the next 28 days are fraud; scenario 3: each day 3 customers are
  compromised and, for the next 14 days, a third of their transactions get amount x 5 and are
  fraud (a transaction picked by two overlapping compromises is multiplied twice, as there).

The extension adds the fields of a real-time request and three fraud patterns. Each pattern injects
*new* fraudulent transactions (from its own random stream), so the rows with `fraud_scenario <= 3`
are exactly the handbook's world and the two can be evaluated side by side:

- 4 card testing: a burst of 3-8 probes under SMALL_AMOUNT seconds apart at one digital
  merchant, then, half the time, a large cash-out within an hour;
- 5 impossible travel: a cloned card used 300+ km away 5-60 minutes after a genuine transaction,
  from a device the card never used;
- 6 account takeover: 1-4 large transfers or payments from the fraudster's device and IP.

Genuine customers use one or two own devices (a few households share one) and a home IP, now and
then a new device or a shared (mobile, wifi) IP. Fraudsters reuse a small pool of devices and IPs
across cards half the time (what device and IP network features catch) and come from a fresh
device and a shared IP otherwise.

The grid maps to a region about 1,000 km across (longitude 0..14 E, latitude 45..54 N), so the
handbook's radius 5 is about 50 km. Labels arrive late (`label_time`): a fraud is reported 1 to
TERMINAL_RISK_DELAY_DAYS days after the transaction (the handbook's week as the upper bound), and
a genuine transaction is taken as genuine once that delay has passed without a report. So every
label of a transaction older than the delay is in, which is exactly what the catalog's terminal and
merchant risk assume: features built offline from `is_fraud` and online from the label stream agree.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from services.common.arrays import FloatArray, IntArray
from services.designs.fraud.features import haversine_km
from services.designs.model_features import SMALL_AMOUNT, TERMINAL_RISK_DELAY_DAYS

SECONDS_PER_DAY = 86_400
GRID_SIZE = 100.0
TERMINAL_RADIUS = 5.0
LON_RANGE = (0.0, 14.0)
LAT_RANGE = (45.0, 54.0)
CURRENCY = "EUR"

SCENARIO_NAMES: dict[int, str] = {
    0: "genuine",
    1: "amount over 220 (handbook 1)",
    2: "compromised terminal (handbook 2)",
    3: "compromised customer, amount x5 (handbook 3)",
    4: "card testing",
    5: "impossible travel",
    6: "account takeover",
}

# Merchant categories with their share of merchants and the transaction type they produce.
MERCHANT_CATEGORIES: dict[str, tuple[float, str]] = {
    "grocery": (0.22, "purchase"),
    "restaurants": (0.16, "purchase"),
    "fuel": (0.10, "purchase"),
    "pharmacy": (0.06, "purchase"),
    "clothing": (0.08, "purchase"),
    "electronics": (0.06, "purchase"),
    "travel": (0.05, "purchase"),
    "atm": (0.10, "withdrawal"),
    "utilities": (0.05, "payment"),
    "digital_goods": (0.04, "payment"),
    "online_gaming": (0.03, "payment"),
    "money_transfer": (0.03, "transfer"),
    "jewelry": (0.02, "purchase"),
}
CARD_TESTING_CATEGORIES = ("digital_goods", "online_gaming")
CASH_OUT_CATEGORIES = ("electronics", "jewelry")
TAKEOVER_CATEGORIES = ("money_transfer", "online_gaming", "digital_goods")

TRANSACTION_COLUMNS = (
    "transaction_id", "tx_datetime", "customer_id", "card_id", "terminal_id", "merchant_id",
    "merchant_category", "amount", "currency", "transaction_type", "latitude", "longitude",
    "device_id", "ip_address", "is_fraud", "fraud_scenario", "label_time",
)


@dataclass(frozen=True)
class TransactionWorldConfig:
    """Size, calendar, seed and fraud knobs of a world (the fraud counts are per day, as there)."""

    n_customers: int = 5_000
    n_terminals: int = 10_000
    # 58 days = 30-day windows + the 7-day label delay of terminal risk as warm-up (37 days),
    # then the handbook's 7 train + 7 delay + 7 test days; the test week ends with the world.
    # The dev stack's world (trainer/pipeline.py) is 66 days: 8 more of warm-up in front.
    n_days: int = 58
    # Chosen so that the training week starts on 2018-07-25, the handbook's first training day.
    start_date: date = date(2018, 6, 18)
    seed: int = 0
    terminals_per_merchant: int = 5
    fraud_amount_threshold: float = 220.0
    compromised_terminals_per_day: int = 2
    terminal_compromise_days: int = 28
    compromised_customers_per_day: int = 3
    customer_compromise_days: int = 14
    card_testing_per_day: int = 3
    impossible_travel_per_day: int = 5
    account_takeover_per_day: int = 3
    other_device_rate: float = 0.01     # a genuine transaction from a device new to the card
    other_ip_rate: float = 0.15         # a genuine transaction from a shared (mobile, wifi) IP
    shared_ip_pool: int = 10_000
    fraudster_devices: int = 20
    fraudster_ips: int = 12
    fraudster_reuse_rate: float = 0.5  # else a fresh device / a shared-pool IP
    min_label_delay_days: float = 1.0
    # Longer delays would make the online terminal risk miss labels the offline one counts.
    max_label_delay_days: float = float(TERMINAL_RISK_DELAY_DAYS)

    @classmethod
    def ending_on_handbook_calendar(cls, n_days: int, **knobs: Any) -> TransactionWorldConfig:
        """A world of `n_days` that ends when the default one does (2018-08-15): longer worlds
        add warm-up in front, and the handbook's training, delay and test weeks keep their dates."""
        end = cls.start_date + timedelta(days=cls.n_days)
        return cls(n_days=n_days, start_date=end - timedelta(days=n_days), **knobs)

    def __post_init__(self) -> None:
        if self.n_customers < 1 or self.n_terminals < 1 or self.n_days < 1:
            raise ValueError("a world needs at least one customer, terminal and day")


@dataclass(frozen=True)
class TransactionWorld:
    """Customers, terminals (with their merchants) and the transactions, sorted by time."""

    config: TransactionWorldConfig
    customers: pd.DataFrame
    terminals: pd.DataFrame
    transactions: pd.DataFrame

    @property
    def handbook_transactions(self) -> pd.DataFrame:
        """The handbook's world alone: the rows the three extension patterns did not inject."""
        tx = self.transactions
        return tx[tx["fraud_scenario"] <= 3].reset_index(drop=True)


# --- Pure helpers ----------------------------------------------------------------------------


def grid_to_lat_lon(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Grid coordinates to degrees: x runs west to east, y south to north."""
    lon = LON_RANGE[0] + x / GRID_SIZE * (LON_RANGE[1] - LON_RANGE[0])
    lat = LAT_RANGE[0] + y / GRID_SIZE * (LAT_RANGE[1] - LAT_RANGE[0])
    return lat, lon


def _ids(prefix: str, numbers: npt.ArrayLike) -> npt.NDArray[np.object_]:
    return np.array([f"{prefix}{n}" for n in np.asarray(numbers).tolist()], dtype=object)


def _ips(numbers: IntArray, base: str) -> npt.NDArray[np.object_]:
    """Dotted quads: `base` is the first address of the block the numbers count from."""
    first = int.from_bytes(bytes(int(p) for p in base.split(".")), "big")
    values = (first + numbers).astype(np.int64)
    octets = [(values >> s) & 255 for s in (24, 16, 8, 0)]
    return np.array(
        [f"{a}.{b}.{c}.{d}" for a, b, c, d in zip(*(o.tolist() for o in octets), strict=True)],
        dtype=object,
    )


def _terminals_within_radius(
    customer_xy: FloatArray, terminal_xy: FloatArray
) -> tuple[IntArray, IntArray]:
    """Each customer's terminals within TERMINAL_RADIUS, as CSR (offsets, terminal indices)."""
    chunks: list[IntArray] = []
    counts: list[IntArray] = []
    for start in range(0, len(customer_xy), 256):  # bounded memory: 256 x n_terminals at a time
        block = customer_xy[start : start + 256]
        d2 = (block[:, :1] - terminal_xy[:, 0]) ** 2 + (block[:, 1:] - terminal_xy[:, 1]) ** 2
        rows, cols = np.nonzero(d2 < TERMINAL_RADIUS**2)
        chunks.append(cols.astype(np.int64))
        counts.append(np.bincount(rows, minlength=len(block)).astype(np.int64))
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    return offsets, np.concatenate(chunks)


def _pick(rng: np.random.Generator, pool: IntArray, size: int) -> IntArray:
    return rng.choice(pool, size=size) if size else np.zeros(0, dtype=np.int64)


# --- Profiles ---------------------------------------------------------------------------------


def _customer_profiles(cfg: TransactionWorldConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = cfg.n_customers
    xy = rng.uniform(0, GRID_SIZE, size=(n, 2))
    mean_amount = rng.uniform(5, 100, size=n)
    mean_nb_tx = rng.uniform(0, 4, size=n)
    lat, lon = grid_to_lat_lon(xy[:, 0], xy[:, 1])
    n_devices = 1 + (rng.random(n) < 0.5)
    first_device = np.concatenate([[0], np.cumsum(n_devices)[:-1]])
    second_device = np.where(n_devices == 2, first_device + 1, -1)
    # A few households share a tablet: the second device is another customer's first one.
    shares = (n_devices == 2) & (rng.random(n) < 0.03)
    second_device[shares] = first_device[rng.integers(0, n, size=int(shares.sum()))]
    home_ip = rng.choice(1 << 22, size=n, replace=False).astype(np.int64)
    return pd.DataFrame({
        "customer_id": _ids("cust", np.arange(n)),
        "card_id": _ids("card", np.arange(n)),
        "x": xy[:, 0], "y": xy[:, 1], "latitude": lat, "longitude": lon,
        "mean_amount": mean_amount, "std_amount": mean_amount / 2,
        "mean_nb_tx_per_day": mean_nb_tx,
        "device_id": _ids("dev", first_device),
        "second_device_id": pd.Series(_ids("dev", second_device)).where(second_device >= 0, None),
        "home_ip": _ips(home_ip, "81.0.0.0"),
        "n_terminals": np.zeros(n, dtype=np.int64),
    })


def _terminal_profiles(cfg: TransactionWorldConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = cfg.n_terminals
    xy = rng.uniform(0, GRID_SIZE, size=(n, 2))
    lat, lon = grid_to_lat_lon(xy[:, 0], xy[:, 1])
    n_merchants = max(1, n // cfg.terminals_per_merchant)
    names = list(MERCHANT_CATEGORIES)
    weights = np.array([MERCHANT_CATEGORIES[c][0] for c in names])
    merchant_category = rng.choice(len(names), size=n_merchants, p=weights / weights.sum())
    merchant = rng.integers(0, n_merchants, size=n)
    return pd.DataFrame({
        "terminal_id": _ids("term", np.arange(n)),
        "x": xy[:, 0], "y": xy[:, 1], "latitude": lat, "longitude": lon,
        "merchant_id": _ids("m", merchant),
        "merchant_category": np.array(names, dtype=object)[merchant_category[merchant]],
    })


# --- The handbook's transactions and frauds -------------------------------------------------


@dataclass
class _Columns:
    """Transactions as parallel arrays while they are built (indices into the profile tables)."""

    seconds: IntArray
    customer: IntArray
    terminal: IntArray
    amount: FloatArray
    scenario: IntArray
    device: IntArray    # device number; customers' devices first, then fraudsters', then fresh
    ip: npt.NDArray[np.object_]


def _handbook_transactions(
    cfg: TransactionWorldConfig,
    customers: pd.DataFrame,
    offsets: IntArray,
    terminal_index: IntArray,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """(seconds since start, customer, terminal, amount) of the genuine-behaviour transactions."""
    n_available = np.diff(offsets)
    counts = rng.poisson(customers["mean_nb_tx_per_day"].to_numpy()[:, None], (len(customers),
                                                                              cfg.n_days))
    counts[n_available == 0] = 0  # a customer with no terminal in reach never transacts
    customer = np.repeat(np.repeat(np.arange(len(customers)), cfg.n_days), counts.ravel())
    day = np.repeat(np.tile(np.arange(cfg.n_days), len(customers)), counts.ravel())
    second = rng.normal(SECONDS_PER_DAY / 2, 20_000, size=len(customer)).astype(np.int64)
    mean = customers["mean_amount"].to_numpy()[customer]
    amount = rng.normal(mean, mean / 2)
    amount = np.where(amount < 0, rng.uniform(0, 2 * mean), amount).round(2)
    pick = (rng.random(len(customer)) * n_available[customer]).astype(np.int64)
    terminal = terminal_index[offsets[customer] + pick]
    keep = (second > 0) & (second < SECONDS_PER_DAY)
    return (day * SECONDS_PER_DAY + second)[keep], customer[keep], terminal[keep], amount[keep]


def _handbook_frauds(
    cfg: TransactionWorldConfig,
    seconds: IntArray,
    customer: IntArray,
    terminal: IntArray,
    amount: FloatArray,
    rng: np.random.Generator,
) -> tuple[FloatArray, IntArray]:
    """(amount, scenario) after the three handbook scenarios, applied in its order: a later one
    overwrites an earlier one's code."""
    amount = amount.copy()
    scenario = np.where(amount > cfg.fraud_amount_threshold, 1, 0).astype(np.int64)

    day = seconds // SECONDS_PER_DAY
    # +1 where a compromise starts, -1 where it ends: a cumulative sum says who is compromised
    compromised = np.zeros((cfg.n_terminals, cfg.n_days + 1), dtype=np.int64)
    for d in range(cfg.n_days):
        hit = rng.choice(cfg.n_terminals, size=cfg.compromised_terminals_per_day, replace=False)
        compromised[hit, d] += 1
        compromised[hit, min(d + cfg.terminal_compromise_days, cfg.n_days)] -= 1
    active = np.cumsum(compromised, axis=1)[:, : cfg.n_days] > 0
    scenario[active[terminal, day]] = 2

    by_customer = np.lexsort((seconds, customer))
    starts = np.searchsorted(customer[by_customer], np.arange(cfg.n_customers + 1))
    for d in range(cfg.n_days):
        for c in rng.choice(cfg.n_customers, size=cfg.compromised_customers_per_day,
                            replace=False):
            rows = by_customer[starts[c] : starts[c + 1]]
            rows = rows[(day[rows] >= d) & (day[rows] < d + cfg.customer_compromise_days)]
            picked = rng.choice(rows, size=len(rows) // 3, replace=False)
            amount[picked] = (amount[picked] * 5).round(2)
            scenario[picked] = 3
    return amount, scenario


# --- Devices and IPs of genuine behaviour ---------------------------------------------------


def _genuine_access(
    cfg: TransactionWorldConfig,
    customers: pd.DataFrame,
    customer: IntArray,
    n_known_devices: int,
    rng: np.random.Generator,
) -> tuple[IntArray, npt.NDArray[np.object_]]:
    """Device numbers and IPs: mostly the customer's own, sometimes a new device or shared IP."""
    first = customers["device_id"].str.slice(3).astype(np.int64).to_numpy()
    second = customers["second_device_id"].fillna("dev-1").str.slice(3).astype(np.int64)
    second_np = second.to_numpy()
    use_second = (rng.random(len(customer)) < 0.5) & (second_np[customer] >= 0)
    device = np.where(use_second, second_np[customer], first[customer])
    other = rng.random(len(customer)) < cfg.other_device_rate
    device[other] = n_known_devices + np.arange(int(other.sum()))
    ip = customers["home_ip"].to_numpy()[customer].copy()
    shared = rng.random(len(customer)) < cfg.other_ip_rate
    ip[shared] = _ips(rng.integers(0, cfg.shared_ip_pool, size=int(shared.sum())), "100.64.0.0")
    return device, ip


# --- The three extension patterns -----------------------------------------------------------


def _terminals_of(terminals: pd.DataFrame, categories: tuple[str, ...]) -> IntArray:
    pool = np.flatnonzero(terminals["merchant_category"].isin(categories).to_numpy())
    return pool if len(pool) else np.arange(len(terminals), dtype=np.int64)


def _active_customers(cols: _Columns) -> IntArray:
    return np.unique(cols.customer)


@dataclass(frozen=True)
class _Fraudsters:
    """Where fraudsters connect from: a few devices and IPs they reuse across cards, or fresh ones
    (a reset phone, a VPN exit in the shared pool) that link them to nothing."""

    devices: IntArray
    ips: npt.NDArray[np.object_]
    reuse_rate: float
    shared_ip_pool: int

    def access(self, rng: np.random.Generator, first_fresh_device: int,
               n: int) -> tuple[IntArray, npt.NDArray[np.object_]]:
        """A device and an IP per event; fresh devices are numbered from first_fresh_device."""
        device = np.where(rng.random(n) < self.reuse_rate,
                          self.devices[rng.integers(0, len(self.devices), size=n)],
                          first_fresh_device + np.arange(n))
        ip = np.where(rng.random(n) < self.reuse_rate,
                      self.ips[rng.integers(0, len(self.ips), size=n)],
                      _ips(rng.integers(0, self.shared_ip_pool, size=n), "100.64.0.0"))
        return device.astype(np.int64), ip


@dataclass(frozen=True)
class _Bursts:
    """Fraud events that are bursts of transactions: which event each transaction belongs to."""

    event: IntArray      # per transaction: its event
    seconds: IntArray    # per transaction: when
    sizes: IntArray      # per event: how many transactions
    first: IntArray      # per event: the index of its first transaction

    @property
    def last_seconds(self) -> IntArray:
        """Per event: when its last transaction happened."""
        last: IntArray = self.seconds[self.first + self.sizes - 1]
        return last


def _bursts(cfg: TransactionWorldConfig, per_day: int, size_range: tuple[int, int],
            gap_range: tuple[int, int], rng: np.random.Generator) -> _Bursts:
    """`per_day` events a day, each starting at a random second of its day and made of
    size_range transactions (high exclusive) spaced by gap_range seconds."""
    n = per_day * cfg.n_days
    start = np.repeat(np.arange(cfg.n_days), per_day) * SECONDS_PER_DAY
    start = start + rng.integers(0, SECONDS_PER_DAY, size=n)
    sizes = rng.integers(*size_range, size=n)
    event = np.repeat(np.arange(n), sizes)
    gaps = rng.integers(*gap_range, size=len(event))
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    elapsed = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first], sizes)
    return _Bursts(event, start[event] + elapsed, sizes, first)


def _card_testing(
    cfg: TransactionWorldConfig, terminals: pd.DataFrame, cols: _Columns,
    fraudsters: _Fraudsters, first_fresh_device: int, rng: np.random.Generator,
) -> _Columns:
    n = cfg.card_testing_per_day * cfg.n_days
    customer = _pick(rng, _active_customers(cols), n)
    burst = _bursts(cfg, cfg.card_testing_per_day, (3, 9), (5, 90), rng)
    event, seconds = burst.event, burst.seconds
    amount = rng.uniform(0.5, SMALL_AMOUNT - 0.01, size=len(event)).round(2)
    terminal = _pick(rng, _terminals_of(terminals, CARD_TESTING_CATEGORIES), n)[event]
    device, ip = fraudsters.access(rng, first_fresh_device, n)
    cash_out = np.flatnonzero(rng.random(n) < 0.5)
    last_probe = burst.last_seconds
    return _concat(
        _Columns(seconds, customer[event], terminal, amount, np.full(len(event), 4), device[event],
                 ip[event]),
        _Columns(
            last_probe[cash_out] + rng.integers(300, 3600, size=len(cash_out)),
            customer[cash_out],
            _pick(rng, _terminals_of(terminals, CASH_OUT_CATEGORIES), len(cash_out)),
            rng.uniform(150, 1500, size=len(cash_out)).round(2),
            np.full(len(cash_out), 4), device[cash_out], ip[cash_out],
        ),
    )


def _impossible_travel(
    cfg: TransactionWorldConfig, terminals: pd.DataFrame, cols: _Columns,
    first_fresh_device: int, rng: np.random.Generator,
) -> _Columns:
    genuine = np.flatnonzero(cols.scenario == 0)
    n = min(cfg.impossible_travel_per_day * cfg.n_days, len(genuine))
    after = np.sort(rng.choice(genuine, size=n, replace=False))
    lat = terminals["latitude"].to_numpy()
    lon = terminals["longitude"].to_numpy()
    # 32 candidate terminals per event; the first one 300+ km away (else the farthest).
    candidates = rng.integers(0, len(terminals), size=(n, 32))
    origin = cols.terminal[after][:, None]
    km = haversine_km(lat[origin], lon[origin], lat[candidates], lon[candidates])
    far = km >= 300
    choice = np.where(far.any(axis=1), far.argmax(axis=1), km.argmax(axis=1))
    terminal = candidates[np.arange(n), choice]
    return _Columns(
        cols.seconds[after] + rng.integers(300, 3600, size=n),
        cols.customer[after], terminal, rng.uniform(50, 800, size=n).round(2),
        np.full(n, 5), first_fresh_device + np.arange(n),
        _ips(rng.integers(0, cfg.shared_ip_pool, size=n), "100.64.0.0"),
    )


def _account_takeover(
    cfg: TransactionWorldConfig, terminals: pd.DataFrame, cols: _Columns,
    fraudsters: _Fraudsters, first_fresh_device: int, rng: np.random.Generator,
) -> _Columns:
    n = cfg.account_takeover_per_day * cfg.n_days
    customer = _pick(rng, _active_customers(cols), n)
    burst = _bursts(cfg, cfg.account_takeover_per_day, (1, 5), (120, 1800), rng)
    event = burst.event
    device, ip = fraudsters.access(rng, first_fresh_device, n)
    return _Columns(
        burst.seconds, customer[event],
        _pick(rng, _terminals_of(terminals, TAKEOVER_CATEGORIES), len(event)),
        rng.uniform(200, 3000, size=len(event)).round(2), np.full(len(event), 6),
        device[event], ip[event],
    )


def _concat(*parts: _Columns) -> _Columns:
    return _Columns(*(
        np.concatenate([getattr(p, f) for p in parts])
        for f in ("seconds", "customer", "terminal", "amount", "scenario", "device", "ip")
    ))


# --- Assembly --------------------------------------------------------------------------------


def _label_delay_seconds(
    cfg: TransactionWorldConfig, is_fraud: npt.NDArray[np.bool_], rng: np.random.Generator
) -> IntArray:
    fraud_delay = rng.uniform(cfg.min_label_delay_days, cfg.max_label_delay_days, len(is_fraud))
    days = np.where(is_fraud, fraud_delay, float(TERMINAL_RISK_DELAY_DAYS))
    return (days * SECONDS_PER_DAY).astype(np.int64)


def _frame(
    cfg: TransactionWorldConfig, customers: pd.DataFrame, terminals: pd.DataFrame,
    cols: _Columns, rng: np.random.Generator,
) -> pd.DataFrame:
    order = np.lexsort((cols.scenario, cols.customer, cols.seconds))  # ties: a stable order
    seconds = cols.seconds[order]
    customer = cols.customer[order]
    terminal = cols.terminal[order]
    scenario = cols.scenario[order]
    category = terminals["merchant_category"].to_numpy()[terminal]
    type_of = {c: t for c, (_, t) in MERCHANT_CATEGORIES.items()}
    start = pd.Timestamp(cfg.start_date)
    tx_time = start + pd.to_timedelta(seconds, unit="s")
    is_fraud = scenario > 0
    label_delay = pd.to_timedelta(_label_delay_seconds(cfg, is_fraud, rng), unit="s")
    return pd.DataFrame({
        "transaction_id": _ids("tx", np.arange(len(order))),
        "tx_datetime": tx_time,
        "customer_id": customers["customer_id"].to_numpy()[customer],
        "card_id": customers["card_id"].to_numpy()[customer],
        "terminal_id": terminals["terminal_id"].to_numpy()[terminal],
        "merchant_id": terminals["merchant_id"].to_numpy()[terminal],
        "merchant_category": category,
        "amount": cols.amount[order],
        "currency": CURRENCY,
        "transaction_type": pd.Series(category).map(type_of).to_numpy(),
        "latitude": terminals["latitude"].to_numpy()[terminal],
        "longitude": terminals["longitude"].to_numpy()[terminal],
        "device_id": _ids("dev", cols.device[order]),
        "ip_address": cols.ip[order],
        "is_fraud": is_fraud.astype(np.int8),
        "fraud_scenario": scenario.astype(np.int8),
        "label_time": tx_time + label_delay,
    })


def generate_transactions(config: TransactionWorldConfig) -> TransactionWorld:
    """Generate a world; the same config (seed included) always gives the same frames."""
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(10)]
    customers = _customer_profiles(config, rngs[0])
    terminals = _terminal_profiles(config, rngs[1])
    offsets, terminal_index = _terminals_within_radius(
        customers[["x", "y"]].to_numpy(), terminals[["x", "y"]].to_numpy()
    )
    customers["n_terminals"] = np.diff(offsets)
    seconds, customer, terminal, amount = _handbook_transactions(
        config, customers, offsets, terminal_index, rngs[2]
    )
    n_known = int(customers["device_id"].str.slice(3).astype(np.int64).max()) + 1
    device, ip = _genuine_access(config, customers, customer, n_known, rngs[3])
    amount, scenario = _handbook_frauds(config, seconds, customer, terminal, amount, rngs[4])
    cols = _Columns(seconds, customer, terminal, amount, scenario, device, ip)

    # Device numbers: customers' own, genuine new ones, the fraudsters' pool, then one fresh
    # range per pattern (one number per event, used or not).
    pool_start = n_known + int((device >= n_known).sum())
    fraudsters = _Fraudsters(pool_start + np.arange(config.fraudster_devices),
                             _ips(np.arange(config.fraudster_ips), "203.0.113.10"),
                             config.fraudster_reuse_rate, config.shared_ip_pool)
    fresh = pool_start + config.fraudster_devices + config.n_days * np.cumsum([
        0, config.card_testing_per_day, config.impossible_travel_per_day])
    cols = _concat(
        cols,
        _card_testing(config, terminals, cols, fraudsters, int(fresh[0]), rngs[5]),
        _impossible_travel(config, terminals, cols, int(fresh[1]), rngs[6]),
        _account_takeover(config, terminals, cols, fraudsters, int(fresh[2]), rngs[7]),
    )
    in_world = cols.seconds < config.n_days * SECONDS_PER_DAY  # cash-outs past the last day
    cols = _Columns(*(getattr(cols, f)[in_world] for f in (
        "seconds", "customer", "terminal", "amount", "scenario", "device", "ip")))
    transactions = _frame(config, customers, terminals, cols, rngs[8])
    return TransactionWorld(config, customers, terminals, transactions)


# --- Storage ---------------------------------------------------------------------------------

_CONFIG_FILE = "config.json"


def save(world: TransactionWorld, directory: Path) -> None:
    """Write the world as parquet (one file per table) plus its config as JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    config = asdict(world.config) | {"start_date": world.config.start_date.isoformat()}
    (directory / _CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    for name in ("customers", "terminals", "transactions"):
        getattr(world, name).to_parquet(directory / f"{name}.parquet", index=False)


def load(directory: Path) -> TransactionWorld:
    """Read a world written by `save`."""
    raw = json.loads((directory / _CONFIG_FILE).read_text())
    config = TransactionWorldConfig(**(raw | {"start_date": date.fromisoformat(raw["start_date"])}))
    tables = {n: pd.read_parquet(directory / f"{n}.parquet")
              for n in ("customers", "terminals", "transactions")}
    return TransactionWorld(config, tables["customers"], tables["terminals"],
                            tables["transactions"])


def summary(world: TransactionWorld) -> dict[str, float]:
    """Headline counts: transactions, fraud rate, and frauds per scenario."""
    tx = world.transactions
    counts = tx["fraud_scenario"].value_counts()
    return {
        "transactions": float(len(tx)),
        "fraud_rate": float(tx["is_fraud"].mean()) if len(tx) else 0.0,
        "days": float(world.config.n_days),
        **{f"scenario_{s}": float(counts.get(s, 0)) for s in SCENARIO_NAMES if s},
    }


def prices_shifted(transactions: pd.DataFrame, factor: float,
                   since: pd.Timestamp | None = None) -> pd.DataFrame:
    """A drift scenario: every amount from `since` on (all of them by default) times `factor`, a
    price or currency change. Who is fraud does not change: the same transactions, the same
    labels, only what they cost, so a model trained before the change meets inputs it has not
    seen (make drift-fraud, benchmarks/fraud_drift_loop.py)."""
    if factor <= 0:
        raise ValueError(f"a price factor must be positive, got {factor}")
    changed = (np.ones(len(transactions), dtype=bool) if since is None
               else (transactions["tx_datetime"] >= since).to_numpy())
    amounts = transactions["amount"].to_numpy(np.float64).copy()
    amounts[changed] = np.round(amounts[changed] * factor, 2)
    return transactions.assign(amount=amounts)


def main(argv: list[str] | None = None) -> None:
    """CLI: generate a world and save it as parquet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path)
    parser.add_argument("--days", type=int, default=TransactionWorldConfig.n_days)
    parser.add_argument("--customers", type=int, default=TransactionWorldConfig.n_customers)
    parser.add_argument("--terminals", type=int, default=TransactionWorldConfig.n_terminals)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # Keep the training week's calendar: the world ends 21 days after 2018-07-25 either way.
    world = generate_transactions(TransactionWorldConfig.ending_on_handbook_calendar(
        args.days, n_customers=args.customers, n_terminals=args.terminals, seed=args.seed))
    save(world, args.out)
    print(json.dumps(summary(world), indent=2))  # noqa: T201  (a CLI prints its result)


if __name__ == "__main__":
    main()
