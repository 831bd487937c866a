"""FRAUD_FEATURES of one transaction from the online state: the offline definitions, point in time.

The same meanings as services/trainer/fraud_features.py (the catalog states them): windows are
[t - N, t); terminal and merchant risk look at the window ending TERMINAL_RISK_DELAY_DAYS ago and
count only reports known before t. Every member list is filtered again here by time and by
transaction id, so the current transaction never counts itself, even when the stream processor
has already written it (the stream scorer's race, a redelivery, a replay).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from services.common.catalog import (
    FRAUD_FEATURE_NAMES,
    NIGHT_HOURS,
    SMALL_AMOUNT,
    TRANSACTION_TYPES,
)
from services.common.fraud_online.commands import TERMINAL_WINDOW_DAYS
from services.common.fraud_online.layout import (
    DELAY_MS,
    MS_DAY,
    MS_HOUR,
    WINDOW_30D_MS,
    epoch_ms,
)
from services.common.fraud_online.state import (
    FraudState,
    KnownFraud,
    Place,
    TransactionLike,
)

FeatureVector = npt.NDArray[np.float32]
NO_PREVIOUS_SECONDS = 1e6  # the catalog's value of seconds_since_last_tx for a card's first one
EARTH_RADIUS_KM = 6371.0
_NAMES = frozenset(FRAUD_FEATURE_NAMES)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance on a 6,371 km sphere, in the offline code's order of operations."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(max(a, 0.0), 1.0)))


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def _calendar(txn: TransactionLike) -> dict[str, float]:
    local = txn.timestamp  # its own offset is the local time, as the offline naive times are
    return {
        "tx_during_weekend": float(local.weekday() >= 5),
        "tx_during_night": float(NIGHT_HOURS[0] <= local.hour < NIGHT_HOURS[1]),
    }


def _customer(txn: TransactionLike, state: FraudState, t: int) -> dict[str, float]:
    spends = [s for s in state.customer_30d
              if s.transaction_id != txn.transaction_id and t - WINDOW_30D_MS <= s.at_ms < t]
    features: dict[str, float] = {}
    for days in (1, 7, 30):
        amounts = [s.amount for s in spends if s.at_ms >= t - days * MS_DAY]
        features[f"customer_nb_tx_{days}d"] = len(amounts)
        features[f"customer_avg_amount_{days}d"] = _mean(amounts, 0.0)
    return features


def _known_frauds(frauds: Iterable[KnownFraud], start: int, end: int, t: int) -> int:
    """Distinct transactions in [start, end) reported as fraud before t."""
    return len({f.transaction_id for f in frauds if start <= f.transaction_ms < end
                and f.known_ms < t})


def _share(frauds: int, count: int) -> float:
    # A report of a transaction the stream never saw must not push the share above 1.
    return min(frauds, count) / count if count > 0 else 0.0


def _terminal(state: FraudState, t: int) -> dict[str, float]:
    features: dict[str, float] = {}
    for days, count in zip(TERMINAL_WINDOW_DAYS, state.terminal_counts, strict=True):
        frauds = _known_frauds(state.terminal_frauds, t - DELAY_MS - days * MS_DAY,
                               t - DELAY_MS, t)
        features[f"terminal_nb_tx_{days}d"] = count
        features[f"terminal_risk_{days}d"] = _share(frauds, count)
    return features


def _previous(txn: TransactionLike, state: FraudState, t: int) -> dict[str, float]:
    """Seconds, km and km/h from the card's latest transaction strictly before t."""
    places = [Place(u.at_ms, u.transaction_id, u.latitude, u.longitude) for u in state.card_30d]
    earlier = [p for p in (*places, *state.card_latest)
               if p.transaction_id != txn.transaction_id and p.at_ms < t]
    if not earlier:
        return {"seconds_since_last_tx": NO_PREVIOUS_SECONDS, "km_from_last_tx": 0.0,
                "speed_kmh_from_last_tx": 0.0}
    last = max(earlier, key=lambda p: (p.at_ms, p.transaction_id))
    seconds = (t - last.at_ms) / 1000.0
    km = haversine_km(last.latitude, last.longitude, txn.latitude, txn.longitude)
    return {"seconds_since_last_tx": seconds, "km_from_last_tx": km,
            "speed_kmh_from_last_tx": km / (seconds / 3600.0)}


def _other_cards(cards_in_window: int, this_card_last_seen: int | None, t: int) -> float:
    this_card = this_card_last_seen is not None and t - WINDOW_30D_MS <= this_card_last_seen < t
    return float(max(cards_in_window - this_card, 0))


def _card(txn: TransactionLike, state: FraudState, t: int,
          customer_avg_30d: float) -> dict[str, float]:
    uses = [u for u in state.card_30d
            if u.transaction_id != txn.transaction_id and t - WINDOW_30D_MS <= u.at_ms < t]
    last_hour = [u.amount for u in uses if u.at_ms >= t - MS_HOUR]
    ip = str(txn.ip_address)
    return {
        "card_nb_tx_1h": len(last_hour),
        "card_amount_sum_1h": sum(last_hour),
        "card_nb_small_tx_1h": sum(1 for amount in last_hour if amount < SMALL_AMOUNT),
        "card_nb_tx_24h": sum(1 for u in uses if u.at_ms >= t - MS_DAY),
        "amount_to_customer_avg_30d": (txn.amount / customer_avg_30d if customer_avg_30d > 0
                                       else 1.0),
        **_previous(txn, state, t),
        "is_new_device": float(all(u.device_id != txn.device_id for u in uses)),
        "is_new_ip": float(all(u.ip_address != ip for u in uses)),
        "device_nb_cards_30d": _other_cards(state.device_cards_30d,
                                            state.device_card_last_seen_ms, t),
        "ip_nb_cards_30d": _other_cards(state.ip_cards_30d, state.ip_card_last_seen_ms, t),
    }


def fraud_features(txn: TransactionLike, state: FraudState) -> FeatureVector:
    """float32 [len(FRAUD_FEATURES)] in catalog order, from the state as of strictly before t."""
    t = epoch_ms(txn.timestamp)
    customer = _customer(txn, state, t)
    merchant_frauds = _known_frauds(state.merchant_frauds, t - DELAY_MS - WINDOW_30D_MS,
                                    t - DELAY_MS, t)
    features: dict[str, float] = {
        "tx_amount": txn.amount,
        **_calendar(txn),
        **customer,
        **_terminal(state, t),
        **_card(txn, state, t, customer["customer_avg_amount_30d"]),
        "merchant_risk_30d": _share(merchant_frauds, state.merchant_count_30d),
        **{f"tx_type_{kind}": float(txn.transaction_type == kind) for kind in TRANSACTION_TYPES},
    }
    if features.keys() != _NAMES:
        raise AssertionError(f"online features differ from the catalog: "
                             f"{sorted(features.keys() ^ _NAMES)}")
    return np.array([features[name] for name in FRAUD_FEATURE_NAMES], dtype=np.float32)
