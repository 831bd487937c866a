"""Writes the recommendations evaluation page and its plots from a training run's results."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from matplotlib.figure import Figure

from services.trainer.recs_result import RecsTrainingResult
from services.trainer.worlds.viewing import ViewingWorld

METRIC_LABELS = {
    "recall_at_10": "recall@10",
    "ndcg_at_10": "NDCG@10",
    "coverage_at_10": "coverage@10",
    "diversity_at_10": "diversity@10",
}
TABLE_LABELS = METRIC_LABELS | {"expected_clicks_at_10": "expected clicks@10"}
METRICS_PLOT = "img/recs-metrics.png"
CURVE_PLOT = "img/recs-recall-at-k.png"
LONG_TAIL_PLOT = "img/recs-long-tail.png"


def write_report(result: RecsTrainingResult, world: ViewingWorld, report_dir: Path) -> Path:
    """recommendations.md and img/recs-*.png under report_dir; returns the page's path."""
    (report_dir / "img").mkdir(parents=True, exist_ok=True)
    _plot_metrics(result.evaluation, report_dir / METRICS_PLOT)
    _plot_curves(result.recall_curves, report_dir / CURVE_PLOT)
    _plot_long_tail(world, report_dir / LONG_TAIL_PLOT)
    page = report_dir / "recommendations.md"
    page.write_text(render(result, world))
    return page


def _plot_metrics(evaluation: pd.DataFrame, path: Path,
                  title: str = "Held-out future week, full catalog (higher is better)") -> None:
    evaluation = evaluation[list(METRIC_LABELS)]  # the shares; expected clicks has its own scale
    figure = Figure(figsize=(9, 4.2), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(evaluation.index)
    x = np.arange(len(evaluation.columns))
    for offset, (algorithm, row) in enumerate(evaluation.iterrows()):
        bars = axes.bar(x + offset * width, row.to_numpy(), width, label=str(algorithm))
        axes.bar_label(bars, fmt="%.2f", fontsize=6)
    axes.set_xticks(x + width * (len(evaluation.index) - 1) / 2,
                    [METRIC_LABELS[c] for c in evaluation.columns])
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.legend(fontsize=8, ncols=3)
    figure.savefig(path, dpi=110)


def _plot_curves(curves: pd.DataFrame, path: Path,
                 title: str = "recall@k on the held-out future") -> None:
    figure = Figure(figsize=(6.5, 4), layout="constrained")
    axes = figure.subplots()
    for algorithm, row in curves.iterrows():
        axes.plot(row.index.to_numpy(), row.to_numpy(), marker="o", label=str(algorithm))
    axes.set_xscale("log")
    axes.set_xticks(list(curves.columns), [str(k) for k in curves.columns])
    axes.set_xlabel("k (list length)")
    axes.set_ylabel("recall@k")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=110)


def _plot_long_tail(world: ViewingWorld, path: Path) -> None:
    counts = np.sort(world.train["content_id"].value_counts().to_numpy())[::-1]
    figure = Figure(figsize=(6.5, 3.5), layout="constrained")
    axes = figure.subplots()
    axes.plot(np.arange(1, len(counts) + 1), counts)
    axes.set_yscale("log")
    axes.set_xlabel("title, by rank of watches")
    axes.set_ylabel("watches before the split")
    axes.set_title("Popularity long tail of the viewing world")
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=110)


def _table(frame: pd.DataFrame, header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        cells = [f"{value:.3f}" for value in row.to_numpy()]
        lines.append(f"| {index} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _world_facts(world: ViewingWorld) -> dict[str, str]:
    config, train, future = world.config, world.train, world.future
    per_user = world.interactions.groupby("user_id").size()
    counts = train["content_id"].value_counts().to_numpy()
    top_decile = np.sort(counts)[::-1][: len(world.titles) // 10].sum() / counts.sum()
    profiles = world.users["profile"].value_counts(normalize=True)
    return {
        "users": f"{len(world.users):,} ({profiles.get('kids', 0):.0%} kids profiles, "
                 f"{profiles.get('teen', 0):.0%} teen)",
        "titles": f"{len(world.titles):,} in 18 genres, 1-3 each",
        "watch events": f"{len(world.interactions):,} over {config.days} days "
                        f"(median {per_user.median():.0f} per user, max {per_user.max()})",
        "held-out future": f"last {config.holdout_days} days: {len(future):,} events of "
                           f"{future['user_id'].nunique():,} users",
        "long tail": f"the top 10% of titles get {top_decile:.0%} of the watches",
        "completed / rated": f"{world.interactions['completed'].mean():.0%} / "
                             f"{world.interactions['rating'].notna().mean():.0%} of watches",
    }


def render(result: RecsTrainingResult, world: ViewingWorld) -> str:
    """The page's markdown: every number comes from `result` and `world`."""
    m = result.ranker.metrics
    evaluation = result.evaluation
    curves = result.recall_curves
    facts = "\n".join(f"| {k} | {v} |" for k, v in _world_facts(world).items())
    timings = "\n".join(f"| {k} | {v:.1f} s |" for k, v in result.timings.items())
    total = sum(result.timings.values())
    best_other = evaluation.drop(index="ranker")["recall_at_10"]
    lift = m["recall_at_10"] / best_other.max() - 1.0
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    machine = (f"{platform.machine()}, {os.cpu_count()} shared cores, Python "
               f"{platform.python_version()}, numpy {np.__version__}, "
               f"scikit-learn {sklearn.__version__}")
    return _TEMPLATE.format(
        seed=world.config.seed, n_users=len(world.users), n_titles=len(world.titles),
        when=when, machine=machine, facts=facts, timings=timings, total=total,
        metrics=_table(evaluation, ["algorithm", *(TABLE_LABELS[c] for c in evaluation.columns)]),
        curves=_table(curves, ["algorithm", *(f"recall@{k}" for k in curves.columns)]),
        metrics_plot=METRICS_PLOT, curve_plot=CURVE_PLOT, long_tail_plot=LONG_TAIL_PLOT,
        eval_users=int(m["eval_users"]), candidate_recall=m["candidate_recall"],
        train_pairs=int(m["train_pairs"]), train_users=int(m["train_users"]),
        positive_rate=m["train_positive_rate"], iterations=int(m["iterations"]),
        lift=lift, best_other=best_other.idxmax(),
        holdout_rows=len(result.ranker.holdout),
        dim=result.artifacts.item_embeddings.shape[1],
        content_dim=result.artifacts.content_vectors.shape[1],
        holdout=world.config.holdout_days,
        history_days=world.config.days - 2 * world.config.holdout_days,
        observations=_observations(evaluation),
    )


def _observations(evaluation: pd.DataFrame) -> str:
    recall, diversity = evaluation["recall_at_10"], evaluation["diversity_at_10"]
    coverage, ndcg = evaluation["coverage_at_10"], evaluation["ndcg_at_10"]
    clicks = evaluation["expected_clicks_at_10"]
    best, least_diverse, most_clicks = recall.idxmax(), diversity.idxmin(), clicks.idxmax()
    blend_vs_mf = recall["hybrid blend"] - recall["matrix factorization"]
    lines = [
        f"- Best recall@10: {best} ({recall[best]:.3f}); popularity, the floor, reaches "
        f"{recall['popularity']:.3f} and covers {coverage['popularity']:.1%} of the catalog "
        "(everyone gets nearly the same list).",
        f"- Least diverse lists: {least_diverse} ({diversity[least_diverse]:.2f}); the blend's "
        f"diversity is {diversity['hybrid blend']:.2f} against matrix factorization's "
        f"{diversity['matrix factorization']:.2f}.",
        f"- The blend adds content and trending to the collaborative score: recall@10 "
        f"{blend_vs_mf:+.3f} against matrix factorization alone.",
        f"- Ranker against blend: recall@10 {recall['ranker'] - recall['hybrid blend']:+.3f}, "
        f"NDCG@10 {ndcg['ranker'] - ndcg['hybrid blend']:+.3f}.",
        f"- Expected clicks@10 under the world's click model: most for {most_clicks} "
        f"({clicks[most_clicks]:.2f}), ranker {clicks['ranker']:.2f}, popularity "
        f"{clicks['popularity']:.2f}. The click model scores a user's standing taste (the "
        "generator's logit); it has no notion of this week's buzz, which is part of what the "
        "ranker learns (trending, popularity). An A/B simulation on it measures taste, not "
        "timeliness.",
    ]
    return "\n".join(lines)


_TEMPLATE = """# Recommendations: offline evaluation

Six ways to pick ten titles for a user, scored on what users actually watched in a week they
had not lived yet. Generated by `services/trainer/recs.py` (`train_recommendations`); rerun
`make models` to regenerate this page and its plots.

**How measured:** viewing world seed {seed} ({n_users:,} users, {n_titles:,} titles), run on
{when}, {machine}.
Timings are wall clock on that machine, shared with other work.

## The setup

```
 |----- history ({history_days} d) -----|-- validation ({holdout} d) --|-- future ({holdout} d) --|
 state as of t_val -> embeddings, features   ranker labels
 state as of split -> embeddings, features ----------------> evaluation labels

 watch events -> state as of t: per user  taste = sum w*V[title], genre profile, top genres,
                                          watch count
                                per title popularity (30 d), trending (24 h half-life)
        |
        +--> cf top-100 --+
        +--> content top-50 --> union (eligible: unwatched, within the maturity limit)
        +--> trending top-50 -+           |
                                          v
               RANKER_FEATURES per (user, title) -> HistGradientBoosting -> top 10
```

| world | |
|---|---|
{facts}

![watches per title]({long_tail_plot})

The world is synthetic with known ground truth (`services/trainer/worlds/viewing.py`): users
pick titles by a latent-factor taste, a genre preference, a long-tailed appeal and a boost for
new titles; titles released inside the window get a burst of watches right after release.

## Results

Evaluated users: {eval_users:,} (history before the split and at least one watch after it).
Metrics are over the **full catalog**: every title a user has not watched and may watch is a
possible recommendation, no sampled negatives.

{metrics}

![metrics per algorithm]({metrics_plot})

{curves}

![recall at k]({curve_plot})

The ranker's recall@10 is {lift:+.1%} relative to the best other algorithm ({best_other}). Its
ceiling is the candidate union: {candidate_recall:.1%} of the future watches are among the
candidates; a title outside them scores nothing.

What the numbers say (computed from the table above):
{observations}

## Definitions

**Algorithms**
- *popularity*: titles by watches in the last 30 days (the `popularity` feature).
- *item-kNN*: item-item cosine of binary co-watching, each title keeping its 100 nearest;
  a user's score for a title is the sum over the watched titles of weight x similarity.
- *matrix factorization* (PureSVD): item embeddings V ({dim} dims) are the top right singular
  vectors of the user x title weight matrix whose columns are scaled by
  (1 + watchers)^-0.25 (damps blockbusters). A user's taste vector is the fold-in
  `taste_vector(V, watched, weights)` = sum of weight x V[title] (weight 1 for a completed
  watch, 0.5 otherwise); `cf_score` = taste . V[title]. The stream processor updates the
  taste vector with `taste += weight * V[title]` per watch event; training uses the same
  function (tested).
- *EASE* (Steck, 2019): the closed-form item-item model B = I - P diag(1/diag(P)),
  P = (X^T X + lambda I)^-1 with a zero diagonal, X the binary user x title matrix; a user's
  score for a title is their row of X times B. lambda is the value in
  (10, 30, 100, 300, 1000, 3000) with the best recall@10 on the validation week.
- *hybrid blend* (the design brief): 0.4 cf + 0.3 content + 0.2 trending + 0.1 diversity.
  cf_score, content_score and trending_score are each min-max scaled to [0, 1] per user over
  the titles eligible for that user. Diversity is maximal marginal relevance on genres: 1 minus
  the highest genre-Jaccard similarity between the title and the titles already picked for the
  list (1 for the first pick). The list is built greedily, one pick at a time, from the user's
  best 200 titles by the other three terms.
- *ranker*: `HistGradientBoostingClassifier` on the seven `RANKER_FEATURES`
  (`services/designs/model_features.py`) for the candidate union, label "watched in the next 7
  days".
  Fit on the validation week ({train_users:,} users, {train_pairs:,} pairs after keeping all
  positives and 20% of negatives, positive rate {positive_rate:.1%}, {iterations} trees),
  with features and embeddings as of the start of that week, so the held-out future is never
  seen. {holdout_rows:,} held-out test rows travel with the model for the ONNX parity test.

**Features** (as of an instant t, from watch events before t)
- `content_score`: cosine of the user's genre profile and the title's content vector. A content
  vector ({content_dim} dims) is [genre multi-hot / sqrt(genres), 0.5 x release-era one-hot
  (<1990, 1990s, 2000s, 2010s, 2020s), 0.5 x maturity one-hot], unit length; the profile is the
  weighted sum of the content vectors of the watched titles.
- `genre_match`: share of the title's genres among the user's top 3 genres by weighted watch
  count (ties to the genre listed first; genres never watched are not "top").
- `popularity`: log1p(watches in the 30 days before t). `trending_score`:
  log1p(sum over watches of 2^-(hours since the watch / 24)). `release_age_years`: (t - release
  date) / 365.25 days. `user_activity`: log1p(the user's watch events).

**Metrics** (per user, then the mean over users)
- recall@10 = (titles in the top 10 watched in the future) / (titles watched in the future).
- NDCG@10 = sum over hits of 1/log2(rank + 1), over the same sum for a perfect list.
- coverage@10 = share of the catalog in at least one user's top 10.
- diversity@10 = mean pairwise genre-Jaccard distance in a top 10, where the distance of two
  titles is 1 - (genres they share) / (genres of either).
- expected clicks@10 = sum over the 10 slots of the world's click model
  (`click_probability`: (1 + slot)^-0.8 x sigmoid(true logit - offset)); what an A/B
  simulation of the algorithm would measure on average, per impression of a list.

## Timings

| step | wall clock |
|---|---|
{timings}
| total | {total:.1f} s |

(Writing this page and its plots comes after the table and is not in it.)
"""
