"""Online fraud features from hand-made states: each family, point in time, catalog order."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from services.common.times import epoch_ms
from services.designs.fraud.features import NO_PREVIOUS_SECONDS, batch_features, fraud_features
from services.designs.fraud.state import CardUse, FraudState, KnownFraud, Spend, StateBatch
from services.designs.model_features import FRAUD_FEATURE_NAMES
from tests.support.fraud_state import NOW, Txn

T = epoch_ms(NOW)
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000




def use(ago_ms: int, tid: str = "tx1", amount: float = 10.0, device: str = "dev1",
        ip: str = "81.0.0.1", latitude: float = 50.0, longitude: float = 5.0) -> CardUse:
    return CardUse(T - ago_ms, tid, amount, latitude, longitude, device, ip)


def features(state: FraudState, txn: Txn | None = None) -> dict[str, float]:
    vector = fraud_features(txn or Txn(), state)
    return dict(zip(FRAUD_FEATURE_NAMES, vector.tolist(), strict=True))


def test_the_vector_is_float32_in_catalog_order() -> None:
    vector = fraud_features(Txn(amount=12.5, transaction_type="transfer"), FraudState())
    assert vector.dtype == np.float32
    assert vector.shape == (len(FRAUD_FEATURE_NAMES),)
    assert vector[FRAUD_FEATURE_NAMES.index("tx_amount")] == 12.5
    assert vector[FRAUD_FEATURE_NAMES.index("tx_type_transfer")] == 1.0
    assert vector[FRAUD_FEATURE_NAMES.index("tx_type_purchase")] == 0.0


def test_a_cards_first_transaction_gets_the_catalogs_defaults() -> None:
    got = features(FraudState())
    assert got["seconds_since_last_tx"] == 1e6
    assert (got["km_from_last_tx"], got["speed_kmh_from_last_tx"]) == (0.0, 0.0)
    assert (got["is_new_device"], got["is_new_ip"]) == (1.0, 1.0)
    assert got["amount_to_customer_avg_30d"] == 1.0
    assert got["customer_avg_amount_30d"] == 0.0
    assert got["terminal_risk_30d"] == 0.0


def test_velocity_counts_the_cards_last_hour_and_day_but_not_the_transaction_itself() -> None:
    state = FraudState(card=(
        use(HOUR, "tx1", 2.0),            # exactly an hour ago: inside [t - 1 h, t)
        use(10 * MINUTE, "tx2", 3.5),
        use(5 * HOUR, "tx3", 80.0),
        use(2 * DAY, "tx4", 20.0),        # outside the day
        use(0, "tx100", 999.0),           # the current one, already written by the stream
    ))
    got = features(state)
    assert got["card_nb_tx_1h"] == 2
    assert got["card_amount_sum_1h"] == 5.5
    assert got["card_nb_small_tx_1h"] == 2
    assert got["card_nb_tx_24h"] == 3


def test_customer_windows_include_the_window_start_and_exclude_the_same_instant() -> None:
    state = FraudState(customer=(
        Spend(T - DAY, "tx1", 10.0), Spend(T - 3 * DAY, "tx2", 30.0),
        Spend(T - 20 * DAY, "tx3", 50.0), Spend(T, "tx4", 1000.0)))
    got = features(state, Txn(amount=60.0))
    assert (got["customer_nb_tx_1d"], got["customer_avg_amount_1d"]) == (1, 10.0)
    assert (got["customer_nb_tx_7d"], got["customer_avg_amount_7d"]) == (2, 20.0)
    assert (got["customer_nb_tx_30d"], got["customer_avg_amount_30d"]) == (3, 30.0)
    assert got["amount_to_customer_avg_30d"] == 2.0


def test_a_card_500_km_away_ten_minutes_later_moved_at_3000_kmh() -> None:
    # 4.4966 degrees of latitude along a meridian is 500 km on a 6,371 km sphere
    state = FraudState(card=(use(10 * MINUTE, latitude=45.0), use(3 * HOUR, "tx0")))
    got = features(state, Txn(latitude=45.0 + 4.4966))
    assert got["seconds_since_last_tx"] == 600
    assert got["km_from_last_tx"] == pytest.approx(500, abs=0.1)
    assert got["speed_kmh_from_last_tx"] == pytest.approx(3000, abs=1)


def test_the_previous_transaction_may_be_older_than_every_window() -> None:
    state = FraudState(card=(use(45 * DAY, "tx1"), use(0, "tx100")))  # tx100: the current one
    assert features(state)["seconds_since_last_tx"] == 45 * 86_400


def test_the_previous_transaction_is_the_latest_and_among_equal_times_the_last_recorded() -> None:
    """Records in arrival order, not time order: the latest before the transaction counts, and of
    two at the same time the one recorded last (here 100 km north of the other)."""
    state = FraudState(card=(use(5 * MINUTE, "tx3", latitude=50.0 + 0.8993),
                             use(20 * MINUTE, "tx1"), use(5 * MINUTE, "tx2", latitude=50.0),
                             use(-MINUTE, "tx9"), use(60 * MINUTE, "tx0")))
    got = features(state, Txn(latitude=50.0 + 0.8993))
    assert got["seconds_since_last_tx"] == 300
    assert got["km_from_last_tx"] == pytest.approx(100, abs=0.1)


def test_in_a_batch_each_transaction_finds_its_own_cards_previous_one() -> None:
    states = [FraudState(card=()), FraudState(card=(use(2 * HOUR, "tx1"), use(HOUR, "tx2"))),
              FraudState(card=(use(3 * MINUTE, "tx5"),))]
    matrix = batch_features([Txn()] * 3, StateBatch.of(states)).matrix
    column = matrix[:, FRAUD_FEATURE_NAMES.index("seconds_since_last_tx")]
    assert column.tolist() == [NO_PREVIOUS_SECONDS, 3600, 180]


def test_a_device_the_card_has_not_used_in_30_days_is_new() -> None:
    state = FraudState(card=(use(2 * DAY, device="dev9", ip="81.0.0.1"),))
    got = features(state, Txn(device_id="dev1", ip_address="81.0.0.1"))
    assert (got["is_new_device"], got["is_new_ip"]) == (1.0, 0.0)
    assert features(state, Txn(device_id="dev9"))["is_new_device"] == 0.0


def test_the_transaction_itself_does_not_make_its_device_known() -> None:
    state = FraudState(card=(use(0, "tx100", device="dev1"),))
    assert features(state)["is_new_device"] == 1.0


def test_a_device_shared_by_many_cards_counts_the_other_cards_only() -> None:
    shared = FraudState(device_cards_30d=6, device_card_last_seen_ms=T - DAY,
                        ip_cards_30d=1, ip_card_last_seen_ms=T - 40 * DAY)
    got = features(shared)
    assert got["device_nb_cards_30d"] == 5  # this card is one of the six
    assert got["ip_nb_cards_30d"] == 1      # this card's last use is outside the window


def test_terminal_risk_ignores_frauds_inside_the_seven_day_delay() -> None:
    state = FraudState(
        terminal_counts=(2, 4, 10),
        terminal_frauds=(
            KnownFraud(T - 7 * DAY - HOUR, "tx1", T - 3 * DAY),     # in all three windows
            KnownFraud(T - 9 * DAY, "tx2", T - 4 * DAY),            # in 7 and 30 days
            KnownFraud(T - 2 * DAY, "tx3", T - DAY),                # inside the delay: unused
        ))
    got = features(state)
    assert (got["terminal_nb_tx_1d"], got["terminal_risk_1d"]) == (2, 0.5)
    assert (got["terminal_nb_tx_7d"], got["terminal_risk_7d"]) == (4, 0.5)
    assert (got["terminal_nb_tx_30d"], got["terminal_risk_30d"]) == pytest.approx((10, 0.2))


def test_a_report_known_only_after_the_decision_does_not_count() -> None:
    late = FraudState(merchant_count_30d=4, merchant_frauds=(
        KnownFraud(T - 8 * DAY, "tx1", T + MINUTE), KnownFraud(T - 9 * DAY, "tx2", T)))
    assert features(late)["merchant_risk_30d"] == 0.0


def test_a_transaction_reported_twice_counts_once_and_risk_never_exceeds_one() -> None:
    twice = FraudState(terminal_counts=(1, 1, 1), terminal_frauds=(
        KnownFraud(T - 7 * DAY - HOUR, "tx1", T - 6 * DAY),
        KnownFraud(T - 7 * DAY - HOUR, "tx1", T - 5 * DAY),
        KnownFraud(T - 7 * DAY - 2 * HOUR, "tx9", T - 5 * DAY)))  # never seen by the stream
    assert features(twice)["terminal_risk_1d"] == 1.0


def test_weekend_and_night_follow_the_timestamps_own_local_time() -> None:
    # Sunday 01:30 in UTC+2 is Saturday 23:30 UTC: both weekend, only the local time is night
    local = datetime(2018, 7, 8, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    got = features(FraudState(), replace(Txn(), timestamp=local))
    assert (got["tx_during_weekend"], got["tx_during_night"]) == (1.0, 1.0)
    got = features(FraudState(), Txn())
    assert (got["tx_during_weekend"], got["tx_during_night"]) == (0.0, 0.0)
