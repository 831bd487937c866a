"""The fraud models' metrics: AUC, AP, the handbook's card precision@k, and decision tables.

Rules, ML and both at the brief's thresholds, per-scenario recall and per-rule hit rates; pure:
arrays in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from services.common.arrays import FloatArray
from services.trainer.fraud_rules_baseline import BASELINE_RULES, DECLINE_AT, REVIEW_AT
from services.trainer.worlds.transactions import SCENARIO_NAMES

TOP_K = 100
THRESHOLDS = (REVIEW_AT, 0.6, DECLINE_AT)
SYSTEMS = ("rules", "ML", "rules + ML")


@dataclass(frozen=True)
class Scores:
    auc_roc: float
    average_precision: float
    card_precision_at_100: float


def card_precision_at_k(
    days: npt.ArrayLike, cards: npt.ArrayLike, labels: npt.ArrayLike, scores: npt.ArrayLike,
    k: int = TOP_K,
) -> float:
    """The handbook's card precision@k: per day, the share of compromised cards among the k cards
    with the highest maximum score that day, averaged over days. A card found compromised is left
    out of the following days (an investigator already blocked it)."""
    frame = pd.DataFrame({"day": days, "card": cards, "label": labels, "score": scores})
    per_card = frame.groupby(["day", "card"], sort=True).max().reset_index()
    detected: set[Any] = set()
    precisions: list[float] = []
    for _, cards_of_day in per_card.groupby("day", sort=True):
        candidates = cards_of_day[~cards_of_day["card"].isin(detected)]
        top = candidates.sort_values("score", ascending=False, kind="stable").head(k)
        hits = top.loc[top["label"] == 1, "card"]
        precisions.append(len(hits) / k)
        detected.update(hits)
    return float(np.mean(precisions)) if precisions else float("nan")


def score(tx: pd.DataFrame, labels: npt.NDArray[Any], probabilities: FloatArray) -> Scores:
    """AUC ROC, average precision and card precision@100 of one model on one test set."""
    both_classes = 0 < int(labels.sum()) < len(labels)
    return Scores(
        float(roc_auc_score(labels, probabilities)) if both_classes else float("nan"),
        float(average_precision_score(labels, probabilities)) if both_classes else float("nan"),
        card_precision_at_k(tx["tx_datetime"].dt.normalize().to_numpy(), tx["card_id"].to_numpy(),
                            labels, probabilities),
    )


@dataclass(frozen=True)
class DecisionRow:
    system: str
    threshold: float
    precision: float
    recall: float
    false_positive_rate: float
    flagged_share: float


def decision_table(labels: npt.NDArray[Any], risks: dict[str, FloatArray]) -> list[DecisionRow]:
    """Precision, recall and false-positive rate of each system at each threshold."""
    fraud = labels.astype(bool)
    rows = []
    for system, risk in risks.items():
        for threshold in THRESHOLDS:
            flagged = risk >= threshold
            caught = int((flagged & fraud).sum())
            rows.append(DecisionRow(
                system, threshold,
                caught / int(flagged.sum()) if flagged.any() else float("nan"),
                caught / max(1, int(fraud.sum())),
                int((flagged & ~fraud).sum()) / max(1, int((~fraud).sum())),
                float(flagged.mean()) if len(flagged) else float("nan"),
            ))
    return rows


def scenario_recall(
    scenarios: npt.NDArray[Any], risks: dict[str, FloatArray], threshold: float
) -> dict[str, dict[int, float]]:
    """Per system, the share of each fraud scenario's transactions at or above the threshold."""
    return {
        system: {s: float((risk[scenarios == s] >= threshold).mean())
                 for s in sorted(SCENARIO_NAMES) if s and (scenarios == s).any()}
        for system, risk in risks.items()
    }


@dataclass(frozen=True)
class RuleRow:
    name: str
    weight: float
    reason: str
    fraud_hit_rate: float
    genuine_hit_rate: float
    precision: float


def rule_table(hits: npt.NDArray[np.bool_], labels: npt.NDArray[Any]) -> list[RuleRow]:
    """How often each baseline rule fires on frauds and on genuine transactions."""
    fraud = labels.astype(bool)
    rows = []
    for j, rule in enumerate(BASELINE_RULES):
        fired = hits[:, j]
        rows.append(RuleRow(
            rule.name, rule.weight, rule.reason,
            float(fired[fraud].mean()) if fraud.any() else float("nan"),
            float(fired[~fraud].mean()) if (~fraud).any() else float("nan"),
            float(fraud[fired].mean()) if fired.any() else float("nan"),
        ))
    return rows
