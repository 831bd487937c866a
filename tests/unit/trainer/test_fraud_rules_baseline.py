"""The baseline rule scorer and the design brief's rules + ML combination."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.trainer.fraud_rules_baseline import (
    BASELINE_RULES,
    DECLINE_AT,
    REVIEW_AT,
    combined_risk,
    rule_hits,
    rule_scores,
)


def features(**values: float) -> npt.NDArray[np.float32]:
    """One catalog row: a quiet genuine transaction, with the given features changed."""
    row = np.zeros((1, len(FRAUD_FEATURE_NAMES)), dtype=np.float32)
    row[0, FRAUD_FEATURE_NAMES.index("amount_to_customer_avg_30d")] = 1.0
    row[0, FRAUD_FEATURE_NAMES.index("tx_amount")] = 40.0
    for name, value in values.items():
        row[0, FRAUD_FEATURE_NAMES.index(name)] = value
    return row


def fired(row: npt.NDArray[np.float32]) -> set[str]:
    hits = rule_hits(row)[0]
    return {rule.name for rule, hit in zip(BASELINE_RULES, hits, strict=True) if hit}


def test_a_quiet_transaction_fires_no_rule() -> None:
    assert fired(features()) == set()
    assert rule_scores(rule_hits(features()))[0] == 0.0


def test_declines_when_the_card_is_used_two_cities_apart_within_minutes() -> None:
    row = features(km_from_last_tx=500, speed_kmh_from_last_tx=3000)
    assert fired(row) == {"impossible_travel"}
    assert rule_scores(rule_hits(row))[0] >= DECLINE_AT


def test_nearby_terminals_seconds_apart_are_not_impossible_travel() -> None:
    assert fired(features(km_from_last_tx=20, speed_kmh_from_last_tx=2400)) == set()


def test_a_burst_of_small_amounts_is_card_testing() -> None:
    assert "card_testing" in fired(features(card_nb_small_tx_1h=3, card_nb_tx_1h=3))


def test_a_new_device_and_ip_alone_stays_below_review() -> None:
    row = features(is_new_device=1, is_new_ip=1)
    assert fired(row) == {"new_device_and_ip"}
    assert rule_scores(rule_hits(row))[0] < REVIEW_AT


def test_rule_scores_are_capped_at_one() -> None:
    row = features(km_from_last_tx=500, speed_kmh_from_last_tx=3000, card_nb_small_tx_1h=5,
                   device_nb_cards_30d=4)
    assert rule_scores(rule_hits(row))[0] == 1.0


def test_the_model_alone_can_reach_review_but_not_decline() -> None:
    no_rules = np.zeros(3)
    risk = combined_risk(no_rules, np.array([0.2, 0.5, 1.0]))
    np.testing.assert_allclose(risk, [0.14, 0.35, 0.7])
    assert (risk < DECLINE_AT).all()
    assert combined_risk(np.array([0.8]), np.array([1.0]))[0] == 1.0
