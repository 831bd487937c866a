"""Offline fraud features: catalog shape and order, point-in-time windows, each feature family."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from services.designs.fraud.features import haversine_km
from services.designs.model_features import (
    FRAUD_FEATURE_NAMES,
    HANDBOOK_FEATURE_NAMES,
    SMALL_AMOUNT,
    TRANSACTION_TYPES,
)
from services.trainer.fraud_features import fraud_feature_matrix, handbook_feature_matrix
from services.trainer.worlds.transactions import TransactionWorldConfig, generate_transactions

START = pd.Timestamp("2018-07-02")  # a Monday


def transactions(*rows: dict[str, Any]) -> pd.DataFrame:
    """A frame of hand-made transactions; `at` is hours after START, other columns default."""
    defaults = {"customer_id": "cust1", "card_id": "card1", "terminal_id": "term1",
                "merchant_id": "m1", "amount": 10.0, "transaction_type": "purchase",
                "latitude": 50.0, "longitude": 5.0, "device_id": "dev1",
                "ip_address": "81.0.0.1", "is_fraud": 0}
    frame = pd.DataFrame([defaults | row for row in rows])
    frame["tx_datetime"] = START + pd.to_timedelta(frame.pop("at"), unit="h")
    return frame


def feature(tx: pd.DataFrame, name: str) -> npt.NDArray[np.float32]:
    return fraud_feature_matrix(tx)[:, FRAUD_FEATURE_NAMES.index(name)]


def test_matrix_follows_the_catalog_and_has_no_missing_values() -> None:
    world = generate_transactions(TransactionWorldConfig(n_customers=60, n_terminals=120,
                                                         n_days=20, seed=1))
    matrix = fraud_feature_matrix(world.transactions)
    assert matrix.shape == (len(world.transactions), len(FRAUD_FEATURE_NAMES))
    assert matrix.dtype == np.float32
    assert np.isfinite(matrix).all()
    assert FRAUD_FEATURE_NAMES[: len(HANDBOOK_FEATURE_NAMES)] == HANDBOOK_FEATURE_NAMES
    np.testing.assert_array_equal(handbook_feature_matrix(world.transactions),
                                  matrix[:, : len(HANDBOOK_FEATURE_NAMES)])


def test_an_empty_frame_gives_an_empty_matrix() -> None:
    empty = transactions({"at": 0}).iloc[:0]
    assert fraud_feature_matrix(empty).shape == (0, len(FRAUD_FEATURE_NAMES))


def test_customer_windows_exclude_the_current_transaction_and_include_the_window_start() -> None:
    tx = transactions({"at": 0, "amount": 10.0}, {"at": 12, "amount": 30.0},
                      {"at": 24, "amount": 99.0})
    assert feature(tx, "customer_nb_tx_1d").tolist() == [0, 1, 2]
    assert feature(tx, "customer_avg_amount_1d").tolist() == [0, 10, 20]
    assert feature(tx, "customer_avg_amount_30d").tolist() == [0, 10, 20]


def test_transactions_at_the_same_instant_do_not_see_each_other() -> None:
    tx = transactions({"at": 5}, {"at": 5})
    assert feature(tx, "card_nb_tx_1h").tolist() == [0, 0]
    assert feature(tx, "seconds_since_last_tx").tolist() == [1e6, 1e6]


def test_a_card_500_km_away_ten_minutes_later_moved_at_3000_kmh() -> None:
    # 4.4966 degrees of latitude along a meridian is 500 km on a 6,371 km sphere
    tx = transactions({"at": 0, "latitude": 45.0}, {"at": 1 / 6, "latitude": 45.0 + 4.4966})
    assert feature(tx, "seconds_since_last_tx").tolist() == [1e6, pytest.approx(600)]
    assert feature(tx, "km_from_last_tx").tolist() == [0, pytest.approx(500, abs=0.1)]
    assert feature(tx, "speed_kmh_from_last_tx").tolist() == [0, pytest.approx(3000, abs=1)]


def test_haversine_matches_a_known_distance() -> None:
    paris_to_brussels = haversine_km(np.array([48.8566]), np.array([2.3522]),
                                     np.array([50.8503]), np.array([4.3517]))
    assert paris_to_brussels[0] == pytest.approx(264, abs=2)


def test_terminal_risk_ignores_frauds_inside_the_delay_period() -> None:
    tx = transactions(
        {"at": 0, "is_fraud": 1, "card_id": "card1"},
        {"at": 5 * 24, "is_fraud": 1, "card_id": "card2"},
        {"at": 3 * 24, "card_id": "card3"},             # both frauds are younger than 7 days
        {"at": 7 * 24 + 12, "card_id": "card4"},        # day 0 is in the day ending 7 days ago
        {"at": 12 * 24 + 12, "card_id": "card5"},       # day 5 is, day 0 left the 1-day window
    )
    assert feature(tx, "terminal_nb_tx_1d").tolist() == [0, 0, 0, 1, 1]
    assert feature(tx, "terminal_risk_1d").tolist() == [0, 0, 0, 1, 1]
    assert feature(tx, "terminal_nb_tx_7d")[4] == 3  # days 0, 3 and 5 (the 7 d ending day 5.5)
    assert feature(tx, "terminal_risk_7d")[4] == pytest.approx(2 / 3)
    assert feature(tx, "merchant_risk_30d").tolist() == pytest.approx([0, 0, 0, 1, 2 / 3])


def test_card_velocity_counts_the_last_hour_and_its_small_amounts() -> None:
    # three probes, a cash-out, then a small amount two hours later: its hour is empty
    tx = transactions(*({"at": m / 60, "amount": 1.0} for m in (0, 5, 10)),
                      {"at": 20 / 60, "amount": 800.0}, {"at": 2, "amount": SMALL_AMOUNT - 1})
    assert feature(tx, "card_nb_tx_1h").tolist() == [0, 1, 2, 3, 0]
    assert feature(tx, "card_nb_small_tx_1h").tolist() == [0, 1, 2, 3, 0]
    assert feature(tx, "card_amount_sum_1h").tolist() == [0, 1, 2, 3, 0]
    assert feature(tx, "card_nb_tx_24h").tolist() == [0, 1, 2, 3, 4]


def test_amount_to_customer_mean_is_one_without_history() -> None:
    tx = transactions({"at": 0, "amount": 20.0}, {"at": 1, "amount": 100.0})
    assert feature(tx, "amount_to_customer_avg_30d").tolist() == [1, 5]


def test_a_device_or_ip_is_new_until_the_card_used_it_in_the_last_30_days() -> None:
    tx = transactions({"at": 0}, {"at": 24 * 10}, {"at": 24 * 41},
                      {"at": 24 * 42, "device_id": "dev2", "ip_address": "81.0.0.2"})
    assert feature(tx, "is_new_device").tolist() == [1, 0, 1, 1]
    assert feature(tx, "is_new_ip").tolist() == [1, 0, 1, 1]


def test_device_counts_the_other_cards_seen_on_it_in_30_days() -> None:
    tx = transactions(
        {"at": 24 * 0, "card_id": "cardA"}, {"at": 24 * 1, "card_id": "cardB"},
        {"at": 24 * 2, "card_id": "cardC"}, {"at": 24 * 3, "card_id": "cardA"},
        {"at": 24 * 31, "card_id": "cardD"},  # window [day 1, day 31): B, C and A (day 3)
        {"at": 24 * 40, "card_id": "cardB"},  # window [day 10, day 40): D only
    )
    assert feature(tx, "device_nb_cards_30d").tolist() == [0, 1, 2, 2, 3, 1]
    assert feature(tx, "ip_nb_cards_30d").tolist() == [0, 1, 2, 2, 3, 1]


def test_calendar_flags_night_and_weekend() -> None:
    tx = transactions({"at": 5.99}, {"at": 6.0}, {"at": 24 * 5 + 12})  # Mon 05:59, 06:00, Sat
    assert feature(tx, "tx_during_night").tolist() == [1, 0, 0]
    assert feature(tx, "tx_during_weekend").tolist() == [0, 0, 1]


def test_transaction_type_is_one_hot() -> None:
    tx = transactions(*({"at": i, "transaction_type": t} for i, t in enumerate(TRANSACTION_TYPES)))
    names = [f"tx_type_{t}" for t in TRANSACTION_TYPES]
    matrix = fraud_feature_matrix(tx)[:, [FRAUD_FEATURE_NAMES.index(n) for n in names]]
    np.testing.assert_array_equal(matrix, np.eye(len(TRANSACTION_TYPES)))


def test_rows_follow_the_input_order() -> None:
    world = generate_transactions(TransactionWorldConfig(n_customers=40, n_terminals=80,
                                                         n_days=15, seed=2))
    shuffled = world.transactions.sample(frac=1.0, random_state=0)
    np.testing.assert_array_equal(fraud_feature_matrix(shuffled),
                                  fraud_feature_matrix(world.transactions)[shuffled.index])


# --- A brute-force reference: each catalog definition as a literal scan over all rows ---------


def _reference(tx: pd.DataFrame) -> npt.NDArray[np.float64]:
    t = tx["tx_datetime"].to_numpy()
    amount, fraud = tx["amount"].to_numpy(), tx["is_fraud"].to_numpy()
    col = {c: pd.factorize(tx[c])[0] for c in ("customer_id", "card_id", "terminal_id",
                                                "merchant_id", "device_id", "ip_address")}
    day, hour = np.timedelta64(1, "D"), np.timedelta64(1, "h")
    delay = 7 * day
    lat, lon = tx["latitude"].to_numpy(), tx["longitude"].to_numpy()
    rows = []
    for i in range(len(tx)):
        def same(column: str, i: int = i) -> npt.NDArray[np.bool_]:
            return np.asarray(col[column] == col[column][i])

        def within(start: np.timedelta64, end: np.timedelta64, i: int = i) -> Any:
            return (t >= t[i] - start) & (t < t[i] - end)

        when = pd.Timestamp(t[i])
        row: list[float] = [amount[i], float(when.dayofweek >= 5), float(when.hour < 6)]
        for days in (1, 7, 30):
            m = same("customer_id") & within(days * day, 0 * day)
            row += [m.sum(), amount[m].mean() if m.any() else 0.0]
        for days in (1, 7, 30):
            m = same("terminal_id") & within(delay + days * day, delay)
            row += [m.sum(), fraud[m].mean() if m.any() else 0.0]
        card = same("card_id")
        hour_ago = card & within(hour, 0 * day)
        row += [hour_ago.sum(), amount[hour_ago].sum(), (amount[hour_ago] < SMALL_AMOUNT).sum(),
                (card & within(day, 0 * day)).sum()]
        mean_30d = row[8]
        row.append(amount[i] / mean_30d if mean_30d > 0 else 1.0)
        earlier = np.flatnonzero(card & (t < t[i]))
        if len(earlier):
            j = earlier[np.argmax(t[earlier])]
            seconds = (t[i] - t[j]) / np.timedelta64(1, "s")
            km = haversine_km(lat[[j]], lon[[j]], lat[[i]], lon[[i]])[0]
            row += [seconds, km, km / (seconds / 3600)]
        else:
            row += [1e6, 0.0, 0.0]
        month = within(30 * day, 0 * day)
        for column in ("device_id", "ip_address"):
            row.append(float(not (card & same(column) & month).any()))
        for column in ("device_id", "ip_address"):
            others = set(col["card_id"][same(column) & month]) - {col["card_id"][i]}
            row.append(len(others))
        m = same("merchant_id") & within(delay + 30 * day, delay)
        row.append(fraud[m].mean() if m.any() else 0.0)
        row += [float(tx["transaction_type"].iloc[i] == k) for k in TRANSACTION_TYPES]
        rows.append(row)
    return np.array(rows, dtype=np.float64)


def test_vectorised_features_match_a_brute_force_scan_of_a_small_world() -> None:
    config = TransactionWorldConfig(n_customers=30, n_terminals=150, n_days=45, seed=5,
                                    compromised_terminals_per_day=1,
                                    compromised_customers_per_day=1,
                                    card_testing_per_day=1, impossible_travel_per_day=1,
                                    account_takeover_per_day=1, fraudster_devices=3,
                                    fraudster_ips=3, shared_ip_pool=40)
    tx = generate_transactions(config).transactions
    fast, slow = fraud_feature_matrix(tx), _reference(tx)
    for j, name in enumerate(FRAUD_FEATURE_NAMES):
        np.testing.assert_allclose(fast[:, j], slow[:, j], rtol=1e-5, atol=1e-3, err_msg=name)
    # the small world exercises every family, not only its zeros
    for name in ("terminal_risk_30d", "device_nb_cards_30d", "ip_nb_cards_30d",
                 "card_nb_small_tx_1h", "merchant_risk_30d", "speed_kmh_from_last_tx",
                 *(f"tx_type_{t}" for t in TRANSACTION_TYPES)):
        assert fast[:, FRAUD_FEATURE_NAMES.index(name)].max() > 0, name
