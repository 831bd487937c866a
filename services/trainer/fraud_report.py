"""The fraud evaluation page: fraud.md and its three plots, rendered from one training run."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from services.trainer.artifacts import TrainedModel
from services.trainer.fraud_metrics import (
    SYSTEMS,
    THRESHOLDS,
    DecisionRow,
    RuleRow,
    Scores,
)
from services.trainer.fraud_models import ModelResult
from services.trainer.fraud_protocol import Split
from services.trainer.fraud_rules_baseline import DECLINE_AT, ML_WEIGHT, REVIEW_AT
from services.trainer.worlds.transactions import SCENARIO_NAMES, TransactionWorld

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
        "without the extra seeds, on the dev stack's 66-day world: the same weeks after 8 more "
        "days of warm-up, so the seeded lake holds what `make retrain-fraud` needs; its draw, "
        "and so its numbers, differ). Every number below was measured in that run.",
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

