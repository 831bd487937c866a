"""FRAUD_FEATURES from the online state, for a whole batch at once: the offline definitions.

    matrix = batch_features(transactions, state_batch).matrix   # float32 [n, len(FRAUD_FEATURES)]
    vector = fraud_features(txn, state)                          # one hand-made FraudState

The same meanings as services/trainer/fraud_features.py (the catalog states them): windows are
[t - N, t); terminal and merchant risk look at the window ending TERMINAL_RISK_DELAY_DAYS ago and
count only reports known before t. Records are filtered here by time and by transaction, so the
current one never counts itself, even when it is already recorded (a redelivery, a replay, a
second writer); a log holds each transaction once (the append script sees to it).

Every window is a mask over all the batch's records and every count or sum one `bincount` by
owner: the cost is numpy's per record, not Python's per transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common.arrays import FloatArray
from services.common.times import epoch_ms
from services.designs.fraud.layout import (
    DELAY_MS,
    MS_DAY,
    MS_HOUR,
    TERMINAL_WINDOW_DAYS,
    WINDOW_30D_MS,
    digest,
)
from services.designs.fraud.state import (
    FraudState,
    KnownFraud,
    StateBatch,
    TransactionLike,
)
from services.designs.model_features import (
    FRAUD_FEATURE_NAMES,
    NIGHT_HOURS,
    SMALL_AMOUNT,
    TRANSACTION_TYPES,
)

FeatureVector = npt.NDArray[np.float32]
NO_PREVIOUS_SECONDS = 1e6  # the catalog's value of seconds_since_last_tx for a card's first one
EARTH_RADIUS_KM = 6371.0
MS_MINUTE = 60_000
# Card windows the rules test that the model does not have (services/fraud/facts.py names them).
VELOCITY_NAMES = ("card_nb_tx_1m", "card_amount_sum_1m", "card_amount_sum_24h", "card_nb_tx_30d",
                  "card_avg_amount_30d", "amount_to_card_avg_30d")


@dataclass(frozen=True)
class FeatureBatch:
    matrix: npt.NDArray[np.float32]   # [n, len(FRAUD_FEATURES)], catalog order: the model's input
    velocity: FloatArray              # [n, len(VELOCITY_NAMES)]: rule facts only


def haversine_km(lat1: FloatArray, lon1: FloatArray, lat2: FloatArray,
                 lon2: FloatArray) -> FloatArray:
    """Great-circle distance in km on a sphere of radius 6,371 km."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))),
                      dtype=np.float64)


class _Records:
    """One kind of log's records against their transactions: ages and the windows' masks."""

    def __init__(self, records: np.ndarray, owner: npt.NDArray[np.intp], n: int,
                 t: npt.NDArray[np.int64], tx: npt.NDArray[np.uint64]) -> None:
        self.records, self.owner, self.n = records, owner, n
        self.age = t[owner] - records["at_ms"]  # > 0: before the transaction
        self.before = (records["tx"] != tx[owner]) & (self.age > 0)
        self.month = self.before & (self.age <= WINDOW_30D_MS)

    def within(self, window_ms: int) -> npt.NDArray[np.bool_]:
        return np.asarray(self.month & (self.age <= window_ms), dtype=bool)

    def count(self, mask: npt.NDArray[np.bool_]) -> FloatArray:
        return np.asarray(np.bincount(self.owner, weights=mask, minlength=self.n),
                          dtype=np.float64)

    def total(self, mask: npt.NDArray[np.bool_], values: FloatArray) -> FloatArray:
        return np.asarray(np.bincount(self.owner, weights=np.where(mask, values, 0.0),
                                      minlength=self.n), dtype=np.float64)


def _mean(total: FloatArray, count: FloatArray, default: float) -> FloatArray:
    return np.asarray(np.divide(total, count, out=np.full(len(total), default), where=count > 0),
                      dtype=np.float64)


def _ratio(amount: FloatArray, mean: FloatArray) -> FloatArray:
    return np.divide(amount, mean, out=np.ones(len(amount)), where=mean > 0)


def _previous(card: _Records, t: npt.NDArray[np.int64], lat: FloatArray,
              lon: FloatArray) -> dict[str, FloatArray]:
    """Seconds, km and km/h from the card's latest transaction strictly before t (any age;
    among equal times the one recorded last)."""
    # Two linear passes, not a sort by (owner, time): the latest time per owner, then the last
    # recorded record at that time (a lexsort here was ~10 µs a transaction of a 500-batch).
    n, at_ms = card.n, card.records["at_ms"]
    rows = np.flatnonzero(card.before)
    latest = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(latest, card.owner[rows], at_ms[rows])
    rows = rows[at_ms[rows] == latest[card.owner[rows]]]
    last_row = np.full(n, -1, dtype=np.intp)
    np.maximum.at(last_row, card.owner[rows], rows)
    who = np.flatnonzero(last_row >= 0)
    chosen = last_row[who]
    has = np.zeros(n, dtype=bool)
    has[who] = True
    seconds = np.full(n, NO_PREVIOUS_SECONDS)
    seconds[who] = (t[who] - card.records["at_ms"][chosen]) / 1000.0
    km = np.zeros(n)
    km[who] = haversine_km(card.records["latitude"][chosen], card.records["longitude"][chosen],
                           lat[who], lon[who])
    speed = np.divide(km, seconds / 3600.0, out=np.zeros(n), where=has)
    return {"seconds_since_last_tx": seconds, "km_from_last_tx": km,
            "speed_kmh_from_last_tx": speed}


def _known_frauds(frauds: tuple[KnownFraud, ...], start: int, end: int, t: int) -> int:
    """Distinct transactions in [start, end) reported as fraud before t."""
    return len({f.transaction_id for f in frauds if start <= f.transaction_ms < end
                and f.known_ms < t})


def _share(frauds: FloatArray, count: FloatArray) -> FloatArray:
    # A report of a transaction the stream never saw must not push the share above 1.
    return np.divide(np.minimum(frauds, count), count, out=np.zeros(len(count)), where=count > 0)


def _fraud_counts(reports: Sequence[tuple[KnownFraud, ...]], t: npt.NDArray[np.int64],
                  days: Sequence[int]) -> FloatArray:
    """[n, len(days)]: reports known before t of transactions in the window of `days` days
    ending DELAY_MS before t. A Python loop, but only over transactions that have reports."""
    counts = np.zeros((len(reports), len(days)))
    for row, frauds in enumerate(reports):
        if frauds:
            end = int(t[row]) - DELAY_MS
            counts[row] = [_known_frauds(frauds, end - d * MS_DAY, end, int(t[row])) for d in days]
    return counts


def _other_cards(count: npt.NDArray[np.int64], this_card_seen: FloatArray,
                 t: npt.NDArray[np.int64]) -> FloatArray:
    with np.errstate(invalid="ignore"):  # NaN: this card was never seen there
        this_card = (this_card_seen >= t - WINDOW_30D_MS) & (this_card_seen < t)
    return np.maximum(count - this_card, 0).astype(np.float64)


def batch_features(transactions: Sequence[TransactionLike], state: StateBatch) -> FeatureBatch:
    """The features of every transaction from its state, as of strictly before its time."""
    n = len(transactions)
    if len(state) != n:
        raise ValueError(f"{n} transactions but the state of {len(state)}")
    t = np.array([epoch_ms(x.timestamp) for x in transactions], dtype=np.int64)
    amount = np.array([float(x.amount) for x in transactions], dtype=np.float64)
    lat = np.array([float(x.latitude) for x in transactions], dtype=np.float64)
    lon = np.array([float(x.longitude) for x in transactions], dtype=np.float64)
    tx = np.array([digest(x.transaction_id) for x in transactions], dtype=np.uint64)
    device = np.array([digest(x.device_id) for x in transactions], dtype=np.uint64)
    ip = np.array([digest(str(x.ip_address)) for x in transactions], dtype=np.uint64)
    columns: dict[str, FloatArray] = {"tx_amount": amount}

    local = [x.timestamp for x in transactions]  # its own offset is the local time
    columns["tx_during_weekend"] = np.array([float(d.weekday() >= 5) for d in local])
    columns["tx_during_night"] = np.array([float(NIGHT_HOURS[0] <= d.hour < NIGHT_HOURS[1])
                                           for d in local])
    kinds = [x.transaction_type for x in transactions]
    for kind in TRANSACTION_TYPES:
        columns[f"tx_type_{kind}"] = np.array([float(k == kind) for k in kinds])

    customer = _Records(state.customer, state.customer_owner, n, t, tx)
    for days in (1, 7, 30):
        window = customer.within(days * MS_DAY)
        count = customer.count(window)
        columns[f"customer_nb_tx_{days}d"] = count
        columns[f"customer_avg_amount_{days}d"] = _mean(
            customer.total(window, customer.records["amount"]), count, 0.0)

    terminal_frauds = _fraud_counts(state.terminal_frauds, t, TERMINAL_WINDOW_DAYS)
    for j, days in enumerate(TERMINAL_WINDOW_DAYS):
        count = state.terminal_counts[:, j].astype(np.float64)
        columns[f"terminal_nb_tx_{days}d"] = count
        columns[f"terminal_risk_{days}d"] = _share(terminal_frauds[:, j], count)
    merchant_frauds = _fraud_counts(state.merchant_frauds, t, (30,))[:, 0]
    columns["merchant_risk_30d"] = _share(merchant_frauds,
                                          state.merchant_count_30d.astype(np.float64))

    card = _Records(state.card, state.card_owner, n, t, tx)
    amounts = card.records["amount"]
    hour = card.within(MS_HOUR)
    columns["card_nb_tx_1h"] = card.count(hour)
    columns["card_amount_sum_1h"] = card.total(hour, amounts)
    columns["card_nb_small_tx_1h"] = card.count(hour & (amounts < SMALL_AMOUNT))
    columns["card_nb_tx_24h"] = card.count(card.within(MS_DAY))
    columns["amount_to_customer_avg_30d"] = _ratio(amount, columns["customer_avg_amount_30d"])
    columns.update(_previous(card, t, lat, lon))
    columns["is_new_device"] = (card.count(card.month & (card.records["device"]
                                                          == device[card.owner])) == 0) * 1.0
    columns["is_new_ip"] = (card.count(card.month & (card.records["ip"] == ip[card.owner]))
                            == 0) * 1.0
    columns["device_nb_cards_30d"] = _other_cards(state.device_cards_30d,
                                                  state.device_card_last_seen_ms, t)
    columns["ip_nb_cards_30d"] = _other_cards(state.ip_cards_30d, state.ip_card_last_seen_ms, t)

    minute = card.within(MS_MINUTE)
    month_count = card.count(card.month)
    month_mean = _mean(card.total(card.month, amounts), month_count, 0.0)
    velocity = np.stack([card.count(minute), card.total(minute, amounts),
                         card.total(card.within(MS_DAY), amounts), month_count, month_mean,
                         _ratio(amount, month_mean)], axis=1) if n else np.zeros((0, 6))

    matrix = np.empty((n, len(FRAUD_FEATURE_NAMES)), dtype=np.float32)
    for j, name in enumerate(FRAUD_FEATURE_NAMES):
        matrix[:, j] = columns.pop(name)
    if columns:
        raise AssertionError(f"online features the catalog lacks: {sorted(columns)}")
    return FeatureBatch(matrix, velocity)


def fraud_features(txn: TransactionLike, state: FraudState) -> FeatureVector:
    """float32 [len(FRAUD_FEATURES)] in catalog order, from a hand-made state."""
    return np.asarray(batch_features([txn], StateBatch.of([state])).matrix[0], dtype=np.float32)
