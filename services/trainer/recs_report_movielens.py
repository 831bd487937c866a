"""Writes the MovieLens 100k evaluation page, its plots and its machine-readable results."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn

from services.trainer.recs_report import METRIC_LABELS, _plot_curves, _plot_metrics, _table
from services.trainer.recs_result import RecsTrainingResult
from services.trainer.worlds.movielens import COMPLETED_RATING, PACKAGE_PIN, MovieLensWorld

PAGE = "movielens.md"
RESULTS_JSON = "movielens.json"
RESULTS_CSV = "movielens.csv"
METRICS_PLOT = "img/movielens-metrics.png"
CURVE_PLOT = "img/movielens-recall-at-k.png"
WINDOW_CHOICES = (14, 28, 42, 56, 70)
ONLINE_JSON = "{dataset}-online.json"
ONLINE_BEGIN = "<!-- online check: begin (written by services/trainer/online_check.py) -->"
ONLINE_END = "<!-- online check: end -->"

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
    online = report_dir / ONLINE_JSON.format(dataset="movielens")
    section = (online_section(json.loads(online.read_text()), _side_runs(report_dir))
               if online.exists() else NO_ONLINE_RESULT)
    page.write_text(render(result, world, facts, section))
    return page


NO_ONLINE_RESULT = """No online result in this directory yet: `make demo DATASET=movielens`, then
`make movielens-check` writes one."""


def _side_runs(report_dir: Path) -> list[dict[str, Any]]:
    """Tagged runs of the check (another recommender's settings) beside the main one."""
    return [json.loads(path.read_text())
            for path in sorted(report_dir.glob("movielens-online-*.json"))]


def online_section(facts: dict[str, Any], side_runs: list[dict[str, Any]] | None = None) -> str:
    """The page's online-check section from <dataset>-online.json and any tagged side runs
    (<dataset>-online-<tag>.json); every number from those files."""
    answers = facts["answers"]
    lines = [
        f"**How measured:** {facts['generated']}, {facts['machine']['arch']}, "
        f"{facts['machine']['cores']} shared cores (the whole stack on them too), Python "
        f"{facts['versions']['python']}, numpy {facts['versions']['numpy']}, httpx "
        f"{facts['versions']['httpx']}; ranker v{facts['model']['version']} (training data "
        f"{facts['model']['training_data_hash'][:12]}); `{facts['command']}` against "
        f"{facts['recommender']}; {facts['users_asked']} held-out users asked once each, "
        f"sequentially, in {answers['seconds']} s; all numbers in "
        f"[{ONLINE_JSON.format(dataset=facts['dataset'])}]"
        f"({ONLINE_JSON.format(dataset=facts['dataset'])}).",
        "",
        f"Answers: variants {_counts(answers['variant'])}; served from "
        f"{_counts(answers['served_from'])}; personalization "
        f"{_counts(answers['personalization'])}; {answers['with_fallbacks']} with a fallback "
        "(left out: a treatment answer without the ranker is the blend).",
        "",
        "| variant (algorithm) | users | recall@10 online | offline, same users | online - "
        "offline (paired) | NDCG@10 online | offline | agree within noise? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in facts["comparisons"]:
        lines.append(
            f"| {c['variant']} ({c['algorithm']}) | {c['users']} | {_fig(c['recall_online'])} "
            f"| {_fig(c['recall_offline'])} | {_fig(c['recall_difference'], signed=True)} | "
            f"{_fig(c['ndcg_online'])} | {_fig(c['ndcg_offline'])} | "
            f"{'yes' if c['agree'] else 'no'} |")
    everyone = facts["offline_all_users_recall_at_10"]
    lines += ["", "Offline recall@10 of all the held-out users (both variants' users together, "
              "the Results table's): " + ", ".join(f"{a} {v:.3f}" for a, v in everyone.items())
              + ". Intervals: 95 % bootstrap over users "
              f"({facts['bootstrap_resamples']:,} resamples); the paired difference resamples "
              "each user's online minus offline recall."]
    for side in side_runs or []:
        name = ONLINE_JSON.format(dataset=side["dataset"]).replace(".json", f"-{side['tag']}.json")
        lines += ["", f"Side run `{side['tag']}` ([{name}]({name}), {side['generated']}, "
                      f"{side['users_asked']} users): {side['note']}", ""]
        lines += [f"- {c['variant']} ({c['algorithm']}, {c['users']} users): online "
                  f"{_fig(c['recall_online'])}, offline {_fig(c['recall_offline'])}, "
                  f"difference {_fig(c['recall_difference'], signed=True)}"
                  for c in side["comparisons"]]
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))


def _fig(figure: dict[str, float], signed: bool = False) -> str:
    form = "+.3f" if signed else ".3f"
    return (f"{figure['mean']:{form}} ({figure['low']:{form}} to {figure['high']:{form}})"
            if signed else f"{figure['mean']:{form}} ({figure['low']:{form}}-"
                           f"{figure['high']:{form}})")


def update_online_section(report_dir: Path, facts: dict[str, Any]) -> None:
    """Rewrite the online section of report_dir's page, if the page is there."""
    page = report_dir / PAGE
    if not page.exists():
        return
    text = page.read_text()
    begin, end = text.find(ONLINE_BEGIN), text.find(ONLINE_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{page} has no online section markers: regenerate it "
                         "(python -m services.trainer.recs --dataset movielens)")
    section = online_section(facts, _side_runs(report_dir))
    page.write_text(text[:begin + len(ONLINE_BEGIN)] + "\n" + section + "\n" + text[end:])


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


def render(result: RecsTrainingResult, world: MovieLensWorld, facts: dict[str, Any],
           online: str = NO_ONLINE_RESULT) -> str:
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
        online_begin=ONLINE_BEGIN, online=online, online_end=ONLINE_END, online_gap=ONLINE_GAP,
    )


ONLINE_GAP = """What can make the served lists differ from the offline ones, and what the side run
(the same stack's state and ranker, rerank off) shows of it:

- **Treatment (ranker).** Offline, the ranker's top 10 are its 10 most probable candidates.
  The service reranks them: MMR with a 0.1 genre-novelty weight over the 50 most probable, a
  genre cap (no genre in over 70 % of the list) and a discovery slot (one title outside the
  user's top genres). Each of these trades a little relevance for variety, so the online figure
  is expected at or a little below the offline one. With the rerank off, what is left is the
  state: taste vectors folded by the stream from the replayed watches, trending decayed to the
  wall clock a few minutes after seeding instead of the split instant, and release ages against
  the request time. The side run's treatment difference measures that residue; the gap between
  it and the main run's is the rerank's price in recall.
- **Control (blend).** The offline blend scores every eligible title, min-max scaled over all of
  them, and picks greedily with 0.1 x (1 - the highest genre Jaccard similarity to a title
  already picked) from the best 200. The service scores only its candidates (collaborative
  top 100, content top 50, trending top 50), min-max scaled over them, with content weighted
  up for users with fewer than 5 watches, then its own rerank. So the blend differs by
  construction, rerank or not: the side run's control difference is what that costs.
- **Who is compared.** Each variant's users are those the experiment assigned to it (a hash of
  the user id), about half of the held-out users each; the paired difference compares each
  user's online list with their own offline list, so it is much tighter than either figure's
  interval. "Agree within noise" means its 95 % interval holds 0. Nothing was tuned to close
  the gap: the service ran with its defaults.
- **Cached answers** are the lists the service computed for the same user minutes earlier (the
  cache lives 5 minutes and a new watch drops it): what a client gets either way."""

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

## Online check: the running service against this evaluation

The same model, served: `make demo DATASET=movielens` trains it, starts the stack, replays the
ratings before the split through Kafka (shifted so the split is now; the future stays unseen)
and loads the titles through the catalog ETL (release dates moved by the same shift);
`make movielens-check` (`services/trainer/online_check.py`) then asks
`GET /v1/recommendations/{{user}}?k=10` for each held-out user and scores the answers with the
functions above (`services/trainer/recs_metrics.py`) against the same future ratings. Each user
gets the variant the rec-algorithm experiment assigns (control: the hybrid blend, treatment: the
ranker), so each variant's online lists are compared with the offline lists of its own algorithm
for the same users, user by user.

```
 offline_lists.json (kept with the ranker) ─┐
 GET /v1/recommendations/u (variant) ───────┼─▶ recall@10 per user ─▶ online, offline, paired
 ratings in the future window ──────────────┘                        difference (bootstrap)
```

{online_begin}
{online}
{online_end}

{online_gap}

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
