"""The retraining gate's arithmetic: position bias from shuffled lists, the IPS-weighted rank of
clicks (unbiased whatever order the lists were shown in), per-list AUC, float32-exact trees."""

from __future__ import annotations

import numpy as np
import pytest

from services.trainer.bootstrap import paired_interval
from services.trainer.export import check_parity, export_classifier
from services.trainer.ranker_from_lake import (
    NotEnoughData,
    beats,
    fit_click_ranker,
    fit_position_bias,
    float32_thresholds,
    ips_clicked_ranks,
    list_aucs,
    propensity,
)

K = 10
ETA = 0.8


def clicks_on(relevance: np.ndarray, slots: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The position-based click model: P(click) = (1 + slot)^-ETA x relevance."""
    clicked: np.ndarray = rng.random(len(slots)) < (1 + slots) ** -ETA * relevance
    return clicked


def test_the_position_bias_of_shuffled_lists_is_recovered() -> None:
    rng = np.random.default_rng(0)
    slots = np.tile(np.arange(K), 20_000)
    relevance = rng.uniform(0.1, 0.7, len(slots))          # independent of the slot: shuffled
    eta, rates = fit_position_bias(slots, clicks_on(relevance, slots, rng))
    assert eta == pytest.approx(ETA, abs=0.05)
    assert rates[0] > rates[1] > rates[9] and len(rates) == K


def test_too_few_clicked_slots_cannot_fit_a_bias() -> None:
    with pytest.raises(NotEnoughData, match="fewer than two slots"):
        fit_position_bias(np.arange(K), np.r_[1, np.zeros(K - 1)])


def test_ips_clicked_rank_favours_the_truly_better_ranker_where_per_list_auc_favours_the_logger(
        ) -> None:
    """Lists shown in the logger's order: the logger's own score looks best by per-list AUC
    (its top slots get the clicks), but the IPS-weighted rank of the clicks tells the truth."""
    rng = np.random.default_rng(1)
    lists = 6_000
    relevance = rng.uniform(0.0, 0.6, (lists, K))
    logger = relevance + rng.normal(0, 0.25, (lists, K))      # a noisy ranker, it ordered them
    better = relevance + rng.normal(0, 0.05, (lists, K))      # a better one
    order = np.argsort(-logger, axis=1)
    slots = np.argsort(order, axis=1)                          # slot of each title
    clicked = clicks_on(relevance.ravel(), slots.ravel(), rng)
    group = np.repeat(np.arange(lists), K)
    theta = propensity(slots.ravel(), ETA)

    auc_logger, _ = list_aucs(logger.ravel(), clicked, group)
    auc_better, _ = list_aucs(better.ravel(), clicked, group)
    rank_logger, ids = ips_clicked_ranks(logger.ravel(), clicked, group, theta)
    rank_better, same = ips_clicked_ranks(better.ravel(), clicked, group, theta)

    assert auc_logger.mean() > auc_better.mean()              # the naive metric is fooled
    assert (ids == same).all()
    interval = paired_interval(rank_logger - rank_better)
    assert beats(interval)                                    # IPS: the better ranker wins
    # and with the slot's bias ignored (theta = 1), the logger's order would win instead
    naive_logger, _ = ips_clicked_ranks(logger.ravel(), clicked, group, np.ones(len(theta)))
    naive_better, _ = ips_clicked_ranks(better.ravel(), clicked, group, np.ones(len(theta)))
    assert naive_logger.mean() < naive_better.mean()


def test_per_list_auc_counts_ties_half_and_skips_lists_without_both_labels() -> None:
    aucs, ids = list_aucs([3, 2, 1, 5, 5, 1, 1], [1, 0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 1, 2, 2])
    assert ids.tolist() == [0, 1] and aucs.tolist() == [1.0, 0.5]


def test_a_ranker_with_float32_thresholds_matches_its_onnx_export_on_near_equal_values(
        ) -> None:
    """Neighbouring float32 values: the midpoint threshold rounds onto one of them in ONNX."""
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 4, 4_000).astype(np.float32)
    x = np.column_stack([base, np.nextafter(base, np.float32(5)), rng.random(4_000)]) \
        .astype(np.float32)
    x = np.vstack([x[:, [0, 2, 2, 2, 2, 2, 2]], x[:, [1, 2, 2, 2, 2, 2, 2]]])
    y = (rng.random(len(x)) < 0.3).astype(np.int64)
    ranker = fit_click_ranker(x, y, seed=0)                   # float32_thresholds applied
    assert check_parity(ranker, export_classifier(ranker, 7), x) <= 1e-4
    before = ranker.predict_proba(x)
    float32_thresholds(ranker)                                # idempotent, answers unchanged
    assert (ranker.predict_proba(x) == before).all()
