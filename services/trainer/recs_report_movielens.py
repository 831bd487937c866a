"""Writes the MovieLens 100k evaluation page, its plots and its machine-readable results."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sklearn

from services.trainer.recs_report import METRIC_LABELS, _plot_curves, _plot_metrics, _table
from services.trainer.worlds.movielens import COMPLETED_RATING, PACKAGE_PIN, MovieLensWorld

if TYPE_CHECKING:
    from services.trainer.recs import RecsTrainingResult

PAGE = "movielens.md"
RESULTS_JSON = "movielens.json"
RESULTS_CSV = "movielens.csv"
METRICS_PLOT = "img/movielens-metrics.png"
CURVE_PLOT = "img/movielens-recall-at-k.png"
WINDOW_CHOICES = (14, 28, 42, 56, 70)

PUBLISHED: list[dict[str, Any]] = [
    {
        "source": "Recommenders.jl README, section 'Movielens 100k'",
        "url": "https://github.com/yng87/Recommenders.jl",
        "protocol": "random 80/20 split of all ratings, every rating an implicit positive, "
                    "full-catalog ranking",
        "results": {
            "Most popular": {"recall_at_10": 0.1182, "ndcg_at_10": 0.2197},
            "ItemkNN": {"recall_at_10": 0.2180, "ndcg_at_10": 0.3986},
            "Matrix factorization": {"recall_at_10": 0.2416, "ndcg_at_10": 0.4402},
            "BPR MF": {"recall_at_10": 0.2316, "ndcg_at_10": 0.4083},
            "SLIM ElasticNet": {"recall_at_10": 0.2385, "ndcg_at_10": 0.4359},
        },
    },
]
"""Published full-ranking figures on MovieLens 100k, as their sources print them."""


def write_movielens_report(result: RecsTrainingResult, world: MovieLensWorld,
                           report_dir: Path) -> Path:
    """movielens.md, movielens.json, movielens.csv and img/movielens-*.png under report_dir."""
    (report_dir / "img").mkdir(parents=True, exist_ok=True)
    window = f"{world.holdout_days}-day held-out future"
    _plot_metrics(result.evaluation[list(METRIC_LABELS)], report_dir / METRICS_PLOT,
                  title=f"MovieLens 100k, {window}, full catalog (higher is better)")
    _plot_curves(result.recall_curves, report_dir / CURVE_PLOT,
                 title=f"MovieLens 100k: recall@k on the {window}")
    facts = results(result, world)
    (report_dir / RESULTS_JSON).write_text(json.dumps(facts, indent=2) + "\n")
    table = result.evaluation.join(result.intervals)
    table.index.name = "algorithm"
    table.to_csv(report_dir / RESULTS_CSV, float_format="%.6f")
    page = report_dir / PAGE
    page.write_text(render(result, world, facts))
    return page


def _split_facts(world: MovieLensWorld) -> dict[str, Any]:
    frame, split = world.interactions, pd.Timestamp(world.split)
    start = split - pd.Timedelta(days=world.holdout_days)
    history = frame[frame["timestamp"] < start]
    validation = frame[(frame["timestamp"] >= start) & (frame["timestamp"] < split)]
    future = frame[frame["timestamp"] >= split]
    per_user = frame.groupby("user_id")["timestamp"]
    one_day = float(((per_user.max() - per_user.min()) < pd.Timedelta(days=1)).mean())
    end = pd.Timestamp(world.end)
    scorable = {}
    for days in WINDOW_CHOICES:  # users on both sides of a cut `days` before the end
        cut = end - pd.Timedelta(days=days)
        before = set(frame.loc[frame["timestamp"] < cut, "user_id"])
        scorable[str(days)] = len(before & set(frame.loc[frame["timestamp"] >= cut, "user_id"]))
    return {
        "ratings": len(frame), "users": len(world.users), "titles": len(world.titles),
        "first_rating": frame["timestamp"].min().isoformat(),
        "last_rating": frame["timestamp"].max().isoformat(),
        "validation_start": start.isoformat(), "split": split.isoformat(),
        "end": pd.Timestamp(world.end).isoformat(), "window_days": world.holdout_days,
        "history_ratings": len(history), "validation_ratings": len(validation),
        "future_ratings": len(future),
        "completed_share": float(frame["completed"].mean()),
        "users_rating_within_one_day": one_day,
        "scorable_users_by_window_days": scorable,
    }


def results(result: RecsTrainingResult, world: MovieLensWorld) -> dict[str, Any]:
    """Everything the page says, machine-readable: the page renders from this."""
    m = result.ranker.metrics
    evaluation = result.evaluation.join(result.intervals)
    return {
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python -m services.trainer.recs --dataset movielens "
                   "--report-dir docs/evaluation",
        "machine": {"arch": platform.machine(), "cores": os.cpu_count(),
                    "note": "shared with other work"},
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "pandas": pd.__version__, "scikit-learn": sklearn.__version__,
                     "data": PACKAGE_PIN},
        "data": _split_facts(world),
        "protocol": {
            "split": "global time cut", "k": 10, "catalog": "full (no sampled negatives)",
            "relevant": "titles the user rated in the held-out future window",
            "watch": f"every rating; completed (weight 1) when rating >= {COMPLETED_RATING}, "
                     "else partial (weight 0.5)",
            "eval_users": int(m["eval_users"]), "bootstrap_resamples": 1_000,
        },
        "evaluation": {str(a): {k: float(v) for k, v in row.items()}
                       for a, row in evaluation.iterrows()},
        "recall_curves": {str(a): {str(k): float(v) for k, v in row.items()}
                          for a, row in result.recall_curves.iterrows()},
        "ease_validation_recall_at_10": {f"{lam:g}": float(v)
                                         for lam, v in result.ease_validation.items()},
        "ranker": {k: float(v) for k, v in m.items()},
        "timings_s": {k: round(float(v), 2) for k, v in result.timings.items()},
        "published": PUBLISHED,
    }


def _results_table(evaluation: pd.DataFrame, intervals: pd.DataFrame) -> str:
    lines = ["| algorithm | recall@10 | 95% interval | NDCG@10 | 95% interval | coverage@10 "
             "| diversity@10 |", "|---|---|---|---|---|---|---|"]
    for algorithm, row in evaluation.iterrows():
        ci = intervals.loc[algorithm]
        lines.append(
            f"| {algorithm} | {row['recall_at_10']:.3f} | {ci['recall_at_10_low']:.3f}-"
            f"{ci['recall_at_10_high']:.3f} | {row['ndcg_at_10']:.3f} | "
            f"{ci['ndcg_at_10_low']:.3f}-{ci['ndcg_at_10_high']:.3f} | "
            f"{row['coverage_at_10']:.3f} | {row['diversity_at_10']:.3f} |")
    return "\n".join(lines)


def _published_table() -> str:
    lines = []
    for source in PUBLISHED:
        lines += [f"[{source['source']}]({source['url']}): {source['protocol']}.", "",
                  "| algorithm | recall@10 | NDCG@10 |", "|---|---|---|"]
        lines += [f"| {a} | {r['recall_at_10']:.4f} | {r['ndcg_at_10']:.4f} |"
                  for a, r in source["results"].items()]
        lines.append("")
    return "\n".join(lines)


def _observations(evaluation: pd.DataFrame, intervals: pd.DataFrame, users: int) -> str:
    recall = evaluation["recall_at_10"]
    best = str(recall.idxmax())
    collaborative = recall[["item-kNN", "matrix factorization", "EASE"]]
    beaten = [str(a) for a, v in collaborative.items() if v < recall["popularity"]]
    overlapping = [str(a) for a in recall.index if a != best
                   and intervals.loc[a, "recall_at_10_high"] >= intervals.loc[best,
                                                                               "recall_at_10_low"]]
    lines = [f"- Best recall@10: {best} ({recall[best]:.3f}); popularity reaches "
             f"{recall['popularity']:.3f}."]
    if beaten:
        lines.append(
            f"- Popularity beats {', '.join(beaten)} here, while the random-split figures below "
            "put it last: on a global time cut, what is being rated right now is a strong "
            "signal (the users scored are those still rating months later, and they rate the "
            "current releases). The blend and the ranker see trending and popularity as "
            "features.")
    lines.append(f"- Intervals overlapping the best's: {', '.join(overlapping) or 'none'}; "
                 f"{users} users cannot separate algorithms a few points apart.")
    return "\n".join(lines)


def render(result: RecsTrainingResult, world: MovieLensWorld, facts: dict[str, Any]) -> str:
    """The page's markdown: every number comes from `facts` (movielens.json) or `result`."""
    d, m = facts["data"], result.ranker.metrics
    ease = result.ease_validation
    return _TEMPLATE.format(
        generated=facts["generated"], machine=facts["machine"], versions=facts["versions"],
        ratings=d["ratings"], users=d["users"], titles=d["titles"],
        first=d["first_rating"][:10], last=d["last_rating"][:10],
        validation_start=d["validation_start"][:10], split=d["split"][:10], end=d["end"][:10],
        window=d["window_days"], history=d["history_ratings"], validation=d["validation_ratings"],
        future=d["future_ratings"], completed=d["completed_share"],
        one_day=d["users_rating_within_one_day"], completed_rating=COMPLETED_RATING,
        eval_users=int(m["eval_users"]), train_users=int(m["train_users"]),
        train_pairs=int(m["train_pairs"]), candidate_recall=m["candidate_recall"],
        table=_results_table(result.evaluation, result.intervals),
        curves=_table(result.recall_curves,
                      ["algorithm", *(f"recall@{k}" for k in result.recall_curves.columns)]),
        ease_table=_table(ease.to_frame().rename(index=lambda lam: f"lambda {lam:g}"),
                          ["EASE", "validation recall@10"]),
        ease_lambda=float(ease.idxmax()),
        scorable=", ".join(f"{k} d: {v}"
                           for k, v in d["scorable_users_by_window_days"].items()),
        observations=_observations(result.evaluation, result.intervals, int(m["eval_users"])),
        metrics_plot=METRICS_PLOT, curve_plot=CURVE_PLOT, published=_published_table(),
        timings="\n".join(f"| {k} | {v:.1f} s |" for k, v in facts["timings_s"].items()),
    )


_TEMPLATE = """# MovieLens 100k: offline evaluation

The recommender's trainer run on real behaviour no one here wrote: GroupLens's MovieLens 100k,
through the same code as the synthetic viewing world (`services/trainer/recs.py`), six ways to
pick ten titles scored on what users rated in weeks the models had not seen. Generated by
`python -m services.trainer.recs --dataset movielens --report-dir docs/evaluation`; every number
below is in [movielens.json](movielens.json) (the table also in [movielens.csv](movielens.csv)).

**How measured:** {generated}, {machine[arch]}, {machine[cores]} shared cores, Python
{versions[python]}, numpy {versions[numpy]}, pandas {versions[pandas]}, scikit-learn
{versions[scikit-learn]}; data from the `{versions[data]}` wheel, read at run time (GroupLens's
terms forbid redistributing it, so the repository holds none of it).

## The data as a viewing world

| | |
|---|---|
| ratings | {ratings:,} from {first} to {last} |
| users / titles | {users:,} / {titles:,}, ids as MovieLens has them ("1".."943", "1".."1682") |
| genres | MovieLens's 19 flags (including "unknown"): the genre vocabulary the artifacts carry |
| watches | every rating, at its time; completed (weight 1) if rated >= {completed_rating} \
({completed:.0%} are), else partial (0.5) |
| release date | 1 January of the release year (the one title without a year: the catalog median) |
| maturity | none in MovieLens: every title level 0, every user limit 4, so nothing is filtered |

`services/trainer/worlds/movielens.py` documents each choice.

## Protocol: a global time cut

```
 {first}          {validation_start}         {split}              {end}
 |------ history ------|---- validation ({window} d) ----|---- future ({window} d) ----|
   {history:,} ratings          {validation:,} ratings             {future:,} ratings
 state as of {validation_start} -> embeddings, features, kNN, EASE  -> ranker labels, EASE lambda
 state as of {split} -> embeddings, features, kNN, EASE -------------------> evaluation labels
```

- **Why a global cut, not leave-last-n-out per user:** it is what the service lives through.
  Every model, popularity and trending are taken as of one instant, so nothing rated after it,
  by the user or by anyone else, reaches training. Per-user leave-last-out evaluates more users
  but trains on other users' later ratings (the leak Ji et al., "A Critical Study on Data
  Leakage in Recommender System Offline Evaluation", ACM TOIS 2023, measure).
- **Why {window}-day windows:** {one_day:.0%} of MovieLens 100k's users rated everything within
  one day, so only users active on both sides of a cut can be scored. Users on both sides of a
  cut this many days before the end: {scorable}. {window} days is where the count stops
  growing, and longer windows only shrink the history. The validation window is as long as the
  future, as in the synthetic world.
- **Who is scored:** the {eval_users} users with ratings before the split and after it; a
  title is relevant if they rated it in the future window. **Full catalog:** every title the
  user has not rated is a candidate, no sampled negatives.
- **Tuned on validation only:** the ranker is fit on the validation window ({train_users} users,
  {train_pairs:,} pairs), EASE's lambda is chosen there ({ease_lambda:g}); the future is used
  once, for the table below.
- **Noise:** with {eval_users} users, the intervals are 95% percentile bootstraps over users
  (1,000 resamples); differences inside them are not findings.

## Results

{table}

![metrics per algorithm]({metrics_plot})

{curves}

![recall at k]({curve_plot})

EASE on the validation window (lambda picked here, then used once on the future):

{ease_table}

What the numbers say (computed from the table above):
{observations}
- The ranker can only reorder its candidates (cf top-100 + content top-50 + trending top-50):
  {candidate_recall:.1%} of the future ratings are among them.

## Published figures, for context

Full-ranking recall@10 and NDCG@10 on MovieLens 100k as published:

{published}
How the protocols differ: a **random** split puts each user's ratings from the whole seven
months on both sides, so every one of the 943 users is scored, training sees the "future" of
everyone, and the test titles are a user's taste at large rather than what they rate next.
Figures from random splits are higher and rank popularity last; they are not comparable with
the table above, only a sanity check of scale (our collaborative models on a random split would
be expected near them). RecBole's default for general recommendation is also a random split
(ratio 8:1:1 per user).

## Definitions

The algorithms, features and metrics are the synthetic world's, defined on
[recommendations.md](recommendations.md); EASE is B = I - P diag(1/diag(P)),
P = (X^T X + lambda I)^-1, zero diagonal, X the binary user x title matrix (Steck, "Embarrassingly
Shallow Autoencoders for Sparse Data", WWW 2019). There is no click model for MovieLens, so no
expected-clicks column.

## Timings

| step | wall clock |
|---|---|
{timings}
"""
