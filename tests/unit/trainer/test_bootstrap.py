"""The gates' paired bootstrap: a weighted AP that is sklearn's, and intervals over clusters."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from services.trainer.bootstrap import (
    ap_difference_interval,
    mean_interval,
    paired_interval,
    weighted_average_precision,
)


def rare_labels(n: int, seed: int, rate: float = 0.02) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < rate).astype(np.int8)


def test_weighted_average_precision_is_sklearns_with_ties_and_resampling_weights() -> None:
    rng = np.random.default_rng(0)
    y = rare_labels(5_000, 1)
    scores = np.round(rng.random(5_000) * 0.5 + y * rng.random(5_000), 2)  # many ties
    weights = np.vstack([np.ones(5_000), rng.integers(0, 3, 5_000), rng.poisson(1, 5_000)])
    ours = weighted_average_precision(y, scores, weights.astype(np.float64))
    theirs = [average_precision_score(y, scores, sample_weight=w) for w in weights]
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_the_same_scores_on_both_sides_give_an_interval_of_exactly_zero() -> None:
    y = rare_labels(3_000, 2)
    scores = np.random.default_rng(3).random(3_000) + y
    cards = np.arange(3_000) // 3
    assert ap_difference_interval(y, scores, scores, cards, resamples=200) == (0.0, 0.0)


def test_a_clearly_better_model_is_better_beyond_the_interval() -> None:
    rng = np.random.default_rng(4)
    y = rare_labels(20_000, 5)
    good, poor = y + rng.normal(0, 0.5, 20_000), y + rng.normal(0, 1.5, 20_000)
    low, high = ap_difference_interval(y, good, poor, np.arange(20_000), resamples=300)
    point = average_precision_score(y, good) - average_precision_score(y, poor)
    assert 0 < low < point < high


def test_resampling_cards_not_rows_widens_the_interval_when_a_cards_rows_move_together() -> None:
    # each card's rows are copies of one another (a compromised card's frauds look alike):
    # resampling rows treats 10 copies as 10 pieces of evidence, resampling cards as one
    rng = np.random.default_rng(6)
    y_card = rare_labels(1_000, 7, rate=0.05)
    a_card = y_card + rng.normal(0, 1.0, 1_000)
    b_card = y_card + rng.normal(0, 1.0, 1_000)
    y, a, b = (np.repeat(v, 10) for v in (y_card, a_card, b_card))
    cards = np.repeat(np.arange(1_000), 10)
    by_card = ap_difference_interval(y, a, b, cards, resamples=400)
    by_row = ap_difference_interval(y, a, b, np.arange(10_000), resamples=400)
    assert by_card[1] - by_card[0] > 2 * (by_row[1] - by_row[0])


def test_the_interval_of_a_mean_is_the_rankers_and_the_recs_reports_one() -> None:
    # drawn as they always were: the committed reports' intervals reproduce for their seeds
    # (to the last bits of a float sum)
    d = np.random.default_rng(8).normal(size=2_000)
    means = d[np.random.default_rng(0).integers(0, 2_000, (2_000, 2_000))].mean(axis=1)
    expected = tuple(np.quantile(means, [0.025, 0.975]))
    assert paired_interval(d) == mean_interval(d) == pytest.approx(expected, abs=1e-15)
