"""Offline fraud features: the catalog's FRAUD_FEATURES for every transaction, point in time.

Each row sees only what a real-time service could have known when the transaction arrived. How the
catalog's meanings are read here (streaming and serving implement the same definitions online):

- Time is `tx_datetime`, naive local time, at millisecond precision. "The last N days / hours" is
  the half-open window [t - N, t): a transaction at exactly t - N counts, the current transaction
  and any other at the same instant t do not (pandas' `closed='left'`). A day is 24 hours.
- Customer windows group by `customer_id`, card windows by `card_id`.
- Terminal and merchant risk use the window [t - 7 d - N, t - 7 d) (7 = TERMINAL_RISK_DELAY_DAYS)
  and take every `is_fraud` label in it as known: the handbook's assumption that a week after a
  transaction its label is in. Counts of that window are all its transactions, fraud or not.
- "Previous transaction" is the card's latest one strictly before t; seconds, km (haversine on a
  6,371 km sphere between the two transactions' coordinates) and km/h follow from it.
- A device or IP is new to a card when the card has no transaction with it in [t - 30 d, t).
  The number of distinct other cards on a device (or IP) counts the cards, other than this one,
  with at least one transaction on it in [t - 30 d, t).
- Night is a local hour in [NIGHT_HOURS[0], NIGHT_HOURS[1]); the weekend is Saturday and Sunday.

Everything is vectorised: a window count or sum is two binary searches into the transactions
sorted by (group, time) and a cumulative sum, so the whole matrix costs O(n log n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from services.common.arrays import Float32Array, FloatArray, IntArray
from services.designs.fraud.features import NO_PREVIOUS_SECONDS, haversine_km
from services.designs.model_features import (
    FRAUD_FEATURE_NAMES,
    HANDBOOK_FEATURE_NAMES,
    NIGHT_HOURS,
    SMALL_AMOUNT,
    TERMINAL_RISK_DELAY_DAYS,
    TRANSACTION_TYPES,
)

MS_HOUR = 3_600_000
MS_DAY = 24 * MS_HOUR
DELAY = TERMINAL_RISK_DELAY_DAYS * MS_DAY
_LOOKBACK = 40 * MS_DAY  # > the longest reach back (30 + 7 days): shifted times never go negative
_LOOKAHEAD = 31 * MS_DAY  # > the longest coverage forward (30 days) of a device/IP use


@dataclass(frozen=True)
class _Timeline:
    """Events of many groups sorted by (group, time): window counts and sums by binary search.

    Every query is made in sorted order (an event's own key minus a constant stays sorted), which
    lets numpy's searchsorted reuse the previous answer: several times faster than random order.
    """

    keys: IntArray      # group * span + time, ascending
    order: IntArray     # row of each sorted position
    span: int

    @classmethod
    def of(cls, groups: IntArray, times: IntArray, span: int) -> _Timeline:
        if (int(groups.max(initial=0)) + 1) * span >= 2**62:
            raise ValueError("too many groups over too long a period for 64-bit keys")
        order = np.lexsort((times, groups))
        return cls((groups * span + times)[order], order, span)

    def back(self, delta: int) -> IntArray:
        """Per sorted event: position of the group's first event at or after (time - delta)."""
        return np.searchsorted(self.keys, self.keys - delta, side="left").astype(np.int64)

    def group_start(self) -> IntArray:
        """Per sorted event: position of its group's first event."""
        groups_first_key = self.keys - self.keys % self.span
        return np.searchsorted(self.keys, groups_first_key, side="left").astype(np.int64)

    def to_rows(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Values in sorted order, put back in the frame's row order."""
        out = np.empty_like(values)
        out[self.order] = values
        return out

    def count(self, start_back: int, end_back: int) -> IntArray:
        """Per row: the group's events with time in [t - start_back, t - end_back)."""
        return self.to_rows(self.back(end_back) - self.back(start_back))

    def total(self, values: FloatArray, start_back: int, end_back: int) -> FloatArray:
        """Per row: the sum of `values` (given in row order) over the same window as `count`."""
        cumulative = np.concatenate([[0.0], np.cumsum(values[self.order])])
        return self.to_rows(cumulative[self.back(end_back)] - cumulative[self.back(start_back)])


@dataclass(frozen=True)
class _Frame:
    """The columns features need, as arrays: times shifted so that every window start is >= 0."""

    times: IntArray
    amount: FloatArray
    is_fraud: FloatArray
    span: int

    @classmethod
    def of(cls, tx: pd.DataFrame) -> _Frame:
        ms = tx["tx_datetime"].to_numpy().astype("datetime64[ms]").astype(np.int64)
        times = ms - (ms.min(initial=0) if len(ms) else 0) + _LOOKBACK
        span = int(times.max(initial=0)) + _LOOKAHEAD + 1
        return cls(times, tx["amount"].to_numpy(np.float64),
                   tx["is_fraud"].to_numpy(np.float64), span)

    def timeline(self, groups: IntArray) -> _Timeline:
        return _Timeline.of(groups, self.times, self.span)


def _codes(*columns: pd.Series) -> IntArray:
    """Dense integer codes of a column, or of the combination of several."""
    codes = np.asarray(pd.factorize(columns[0])[0], dtype=np.int64)
    for column in columns[1:]:
        more = np.asarray(pd.factorize(column)[0], dtype=np.int64)
        combined = codes * (int(more.max(initial=0)) + 1) + more
        codes = np.asarray(pd.factorize(combined)[0], dtype=np.int64)
    return codes


def _mean_or(default: float, total: FloatArray, count: IntArray) -> FloatArray:
    return np.asarray(np.divide(total, count, out=np.full(len(total), default), where=count > 0))


def _calendar(tx: pd.DataFrame) -> list[FloatArray]:
    when = pd.DatetimeIndex(tx["tx_datetime"])
    weekend = (when.dayofweek >= 5).astype(np.float64)
    night = ((when.hour >= NIGHT_HOURS[0]) & (when.hour < NIGHT_HOURS[1])).astype(np.float64)
    return [np.asarray(weekend), np.asarray(night)]


def _customer_windows(frame: _Frame, customer: IntArray) -> list[FloatArray]:
    """For 1, 7 and 30 days: the customer's transactions before t and their mean amount."""
    line = frame.timeline(customer)
    columns: list[FloatArray] = []
    for days in (1, 7, 30):
        count = line.count(days * MS_DAY, 0)
        total = line.total(frame.amount, days * MS_DAY, 0)
        columns += [count.astype(np.float64), _mean_or(0.0, total, count)]
    return columns


def _delayed_risk(frame: _Frame, groups: IntArray, days: int) -> tuple[FloatArray, FloatArray]:
    """(transactions, share of fraud) of the group in the N days ending the label delay ago."""
    line = frame.timeline(groups)
    count = line.count(DELAY + days * MS_DAY, DELAY)
    frauds = line.total(frame.is_fraud, DELAY + days * MS_DAY, DELAY)
    return count.astype(np.float64), _mean_or(0.0, frauds, count)


def handbook_columns(tx: pd.DataFrame, frame: _Frame | None = None) -> list[FloatArray]:
    """The 15 HANDBOOK_FEATURES, one array each, in catalog order."""
    frame = frame or _Frame.of(tx)
    columns = [frame.amount, *_calendar(tx), *_customer_windows(frame, _codes(tx["customer_id"]))]
    terminal = _codes(tx["terminal_id"])
    for days in (1, 7, 30):
        columns += list(_delayed_risk(frame, terminal, days))
    return columns


def _previous(frame: _Frame, line: _Timeline, tx: pd.DataFrame) -> list[FloatArray]:
    """Seconds, km and km/h from the card's previous transaction (strictly earlier)."""
    here = line.back(0)
    has_previous = line.to_rows(here > line.group_start())
    previous = line.to_rows(line.order[np.maximum(here - 1, 0)])
    seconds = (frame.times - frame.times[previous]) / 1000.0
    lat, lon = tx["latitude"].to_numpy(np.float64), tx["longitude"].to_numpy(np.float64)
    km = haversine_km(lat[previous], lon[previous], lat, lon)
    speed = np.divide(km, seconds / 3600.0, out=np.zeros(len(km)), where=seconds > 0)
    return [
        np.where(has_previous, seconds, NO_PREVIOUS_SECONDS),
        np.where(has_previous, km, 0.0),
        np.where(has_previous, speed, 0.0),
    ]


def _access(frame: _Frame, card_ids: pd.Series, where: pd.Series) -> list[FloatArray]:
    """(is new to the card, distinct other cards in 30 days) for a device or an IP column.

    Each (card, device) use at s covers the instants (s, s + 30 d]; the uses of one pair merge
    into disjoint runs (s_first, s_last + 30 d], so "cards seen on this device in [t - 30 d, t)"
    is the number of the device's runs covering t: runs started before t minus runs ended before t.
    """
    window = 30 * MS_DAY
    pair_line = frame.timeline(_codes(card_ids, where))
    is_new = pair_line.count(window, 0) == 0

    device = _codes(where)
    sorted_pair = pair_line.keys // pair_line.span
    sorted_time = frame.times[pair_line.order]
    first = np.ones(len(sorted_pair), dtype=bool)
    first[1:] = (sorted_pair[1:] != sorted_pair[:-1]) | (np.diff(sorted_time) > window)
    last = np.ones(len(sorted_pair), dtype=bool)
    last[:-1] = first[1:]
    run_device = device[pair_line.order][first]
    starts = _Timeline.of(run_device, sorted_time[first], frame.span)
    ends = _Timeline.of(run_device, sorted_time[last] + window, frame.span)

    queries = frame.timeline(device)  # rows in (device, time) order: sorted queries
    group_key = queries.keys - queries.keys % queries.span
    covering = (
        np.searchsorted(starts.keys, queries.keys) - np.searchsorted(starts.keys, group_key)
        - np.searchsorted(ends.keys, queries.keys) + np.searchsorted(ends.keys, group_key)
    ).astype(np.int64)
    other_cards = queries.to_rows(covering) - (~is_new).astype(np.int64)
    return [is_new.astype(np.float64), other_cards.astype(np.float64)]


def realtime_columns(
    tx: pd.DataFrame, frame: _Frame | None = None, customer_mean_30d: FloatArray | None = None
) -> list[FloatArray]:
    """The REALTIME_FEATURES, one array each, in catalog order."""
    frame = frame or _Frame.of(tx)
    if customer_mean_30d is None:
        customer_mean_30d = _customer_windows(frame, _codes(tx["customer_id"]))[5]
    line = frame.timeline(_codes(tx["card_id"]))
    small = (frame.amount < SMALL_AMOUNT).astype(np.float64)
    ratio = np.divide(frame.amount, customer_mean_30d, out=np.ones(len(tx)),
                      where=customer_mean_30d > 0)
    new_device, device_cards = _access(frame, tx["card_id"], tx["device_id"])
    new_ip, ip_cards = _access(frame, tx["card_id"], tx["ip_address"])
    kind = tx["transaction_type"].to_numpy()
    return [
        line.count(MS_HOUR, 0).astype(np.float64),
        line.total(frame.amount, MS_HOUR, 0),
        line.total(small, MS_HOUR, 0),
        line.count(MS_DAY, 0).astype(np.float64),
        ratio,
        *_previous(frame, line, tx),
        new_device, new_ip, device_cards, ip_cards,
        _delayed_risk(frame, _codes(tx["merchant_id"]), 30)[1],
        *((kind == t).astype(np.float64) for t in TRANSACTION_TYPES),
    ]


def _stack(columns: list[FloatArray], names: tuple[str, ...]) -> Float32Array:
    if len(columns) != len(names):
        raise AssertionError(f"built {len(columns)} feature columns for {len(names)} names")
    matrix = np.empty((len(columns[0]) if columns else 0, len(names)), dtype=np.float32)
    for j, column in enumerate(columns):
        matrix[:, j] = column
    return matrix


def handbook_feature_matrix(transactions: pd.DataFrame) -> Float32Array:
    """float32 [n, 15]: HANDBOOK_FEATURES in catalog order, rows in the frame's order."""
    if len(transactions) == 0:
        return np.zeros((0, len(HANDBOOK_FEATURE_NAMES)), dtype=np.float32)
    return _stack(handbook_columns(transactions), HANDBOOK_FEATURE_NAMES)


def fraud_feature_matrix(transactions: pd.DataFrame) -> Float32Array:
    """float32 [n, len(FRAUD_FEATURES)] in catalog order, rows in the frame's order.

    The frame needs tx_datetime, customer_id, card_id, terminal_id, merchant_id, amount,
    transaction_type, latitude, longitude, device_id, ip_address and is_fraud (the label is read
    only through the delayed terminal and merchant windows).
    """
    if len(transactions) == 0:
        return np.zeros((0, len(FRAUD_FEATURE_NAMES)), dtype=np.float32)
    frame = _Frame.of(transactions)
    handbook = handbook_columns(transactions, frame)
    mean_30d = handbook[HANDBOOK_FEATURE_NAMES.index("customer_avg_amount_30d")]
    columns = handbook + realtime_columns(transactions, frame, mean_30d)
    return _stack(columns, FRAUD_FEATURE_NAMES)
