"""Train and evaluate the fraud models: the handbook's protocol and baselines, then production.

The protocol is the Fraud Detection Handbook's (Le Borgne et al.): train on 7 days, skip 7 (the
labels of those days are not in yet), test on the 7 after. The test days leave out cards already
known to be compromised, a card becoming known 7 days after its first fraud from the training
week on:

    |-- warm-up (>= 37 d) --|-- train 7 d --|-- delay 7 d --|-- test 7 d --|
     features only            fit             unlabelled      scored

Three things are measured on the same split:
1. the handbook world (scenarios 1-3) with its 15 features, next to the handbook's published
   numbers: logistic regression, random forest, and HistGradientBoosting for XGBoost;
2. the extended world (all six scenarios): the production model over every catalog feature
   against the same model restricted to the handbook's 15;
3. rules only, ML only and rules + ML at the decision thresholds of the design brief.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import sklearn
from matplotlib.figure import Figure
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from services.common.drift import DRIFT_REFERENCE_FILE, DriftReference
from services.designs.model_features import (
    FRAUD_FEATURE_NAMES,
    FRAUD_REFERENCE_FILE,
    HANDBOOK_FEATURE_NAMES,
)
from services.trainer.artifacts import TrainedModel, data_hash
from services.trainer.fraud_features import fraud_feature_matrix, handbook_feature_matrix
from services.trainer.fraud_rules_baseline import (
    BASELINE_RULES,
    DECLINE_AT,
    ML_WEIGHT,
    REVIEW_AT,
    combined_risk,
    rule_hits,
    rule_scores,
)
from services.trainer.worlds.transactions import (
    SCENARIO_NAMES,
    TransactionWorld,
    TransactionWorldConfig,
    generate_transactions,
    summary,
)

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Matrix = npt.NDArray[np.float32]

TOP_K = 100
HOLDOUT_ROWS = 2_000
THRESHOLDS = (REVIEW_AT, 0.6, DECLINE_AT)
SYSTEMS = ("rules", "ML", "rules + ML")
CURVES_PLOT = "img/fraud-curves.png"
HANDBOOK_PLOT = "img/fraud-vs-handbook.png"
DECISIONS_PLOT = "img/fraud-decisions.png"

# The handbook's published results (AUC ROC, average precision, card precision@100) on its
# simulated data with the same 7/7/7 protocol, as quoted in the project brief.
HANDBOOK_PUBLISHED: dict[str, tuple[float, float, float]] = {
    "logistic regression": (0.871, 0.606, 0.291),
    "random forest": (0.867, 0.658, 0.287),
    "XGBoost": (0.862, 0.639, 0.273),
    "tuned XGBoost": (0.869, 0.687, 0.303),
}
HANDBOOK_TRAIN_START = pd.Timestamp("2018-07-25")
OUR_STAND_IN = {"logistic regression": "logistic regression", "random forest": "random forest",
                "XGBoost": "hist gradient boosting", "tuned XGBoost": "hist gradient boosting"}


# --- The protocol -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """The handbook's train / delay / test days, from the first training day (a midnight)."""

    train_start: pd.Timestamp
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    @classmethod
    def at_end_of(cls, config: TransactionWorldConfig) -> Split:
        """The split whose test week is the world's last week."""
        last_day = pd.Timestamp(config.start_date) + pd.Timedelta(days=config.n_days)
        return cls(last_day - pd.Timedelta(days=cls.train_days + cls.delay_days + cls.test_days))

    @property
    def test_start(self) -> pd.Timestamp:
        return self.train_start + pd.Timedelta(days=self.train_days + self.delay_days)

    def train_mask(self, tx: pd.DataFrame) -> BoolArray:
        end = self.train_start + pd.Timedelta(days=self.train_days)
        return np.asarray((tx["tx_datetime"] >= self.train_start) & (tx["tx_datetime"] < end))

    def test_mask(self, tx: pd.DataFrame) -> BoolArray:
        """Test days, minus the cards whose fraud (from the training week on) is known by then."""
        when = tx["tx_datetime"]
        end = self.test_start + pd.Timedelta(days=self.test_days)
        in_test = (when >= self.test_start) & (when < end)
        frauds = tx[(when >= self.train_start) & (tx["is_fraud"] == 1)]
        first_fraud = tx["card_id"].map(frauds.groupby("card_id")["tx_datetime"].min())
        known = first_fraud < when.dt.normalize() - pd.Timedelta(days=self.delay_days)
        return np.asarray(in_test & ~known)


# --- Metrics ----------------------------------------------------------------------------------


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


# --- Models -----------------------------------------------------------------------------------


def _logistic_regression(seed: int) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))


def _random_forest(seed: int) -> Any:
    # Chosen on worlds with seeds 1 and 2, never on the reported one: leaves of 3+ and half-size
    # bootstrap samples scored as well as fully grown trees there, in about half the time.
    return RandomForestClassifier(n_estimators=100, min_samples_leaf=3, max_samples=0.5,
                                  n_jobs=2, random_state=seed)


def _gradient_boosting(seed: int) -> Any:
    # Small trees, many of them, slow learning: chosen on seeds 1 and 2 like the forest.
    return HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=50,
        l2_regularization=1.0, early_stopping=False, random_state=seed,
    )


HANDBOOK_MODELS: dict[str, Callable[[int], Any]] = {
    "logistic regression": _logistic_regression,
    "random forest": _random_forest,
    "hist gradient boosting": _gradient_boosting,
}


@dataclass(frozen=True)
class ModelResult:
    """One model on one test set: its scores, fit time and test-set probabilities."""

    name: str
    world: str
    features: str
    scores: Scores
    fit_seconds: float
    labels: npt.NDArray[np.int8] = field(repr=False)
    probabilities: FloatArray = field(repr=False)


@contextmanager
def _one_openmp_thread() -> Iterator[None]:
    # On 2 shared cores, HistGradientBoosting's spinning OpenMP threads make a 1-second fit (and
    # a 50-ms predict) ten times slower whenever another process runs: one thread is faster.
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _fit(estimator: Any, x: Matrix, y: npt.NDArray[np.int8]) -> float:
    started = time.perf_counter()
    with _one_openmp_thread():
        estimator.fit(x, y)
    return time.perf_counter() - started


def _predict(estimator: Any, x: Matrix) -> FloatArray:
    with _one_openmp_thread():
        return np.asarray(estimator.predict_proba(x)[:, 1], dtype=np.float64)


@dataclass(frozen=True)
class _Data:
    """One world's transactions, feature matrix, labels and split masks."""

    tx: pd.DataFrame
    x: Matrix
    y: npt.NDArray[np.int8]
    train: BoolArray
    test: BoolArray

    @classmethod
    def of(cls, tx: pd.DataFrame, x: Matrix, split: Split) -> _Data:
        return cls(tx, x, tx["is_fraud"].to_numpy(np.int8), split.train_mask(tx),
                   split.test_mask(tx))


def _evaluate(name: str, world: str, features: str, estimator: Any, data: _Data,
              columns: slice = slice(None)) -> ModelResult:
    x = data.x[:, columns]
    seconds = _fit(estimator, x[data.train], data.y[data.train])
    probabilities = _predict(estimator, x[data.test])
    labels = data.y[data.test]
    return ModelResult(name, world, features, score(data.tx[data.test], labels, probabilities),
                       seconds, labels, probabilities)


# --- Decisions --------------------------------------------------------------------------------


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


# --- The run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FraudTrainingResult:
    """The production model and everything the evaluation page shows."""

    model: TrainedModel
    split: Split
    handbook: list[ModelResult]
    extended: list[ModelResult]
    decisions: list[DecisionRow]
    recall_at_review: dict[str, dict[int, float]]
    recall_at_decline: dict[str, dict[int, float]]
    rules: list[RuleRow]
    world_summary: dict[str, float]
    timings: dict[str, float]
    seed_spread: dict[str, list[Scores]] = field(default_factory=dict)  # handbook table per seed
    spread_seeds: tuple[int, ...] = ()  # the worlds of seed_spread, the main one first
    spread_seconds: float = 0.0


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - started


def _holdout(x: Matrix, seed: int) -> Matrix:
    rows = np.random.default_rng(seed).permutation(len(x))[:HOLDOUT_ROWS]
    return np.ascontiguousarray(x[np.sort(rows)], dtype=np.float32)


def handbook_benchmark(world: TransactionWorld, split: Split) -> list[ModelResult]:
    """The handbook's three baselines on the handbook part of a world, with its 15 features."""
    tx = world.handbook_transactions
    data = _Data.of(tx, handbook_feature_matrix(tx), split)
    return [_evaluate(name, "handbook", "handbook 15", build(world.config.seed), data)
            for name, build in HANDBOOK_MODELS.items()]


def _seed_spread(config: TransactionWorldConfig, first: list[ModelResult],
                 seeds: tuple[int, ...]) -> dict[str, list[Scores]]:
    spread = {r.name: [r.scores] for r in first}
    for seed in seeds:
        other = generate_transactions(replace(config, seed=seed))
        for r in handbook_benchmark(other, Split.at_end_of(other.config)):
            spread[r.name].append(r.scores)
    return spread


def train_fraud(
    world: TransactionWorld,
    report_dir: Path,
    progress: Callable[[str], None] | None = None,
    generation_seconds: float | None = None,
    spread_seeds: tuple[int, ...] = (),
) -> FraudTrainingResult:
    """Run the three evaluations, write fraud.md and img/fraud-*.png, return the production model.

    `generation_seconds` (how long the world took to build) only goes into the report.
    `spread_seeds` repeats the handbook benchmark on worlds with those seeds (about 10 s each),
    to show how much of a difference to the published table another seed would change.
    """
    say = progress or (lambda message: logger.info("%s", message))
    timings: dict[str, float] = {} if generation_seconds is None else {
        "world generation": generation_seconds}
    seed = world.config.seed
    split = Split.at_end_of(world.config)

    say("fraud: handbook protocol, three models on the handbook's 15 features")
    with _timed(timings, "handbook features + models"):
        handbook = handbook_benchmark(world, split)
    say("fraud: features of the extended world")
    with _timed(timings, "extended features"):
        data = _Data.of(world.transactions, fraud_feature_matrix(world.transactions), split)

    say("fraud: production model on the extended world")
    with _timed(timings, "production model"):
        estimator = _gradient_boosting(seed)
        production = _evaluate("hist gradient boosting", "extended",
                               f"all {len(FRAUD_FEATURE_NAMES)}", estimator, data)
    with _timed(timings, "extended, handbook features"):
        restricted = _evaluate("hist gradient boosting", "extended", "handbook 15",
                               _gradient_boosting(seed), data,
                               slice(0, len(HANDBOOK_FEATURE_NAMES)))

    say("fraud: rules vs ML vs rules + ML")
    with _timed(timings, "decisions"):
        hits = rule_hits(data.x[data.test])
        risks = _risks(hits, production.probabilities)
        scenarios = data.tx["fraud_scenario"].to_numpy()[data.test]

    model = TrainedModel(
        name="fraud",
        estimator=estimator,
        feature_names=FRAUD_FEATURE_NAMES,
        holdout=_holdout(data.x[data.test], seed),
        metrics=_model_metrics(production, restricted, int(data.train.sum())),
        training_data_hash=data_hash(data.x[data.train], data.y[data.train]),
        description=_description(world, split, production),
    )
    result = FraudTrainingResult(
        model, split, handbook, [production, restricted],
        decision_table(production.labels, risks),
        scenario_recall(scenarios, risks, REVIEW_AT),
        scenario_recall(scenarios, risks, DECLINE_AT),
        rule_table(hits, production.labels), summary(world), timings,
    )
    if spread_seeds:
        say(f"fraud: handbook benchmark on {len(spread_seeds)} more seeds")
        started = time.perf_counter()
        spread = _seed_spread(world.config, handbook, spread_seeds)
        result = replace(result, seed_spread=spread, spread_seeds=(seed, *spread_seeds),
                         spread_seconds=time.perf_counter() - started)
    say("fraud: writing the report")
    write_report(result, world, report_dir)
    model.extra_files["evaluation.json"] = evaluation_json(result).encode()
    model.extra_files[FRAUD_REFERENCE_FILE] = reference_json(data.x[data.train],
                                                       data.y[data.train]).encode()
    # Inputs from the rows it was fitted on; the score from the held-out week, since in-sample
    # scores are more confident than any live ones and would read as drift on the first day.
    model.extra_files[DRIFT_REFERENCE_FILE] = DriftReference.of(
        data.x[data.train], FRAUD_FEATURE_NAMES, production.probabilities,
        description="inputs: the training week's rows; score: the held-out test week's "
                    "probabilities").to_json().encode()
    return result


def reference_json(x: Matrix, y: npt.NDArray[Any]) -> str:
    """The typical transaction the fraud service explains against: each feature's median over
    the legitimate training rows. A decision's top ML factors are the features whose typical
    value would lower its score the most."""
    genuine = x[y == 0] if (y == 0).any() else x
    values = np.median(genuine, axis=0).astype(np.float32)
    return json.dumps({"description": "median of each feature over legitimate training rows",
                       "feature_names": list(FRAUD_FEATURE_NAMES),
                       "values": [float(v) for v in values]}, indent=2) + "\n"


def _risks(hits: BoolArray, probabilities: FloatArray) -> dict[str, FloatArray]:
    """The risk each system assigns: rules alone, the model alone, the brief's combination."""
    rules = rule_scores(hits)
    return {"rules": rules, "ML": probabilities,
            "rules + ML": combined_risk(rules, probabilities)}


def _model_metrics(production: ModelResult, restricted: ModelResult,
                   train_rows: int) -> dict[str, float]:
    return {
        **asdict(production.scores),
        "handbook_features_average_precision": restricted.scores.average_precision,
        "train_rows": float(train_rows),
        "test_rows": float(len(production.labels)),
        "test_fraud_rate": float(production.labels.mean()) if len(production.labels) else 0.0,
    }


def _description(world: TransactionWorld, split: Split, production: ModelResult) -> str:
    s = production.scores
    return (
        f"HistGradientBoosting over the {len(FRAUD_FEATURE_NAMES)} catalog fraud features, "
        f"trained on {split.train_start:%Y-%m-%d} + {split.train_days} days of the synthetic "
        f"transaction world (seed {world.config.seed}, {world.config.n_customers} customers); "
        f"test week from {split.test_start:%Y-%m-%d}: AUC ROC {s.auc_roc:.3f}, "
        f"AP {s.average_precision:.3f}, card precision@100 {s.card_precision_at_100:.3f}"
    )


def evaluation_json(result: FraudTrainingResult) -> str:
    """The evaluation tables as JSON, stored beside the model."""
    return json.dumps({
        "models": [{"name": r.name, "world": r.world, "features": r.features,
                    **asdict(r.scores), "fit_seconds": r.fit_seconds}
                   for r in result.handbook + result.extended],
        "decisions": [asdict(row) for row in result.decisions],
        "recall_at_review": result.recall_at_review,
        "recall_at_decline": result.recall_at_decline,
        "timings": result.timings,
    }, indent=2, default=float)


# --- Report -----------------------------------------------------------------------------------


def write_report(result: FraudTrainingResult, world: TransactionWorld, report_dir: Path) -> Path:
    """fraud.md and img/fraud-*.png under report_dir; returns the page's path."""
    (report_dir / "img").mkdir(parents=True, exist_ok=True)
    _plot_curves(result, report_dir / CURVES_PLOT)
    _plot_vs_handbook(result, report_dir / HANDBOOK_PLOT)
    _plot_decisions(result.decisions, report_dir / DECISIONS_PLOT)
    page = report_dir / "fraud.md"
    page.write_text(render(result, world))
    return page


def _plot_curves(result: FraudTrainingResult, path: Path) -> None:
    figure = Figure(figsize=(10, 8), layout="constrained")
    axes = figure.subplots(2, 2)
    for row, (title, results) in enumerate((("handbook world", result.handbook),
                                            ("extended world", result.extended))):
        roc, pr = axes[row]
        for r in results:
            fpr, tpr, _ = roc_curve(r.labels, r.probabilities)
            precision, recall, _ = precision_recall_curve(r.labels, r.probabilities)
            label = f"{r.name} ({r.features})"
            roc.plot(fpr, tpr, label=f"{label}, AUC {r.scores.auc_roc:.3f}")
            pr.plot(recall, precision, label=f"{label}, AP {r.scores.average_precision:.3f}")
        roc.plot([0, 1], [0, 1], color="grey", linestyle=":")
        roc.set(title=f"ROC, {title}, test week", xlabel="false positive rate",
                ylabel="true positive rate")
        pr.set(title=f"Precision-recall, {title}, test week", xlabel="recall",
               ylabel="precision", ylim=(0, 1.02))
        roc.legend(fontsize=7, loc="lower right")
        pr.legend(fontsize=7, loc="lower left")
    figure.savefig(path, dpi=100)


def _plot_vs_handbook(result: FraudTrainingResult, path: Path) -> None:
    ours = {r.name: r.scores for r in result.handbook}
    names = list(HANDBOOK_PUBLISHED)
    x = np.arange(len(names))
    figure = Figure(figsize=(11, 4), layout="constrained")
    for m, (axes, title) in enumerate(zip(
            figure.subplots(1, 3), ("AUC ROC", "average precision", "card precision@100"),
            strict=True)):
        published = [HANDBOOK_PUBLISHED[n][m] for n in names]
        measured = [_as_tuple(ours[OUR_STAND_IN[n]])[m] for n in names]
        axes.bar_label(axes.bar(x - 0.19, published, 0.38, label="handbook (published)"),
                       fmt="%.3f", fontsize=6)
        bars = axes.bar(x + 0.19, measured, 0.38, label="ours (measured, this world)")
        axes.bar_label(bars, fmt="%.3f", fontsize=6, padding=6)
        if result.seed_spread:
            per_seed = np.array([[_as_tuple(s)[m] for s in result.seed_spread[OUR_STAND_IN[n]]]
                                 for n in names])
            axes.errorbar(x + 0.19, measured, fmt="none", ecolor="black", capsize=3,
                          yerr=[measured - per_seed.min(axis=1), per_seed.max(axis=1) - measured],
                          label=f"ours, min-max over {per_seed.shape[1]} seeds")
        axes.set_xticks(x, [n.replace(" ", "\n") for n in names], fontsize=7)
        axes.set_title(title)
        axes.set_ylim((0.5, 1.0) if m == 0 else (0.0, 0.8) if m == 1 else (0.0, 0.45))
    figure.legend(*figure.axes[0].get_legend_handles_labels(), loc="outside lower center",
                  ncols=3, fontsize=8)
    figure.suptitle("Handbook protocol (train 7 d, delay 7 d, test 7 d); XGBoost rows: our "
                    "HistGradientBoosting", fontsize=9)
    figure.savefig(path, dpi=100)


def _as_tuple(scores: Scores) -> tuple[float, float, float]:
    return (scores.auc_roc, scores.average_precision, scores.card_precision_at_100)


def _plot_decisions(rows: list[DecisionRow], path: Path) -> None:
    figure = Figure(figsize=(11, 4), layout="constrained")
    x = np.arange(len(THRESHOLDS))
    panels = (("precision", 1.0, "%.2f"), ("recall", 1.0, "%.2f"),
              ("false-positive rate, %", 100.0, "%.3f"))
    for axes, (title, scale, fmt) in zip(figure.subplots(1, 3), panels, strict=True):
        metric = title.split(",")[0].replace("-", "_").replace(" ", "_")
        for offset, system in enumerate(SYSTEMS):
            values = scale * np.nan_to_num([getattr(r, metric) for r in rows
                                            if r.system == system])
            bars = axes.bar(x + (offset - 1) * 0.27, values, 0.27, label=system)
            axes.bar_label(bars, fmt=fmt, fontsize=6, rotation=90 if scale > 1 else 0,
                           padding=2)
        axes.set_xticks(x, [f"risk >= {t:g}" for t in THRESHOLDS])
        axes.set_title(title)
        axes.margins(y=0.15)
    figure.legend(*figure.axes[0].get_legend_handles_labels(), loc="outside lower center",
                  ncols=3, fontsize=8)
    figure.suptitle(f"Extended world, test week: risk = min(1, rules + {ML_WEIGHT:g} x ML); "
                    "ML alone: its probability", fontsize=9)
    figure.savefig(path, dpi=100)


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if np.isnan(value) else f"{value:.{digits}f}"


def render(result: FraudTrainingResult, world: TransactionWorld) -> str:
    """The evaluation page as markdown."""
    return "\n".join([
        *_render_setup(result, world),
        *_render_handbook(result),
        *_render_extended(result),
        *_render_decisions(result),
        *_render_notes(result),
    ]) + "\n"


def _render_setup(result: FraudTrainingResult, world: TransactionWorld) -> list[str]:
    cfg, s, split = world.config, result.world_summary, result.split
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    scenario_counts = ", ".join(f"{SCENARIO_NAMES[c]} {int(s[f'scenario_{c}']):,}"
                                for c in sorted(SCENARIO_NAMES) if c)
    return [
        "# Fraud detection: offline evaluation",
        "",
        "Generated by `python -m services.trainer.fraud --report-dir docs/evaluation"
        + (f" --spread {len(result.spread_seeds) - 1}" if result.spread_seeds else "")
        + "` (`make models` runs the same code",
        "without the extra seeds). Every number below was measured in that run.",
        "",
        "```",
        "  transaction world (seeded)  ->  features (catalog, point in time)  ->  models",
        "  |-- warm-up 37 d --|-- train 7 d --|-- delay 7 d --|-- test 7 d --|",
        "                       fit             labels not      scored: AUC, AP,",
        "                                       in yet          card precision@100,",
        "                                                       rules / ML / rules + ML",
        "```",
        "",
        "| run | |",
        "|---|---|",
        f"| date | {datetime.now(UTC):%Y-%m-%d} |",
        f"| machine | {os.cpu_count()} cores shared with other jobs, {platform.machine()}, "
        f"Python {platform.python_version()}, scikit-learn {sklearn.__version__} |",
        f"| world | seed {cfg.seed}, {cfg.n_customers:,} customers, {cfg.n_terminals:,} terminals,"
        f" {cfg.n_days} days from {cfg.start_date}, {int(s['transactions']):,} transactions, "
        f"fraud rate {s['fraud_rate']:.2%} |",
        f"| frauds by scenario | {scenario_counts} |",
        f"| split | train {split.train_start:%Y-%m-%d} + 7 d, delay 7 d, test "
        f"{split.test_start:%Y-%m-%d} + 7 d"
        + (" (the handbook's own dates)" if split.train_start == HANDBOOK_TRAIN_START else "")
        + " |",
        f"| timings | {timing}; total {sum(result.timings.values()):.1f} s |",
        "",
    ]


def _render_handbook(result: FraudTrainingResult) -> list[str]:
    ours = {r.name: r for r in result.handbook}
    lines = [
        "## 1. The handbook's protocol and features, next to its published table",
        "",
        "The handbook world alone (scenarios 1-3, the injected patterns left out), its 15",
        "features, its split. Published: the handbook's numbers for its own simulated data.",
        "",
        "| model | AUC ROC (handbook / ours) | AP (handbook / ours) "
        "| card precision@100 (handbook / ours) | fit |",
        "|---|---|---|---|---|",
    ]
    for name, published in HANDBOOK_PUBLISHED.items():
        r = ours[OUR_STAND_IN[name]]
        measured = _as_tuple(r.scores)
        cells = [f"{p:.3f} / **{_fmt(m)}**" for p, m in zip(published, measured, strict=True)]
        label = name if OUR_STAND_IN[name] == name else f"{name} (ours: {r.name})"
        lines.append(f"| {label} | {' | '.join(cells)} | {r.fit_seconds:.1f} s |")
    lines += ["", f"![ROC and PR curves]({CURVES_PLOT})", "",
              f"![Ours vs the handbook]({HANDBOOK_PLOT})", ""]
    return lines + _render_spread(result)


def _render_spread(result: FraudTrainingResult) -> list[str]:
    if not result.seed_spread:
        return []
    n = len(next(iter(result.seed_spread.values())))
    lines = [
        f"The same benchmark on {n} worlds (seeds {', '.join(map(str, result.spread_seeds))}), "
        f"{result.spread_seconds:.0f} s for the extra seeds: mean ± standard deviation "
        "(min-max), and on how many worlds ours beats the published number.",
        "",
        "| model | AUC ROC | AP | card precision@100 |",
        "|---|---|---|---|",
    ]
    for name, published in HANDBOOK_PUBLISHED.items():
        per_seed = np.array([_as_tuple(s) for s in result.seed_spread[OUR_STAND_IN[name]]])
        cells = []
        for m, target in enumerate(published):
            values = per_seed[:, m]
            cells.append(f"{values.mean():.3f} ± {values.std(ddof=1) if n > 1 else 0.0:.3f} "
                         f"({values.min():.3f}-{values.max():.3f}), "
                         f"{int((values > target).sum())}/{n} > {target:.3f}")
        lines.append(f"| {name} (ours: {OUR_STAND_IN[name]}) | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _render_extended(result: FraudTrainingResult) -> list[str]:
    lines = [
        "## 2. The extended world: what real-time features add",
        "",
        "All six scenarios; the same model and split, over the handbook's 15 features and over "
        "the whole catalog (velocity, travel, device, IP, merchant, type).",
        "",
        "| model | features | AUC ROC | AP | card precision@100 | fit |",
        "|---|---|---|---|---|---|",
    ]
    for r in result.extended:
        s = r.scores
        lines.append(f"| {r.name} | {r.features} | {_fmt(s.auc_roc)} | "
                     f"{_fmt(s.average_precision)} | {_fmt(s.card_precision_at_100)} | "
                     f"{r.fit_seconds:.1f} s |")
    return [*lines, ""]


def _render_decisions(result: FraudTrainingResult) -> list[str]:
    lines = [
        "## 3. Rules, ML, and both",
        "",
        f"risk = min(1, sum of fired rule weights + {ML_WEIGHT:g} x ML probability); decline at "
        f"{DECLINE_AT:g}, review at {REVIEW_AT:g}. \"ML\" alone uses the probability as the risk. ",
        "Extended world, test week (the protocol's test set).",
        "",
        "| system | risk >= | precision | recall | false-positive rate | flagged |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r.system} | {r.threshold:g} | {_fmt(r.precision)} | {_fmt(r.recall)} | "
              f"{_fmt(r.false_positive_rate, 5)} | {r.flagged_share:.3%} |"
              for r in result.decisions]
    lines += ["", f"![Rules vs ML vs both]({DECISIONS_PLOT})", "",
              "Recall by scenario (share of each scenario's test transactions reaching the "
              "threshold):", "",
              "| scenario | " + " | ".join(f"{s} >= {t:g}" for s in SYSTEMS
                                         for t in (REVIEW_AT, DECLINE_AT)) + " |",
              "|---|" + "---|" * (2 * len(SYSTEMS))]
    for c in result.recall_at_review["rules"]:
        cells = [_fmt(table[system].get(c, float("nan")), 2) for system in SYSTEMS
                 for table in (result.recall_at_review, result.recall_at_decline)]
        lines.append(f"| {c} {SCENARIO_NAMES[c]} | " + " | ".join(cells) + " |")
    lines += ["", "The baseline rules (the rules engine proper lives in services/fraud):", "",
              "| rule | weight | fires when | on frauds | on genuine | precision |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r.name} | {r.weight:g} | {r.reason} | {r.fraud_hit_rate:.1%} | "
              f"{r.genuine_hit_rate:.3%} | {_fmt(r.precision, 2)} |" for r in result.rules]
    return [*lines, ""]


def _render_notes(result: FraudTrainingResult) -> list[str]:
    return [
        "## How to read this",
        "",
        "- Both worlds come from one generator (services/trainer/worlds/transactions.py): the "
        "handbook's simulator, to which three patterns add *new* transactions, so the handbook "
        "world is the extended one minus scenarios 4-6.",
        "- Features follow services/designs/model_features.py, point in time: customer windows "
        "exclude the current transaction (the handbook's include it), terminal risk sees only "
        "labels older than 7 days (services/trainer/fraud_features.py).",
        "- Card precision@100 follows the handbook: per test day, the 100 cards with the highest "
        "maximum score, cards found compromised on earlier test days removed.",
        "- HistGradientBoosting bins each feature into at most 255 quantiles; a hard threshold in "
        "the tail (scenario 1: amount > 220) falls inside the last bin, which costs it average "
        "precision against the random forest's exact splits.",
        f"- Under the brief's formula the model alone can never decline ({ML_WEIGHT:g} x "
        f"probability < {DECLINE_AT:g}): a rule has to fire. The frauds only the model sees "
        "(handbook scenarios 1-3) are reviewed, not declined, which is why rules + ML declines "
        "fewer frauds than the model's own probability would. A policy that lets a very "
        "confident model decline (e.g. risk = max(rules + 0.7 ML, ML)) is the services' choice "
        "to make; these tables give the numbers for either.",
        "- Hyper-parameters were chosen on worlds with seeds 1 and 2, never on the reported "
        "world's test week; the seed table includes those two worlds.",
        "- One week of test data holds a few hundred frauds: differences under about 0.01 AUC "
        "or 0.03 AP are within what another seed changes.",
    ]


# --- CLI --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """CLI: generate the default world, train, and write the evaluation page."""
    parser = argparse.ArgumentParser(description="Train and evaluate the fraud models.")
    parser.add_argument("--report-dir", type=Path, default=Path("docs/evaluation"))
    parser.add_argument("--days", type=int, default=TransactionWorldConfig.n_days)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spread", type=int, default=0, metavar="N",
                        help="repeat the handbook benchmark on N more seeds (about 10 s each)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    end = pd.Timestamp(TransactionWorldConfig.start_date) + pd.Timedelta(
        days=TransactionWorldConfig.n_days)
    config = TransactionWorldConfig(n_days=args.days, seed=args.seed,
                                    start_date=(end - pd.Timedelta(days=args.days)).date())
    world = generate_transactions(config)
    result = train_fraud(world, args.report_dir, generation_seconds=time.perf_counter() - started,
                         spread_seeds=tuple(range(args.seed + 1, args.seed + 1 + args.spread)))
    headline = result.model.metrics | {"seconds": sum(result.timings.values())}
    print(json.dumps(headline, indent=2))  # noqa: T201  (a CLI prints its result)


if __name__ == "__main__":
    main()
