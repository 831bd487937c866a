"""Offline re-decision of the fraud policy under other thresholds, its costs, the cheapest set."""

from __future__ import annotations

import numpy as np
import pytest

from services.trainer.fraud_costs import (
    APPROVE,
    DECLINE,
    NEVER,
    REVIEW,
    CostMatrix,
    Decisions,
    Thresholds,
    action_scores,
    actions,
    cheapest,
    cost,
    grid,
    outcome,
)

SHIPPED = Thresholds(0.3, 0.8, 0.8)


def week(risk: list[float], fraud: list[bool], *, ml: list[float] | None = None,
         forced: list[int] | None = None, listed: list[int] | None = None,
         amount: list[float] | None = None, day: list[int] | None = None) -> Decisions:
    n = len(risk)
    return Decisions(np.array(risk), np.array(ml or [0.0] * n),
                     np.array(forced or [APPROVE] * n, dtype=np.int8),
                     np.array(listed or [-1] * n, dtype=np.int8),
                     np.array(amount or [100.0] * n), np.array(fraud),
                     np.array(day or [0] * n, dtype=np.int64))


def test_the_level_of_the_risk_decides_unless_a_rule_the_model_or_a_list_says_more() -> None:
    d = week([0.1, 0.35, 0.85, 0.1, 0.1, 0.9], [False] * 6, ml=[0.0, 0.0, 0.0, 0.0, 0.9, 0.0],
             forced=[APPROVE, APPROVE, APPROVE, REVIEW, APPROVE, APPROVE],
             listed=[-1, -1, -1, -1, -1, APPROVE])
    assert actions(d, SHIPPED).tolist() == [APPROVE, REVIEW, DECLINE, REVIEW, DECLINE, APPROVE]
    # a forced review is never lowered, and the model alone no longer declines at NEVER
    assert actions(d, Thresholds(0.5, 0.95, NEVER)).tolist() == [
        APPROVE, APPROVE, REVIEW, REVIEW, APPROVE, APPROVE]


def test_each_cell_of_the_cost_matrix() -> None:
    d = week([0.1, 0.5, 0.9, 0.1, 0.5, 0.9], [True, True, True, False, False, False],
             amount=[200.0, 200.0, 200.0, 300.0, 300.0, 300.0])
    costs = cost(d, actions(d, Thresholds(0.3, 0.8, NEVER)), CostMatrix(0.1, 5.0))
    # missed fraud: its amount; reviews: 5; caught by decline: 0; genuine approved: 0;
    # false decline: 10 % of 300
    assert costs.tolist() == pytest.approx([200.0, 5.0, 0.0, 0.0, 5.0, 30.0])


def test_precision_recall_and_false_positive_rate_per_action() -> None:
    d = week([0.9, 0.9, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1], [True, False, True, False, True,
                                                         False, False, False])
    scores = {s.action: s for s in action_scores(d, actions(d, SHIPPED))}
    assert (scores["decline"].precision, scores["decline"].recall) == (0.5, pytest.approx(1 / 3))
    assert scores["decline"].false_positive_rate == pytest.approx(1 / 5)
    assert scores["review or decline"].count == 4 and scores["review or decline"].frauds == 2


def test_the_review_queue_is_counted_per_day() -> None:
    d = week([0.5, 0.5, 0.5, 0.1], [False] * 4, day=[0, 0, 1, 2])
    o = outcome(d, SHIPPED, CostMatrix())
    assert (o.reviews_per_day, o.reviews_max_day) == (1.0, 2)


def test_the_cheapest_thresholds_decline_what_reviews_cannot_pay_for() -> None:
    # frauds score above 0.6, genuine below 0.4, and a review costs more than any fraud here
    rng = np.random.default_rng(0)
    risk = np.concatenate([rng.uniform(0.6, 1.0, 50), rng.uniform(0.0, 0.4, 500)])
    d = week(risk.tolist(), [True] * 50 + [False] * 500, amount=[10.0] * 550)
    best = cheapest(d, CostMatrix(0.1, review_cost=50.0), grid())
    assert best.total_cost == 0.0
    assert 0.4 < best.thresholds.decline_at <= 0.6
    assert best.reviews_per_day == 0


def test_the_grid_keeps_review_below_decline_and_offers_never() -> None:
    candidates = grid()
    assert all(t.review_at < t.decline_at for t in candidates)
    assert any(t.decline_at == NEVER for t in candidates)
    assert any(t.ml_decline_at == NEVER for t in candidates)
    assert SHIPPED in candidates
