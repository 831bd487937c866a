"""A baseline rule scorer over the fraud feature vector, to compare rules, ML and both combined.

The rules engine proper lives in services/fraud; this is the offline stand-in the trainer uses to
show what each side catches. Each rule reads catalog features only, fires or not, and adds its
weight to the risk; the design brief combines them with the model as
risk = min(1, sum of fired rule weights + ML_WEIGHT x model probability).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common.arrays import BoolArray, FloatArray
from services.designs.model_features import FRAUD_FEATURE_NAMES

ML_WEIGHT = 0.7
DECLINE_AT = 0.8
REVIEW_AT = 0.3
IMPOSSIBLE_SPEED_KMH = 900.0  # faster than an airliner
# Two terminals a few km apart seconds apart make any speed: below this, distance is noise.
MIN_TRAVEL_KM = 100.0


class Columns:
    """Named access to the columns of a FRAUD_FEATURES matrix."""

    def __init__(self, matrix: npt.NDArray[np.floating], names: tuple[str, ...]) -> None:
        self._matrix = matrix
        self._index = {name: i for i, name in enumerate(names)}

    def __getitem__(self, name: str) -> FloatArray:
        return np.asarray(self._matrix[:, self._index[name]], dtype=np.float64)


@dataclass(frozen=True)
class Rule:
    name: str
    weight: float
    reason: str
    fires: Callable[[Columns], BoolArray]


BASELINE_RULES: tuple[Rule, ...] = (
    Rule("impossible_travel", 0.8,
         f"card moved faster than {IMPOSSIBLE_SPEED_KMH:g} km/h from its previous transaction",
         lambda c: (c["speed_kmh_from_last_tx"] > IMPOSSIBLE_SPEED_KMH)
         & (c["km_from_last_tx"] >= MIN_TRAVEL_KM)),
    Rule("card_testing", 0.6, "3+ small amounts on the card in the last hour",
         lambda c: c["card_nb_small_tx_1h"] >= 3),
    Rule("shared_device", 0.5, "device used by 3+ other cards in 30 days",
         lambda c: c["device_nb_cards_30d"] >= 3),
    Rule("amount_spike", 0.4, "amount 5x the customer's 30-day mean and over 100",
         lambda c: (c["amount_to_customer_avg_30d"] >= 5) & (c["tx_amount"] >= 100)),
    Rule("new_device_and_ip", 0.2, "device and IP both new to the card",
         lambda c: (c["is_new_device"] == 1) & (c["is_new_ip"] == 1)),
    Rule("velocity", 0.3, "4+ transactions on the card in the last hour",
         lambda c: c["card_nb_tx_1h"] >= 4),
    Rule("shared_ip", 0.2, "IP used by 8+ other cards in 30 days",
         lambda c: c["ip_nb_cards_30d"] >= 8),
)


def rule_hits(
    features: npt.NDArray[np.floating],
    rules: tuple[Rule, ...] = BASELINE_RULES,
    names: tuple[str, ...] = FRAUD_FEATURE_NAMES,
) -> BoolArray:
    """bool [n, len(rules)]: which rule fired on which row (the reasons of a decision)."""
    columns = Columns(features, names)
    return np.stack([rule.fires(columns) for rule in rules], axis=1)


def rule_scores(hits: BoolArray, rules: tuple[Rule, ...] = BASELINE_RULES) -> FloatArray:
    """The rules' risk per row: the sum of the fired weights, capped at 1."""
    weights = np.array([rule.weight for rule in rules])
    return np.asarray(np.minimum(1.0, hits.astype(np.float64) @ weights))


def combined_risk(rule_score: FloatArray, ml_score: FloatArray) -> FloatArray:
    """The design brief's combination: min(1, rules + ML_WEIGHT x model probability)."""
    return np.asarray(np.minimum(1.0, rule_score + ML_WEIGHT * ml_score))
