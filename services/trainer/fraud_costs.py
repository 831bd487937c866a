"""The fraud policy's decisions scored offline: precision, recall and FPR per action, expected cost
under a stated cost matrix, and the thresholds that minimise it (pure; numpy in, numbers out).

    per transaction: risk, ML score, the action a rule or list forces, amount, label
      └─ thresholds (review_at, decline_at, ml_decline_at) ─▶ action, as services/fraud/decide.py:
           max(level action by risk, a rule's forced action, decline if ML >= ml_decline_at);
           a list hit decides alone
      └─ cost matrix:           approve      review             decline
                      fraud     amount       review cost        0
                      genuine   0            review cost        share x amount

A reviewed fraud is caught by the analyst (its cost is the review's); a declined genuine
payment loses `false_decline_share` of its amount (margin, and the customer who goes elsewhere).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.arrays import FloatArray

ActionArray = npt.NDArray[np.int8]  # an action code per transaction

APPROVE, REVIEW, DECLINE = 0, 1, 2
ACTIONS = ("approve", "review", "decline")
NEVER = 1.01  # a threshold no score reaches


@dataclass(frozen=True)
class CostMatrix:
    false_decline_share: float = 0.1   # of a declined genuine payment's amount
    review_cost: float = 5.0           # one analyst review, in the transactions' currency

    def describe(self) -> str:
        return (f"missed fraud: its amount; false decline: {self.false_decline_share:.0%} of "
                f"its amount; review: {self.review_cost:g} each")


@dataclass(frozen=True)
class Thresholds:
    review_at: float
    decline_at: float
    ml_decline_at: float   # NEVER: the model never declines alone


@dataclass(frozen=True)
class Decisions:
    """The replayed week, one entry per transaction (numpy columns)."""

    risk: FloatArray
    ml_score: FloatArray
    forced: ActionArray        # the action rules force (APPROVE: none)
    listed: ActionArray        # -1: no list hit; else the list's action (decides alone)
    amount: FloatArray
    is_fraud: npt.NDArray[np.bool_]
    day: npt.NDArray[np.int64]   # day index within the week, for the review queue per day

    def __len__(self) -> int:
        return len(self.risk)


def actions(d: Decisions, t: Thresholds) -> ActionArray:
    """decide.py's action for every transaction under thresholds `t` (whole decisions: the
    replay's feature store and model were up, so nothing is degraded)."""
    level = np.where(d.risk >= t.decline_at, DECLINE,
                     np.where(d.risk >= t.review_at, REVIEW, APPROVE))
    ml = np.where(d.ml_score >= t.ml_decline_at, DECLINE, APPROVE)
    chosen = np.maximum(np.maximum(level, d.forced), ml)
    return np.where(d.listed >= 0, d.listed, chosen).astype(np.int8)


def cost(d: Decisions, chosen: ActionArray, matrix: CostMatrix) -> FloatArray:
    """Each transaction's cost under the matrix."""
    fraud = d.is_fraud
    return np.select(
        [(chosen == APPROVE) & fraud, chosen == REVIEW, (chosen == DECLINE) & ~fraud],
        [d.amount, np.full(len(d), matrix.review_cost),
         matrix.false_decline_share * d.amount], 0.0)


@dataclass(frozen=True)
class ActionScores:
    action: str
    count: int
    frauds: int
    precision: float | None   # frauds / count
    recall: float | None      # frauds / all frauds
    false_positive_rate: float  # genuine ones given this action / all genuine


def action_scores(d: Decisions, chosen: ActionArray) -> list[ActionScores]:
    """Per action (and review-or-decline: flagged): how much of what it took was fraud."""
    frauds, genuine = int(d.is_fraud.sum()), int((~d.is_fraud).sum())
    rows = []
    for name, taken in (("review", chosen == REVIEW), ("decline", chosen == DECLINE),
                        ("review or decline", chosen >= REVIEW)):
        count, caught = int(taken.sum()), int((taken & d.is_fraud).sum())
        rows.append(ActionScores(
            name, count, caught, caught / count if count else None,
            caught / frauds if frauds else None,
            int((taken & ~d.is_fraud).sum()) / genuine if genuine else 0.0))
    return rows


@dataclass(frozen=True)
class Outcome:
    thresholds: Thresholds
    total_cost: float
    missed_fraud_amount: float
    false_decline_cost: float
    review_cost: float
    reviews_per_day: float
    reviews_max_day: int
    declines_per_day: float
    scores: list[ActionScores]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def outcome(d: Decisions, t: Thresholds, matrix: CostMatrix) -> Outcome:
    chosen = actions(d, t)
    costs = cost(d, chosen, matrix)
    days = int(d.day.max()) + 1 if len(d) else 1
    reviewed = chosen == REVIEW
    per_day = np.bincount(d.day[reviewed], minlength=days) if len(d) else np.zeros(1)
    return Outcome(
        t, round(float(costs.sum()), 2),
        round(float(d.amount[(chosen == APPROVE) & d.is_fraud].sum()), 2),
        round(float(costs[(chosen == DECLINE) & ~d.is_fraud].sum()), 2),
        round(float(costs[reviewed].sum()), 2),
        round(float(reviewed.sum()) / days, 1), int(per_day.max()),
        round(float((chosen == DECLINE).sum()) / days, 1), action_scores(d, chosen))


def grid(step: float = 0.05) -> list[Thresholds]:
    """review_at < decline_at on a `step` grid (decline_at may be NEVER), each with the model's
    own decline threshold on the same grid from 0.5, or NEVER."""
    points = [round(x, 4) for x in np.arange(step, 1.0 + 1e-9, step)]
    ml_points = [p for p in points if p >= 0.5] + [NEVER]
    return [Thresholds(r, dcl, ml) for r in points for dcl in [*points, NEVER] if dcl > r
            for ml in ml_points]


def cheapest(d: Decisions, matrix: CostMatrix, candidates: list[Thresholds]) -> Outcome:
    """The candidate thresholds with the lowest total cost on `d` (ties: the first)."""
    best: Outcome | None = None
    for t in candidates:
        total = float(cost(d, actions(d, t), matrix).sum())
        if best is None or total < best.total_cost - 1e-9:
            best = outcome(d, t, matrix)
    assert best is not None, "no candidate thresholds"
    return best
