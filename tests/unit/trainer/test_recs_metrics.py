"""Ranking metrics on hand-made lists whose values can be worked out on paper."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.trainer.recs_metrics import (
    catalog_coverage,
    intra_list_diversity,
    ndcg_at_k,
    recall_at_k,
    top_k,
)


def _relevant(n_titles: int, *per_user: list[int]) -> np.ndarray:
    relevant = np.zeros((len(per_user), n_titles), dtype=bool)
    for user, titles in enumerate(per_user):
        relevant[user, titles] = True
    return relevant


def test_top_k_orders_by_score_and_pads_excluded_titles_with_minus_one() -> None:
    scores = np.array([[0.1, 0.9, -np.inf, 0.5], [-np.inf, -np.inf, 0.2, -np.inf]])

    np.testing.assert_array_equal(top_k(scores, 3), [[1, 3, 0], [2, -1, -1]])


def test_recall_is_the_share_of_future_titles_found_averaged_over_users() -> None:
    top = np.array([[0, 1, 2], [3, 4, 5]])
    relevant = _relevant(6, [1, 5], [3])  # user 0 finds 1 of 2, user 1 finds 1 of 1

    assert recall_at_k(top, relevant, 3) == pytest.approx((0.5 + 1.0) / 2)
    assert recall_at_k(top, relevant, 1) == pytest.approx((0.0 + 1.0) / 2)


def test_users_with_nothing_in_the_future_do_not_count() -> None:
    top = np.array([[0, 1], [2, 3]])
    relevant = _relevant(4, [0], [])

    assert recall_at_k(top, relevant, 2) == 1.0


def test_ndcg_discounts_a_hit_by_its_rank() -> None:
    top = np.array([[0, 1, 2]])
    relevant = _relevant(3, [1])  # one hit at rank 2 against an ideal hit at rank 1

    assert ndcg_at_k(top, relevant, 3) == pytest.approx((1 / math.log2(3)) / 1.0)


def test_ndcg_ideal_counts_at_most_k_relevant_titles() -> None:
    top = np.array([[0, 1]])
    relevant = _relevant(4, [0, 1, 2, 3])

    assert ndcg_at_k(top, relevant, 2) == pytest.approx(1.0)


def test_padding_never_counts_as_a_hit() -> None:
    top = np.array([[-1, -1]])
    relevant = _relevant(3, [0])

    assert recall_at_k(top, relevant, 2) == 0.0
    assert ndcg_at_k(top, relevant, 2) == 0.0


def test_coverage_is_the_share_of_the_catalog_shown_to_anyone() -> None:
    top = np.array([[0, 1], [1, 2], [2, -1]])

    assert catalog_coverage(top, 10, 2) == pytest.approx(0.3)


def test_diversity_is_the_mean_pairwise_genre_jaccard_distance() -> None:
    genres = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    # pairs: (0,1) share 1 of 2 -> 0.5; (0,2) -> 1; (1,2) -> 1; mean 2.5 / 3
    top = np.array([[0, 1, 2]])

    assert intra_list_diversity(top, genres, 3) == pytest.approx(2.5 / 3)
    assert intra_list_diversity(np.array([[0, 0]]), genres, 2) == 0.0
