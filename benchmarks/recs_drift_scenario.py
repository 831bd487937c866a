"""The recommender's drift scenario: a shift in taste moves the ranker's input PSI over the alert.

    make drift-recs      # .venv/bin/python benchmarks/recs_drift_scenario.py [--users 6000]

    viewing world ─▶ make models' ranker: production v1 (drift reference: the held-out window's
                     candidate rows and scores, services/trainer/recs.py)
      ├─ control: the world as generated, at its end
      └─ a craze: from --shift-days before the end, every user's genre taste moves a weight
         (each of --weights) of the way to --genres, the watches since drawn again from the
         moved tastes
         (services/trainer/worlds/viewing.py taste_shifted)
           each world at its end: the users active in its last week ask for a list, in a
           random order; their candidate rows as the recommender builds them (v1's embeddings,
           the online state at that instant: popularity, trending, taste, genres; the
           trainer's point-in-time functions, services/trainer/recs_models.py), scored by v1's
           ONNX graph ─▶ the recommender's DriftMonitor (its default window, the last 10,000
           rows) ─▶ recommender_drift_psi{column} ─▶ promtool: do ModelInputDrift /
           ModelScoreDrift (infra/prometheus/rules/drift.yml) fire?

Beside the window the service keeps, each column's PSI over every active user's rows (the
population the window samples): how much of a reading is the sample's noise. Not the running
stack: the serving code's features on the same rows, in one process.

Writes benchmarks/results/recs_drift_scenario.json (date, machine, load, versions, world, counts,
PSI per column, promtool's outcome, timings).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import sklearn
from fraud_drift_loop import THRESHOLD, expected_alerts, promtool, timed

from services.common.drift import DRIFT_REFERENCE_FILE, SCORE, DriftReference, DriftWindow
from services.common.drift_monitor import DriftMonitor
from services.common.machine import describe
from services.common.models import ModelRepository
from services.common.telemetry import Metrics
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.devstack.servers import REPO_ROOT
from services.recommender.app import DRIFT_ROWS_PER_REQUEST
from services.trainer import recs_models as rm
from services.trainer.fraud_retrain import onnx_probabilities
from services.trainer.pipeline import register
from services.trainer.recs import CANDIDATE_SIZES, train_recommendations
from services.trainer.worlds.viewing import (
    ViewingConfig,
    ViewingWorld,
    generate_viewing,
    taste_shifted,
)

JOB = "recommender"
METRIC = "recommender_drift_psi"
ACTIVE_DAYS = 7        # who asks for a list: the users who watched in the last week
WINDOW = 10_000        # DriftMonitor's default, which the recommender uses (app.py)


def candidate_rows(world: ViewingWorld, embeddings: np.ndarray, as_of: float,
                   seed: int) -> list[np.ndarray]:
    """One matrix a request: each active user's candidates' ranker rows at `as_of`, users in a
    random order (the order requests arrive in)."""
    events, titles = rm.Events.of(world), rm.Titles.of(world)
    state = rm.state_at(events, len(world.users), titles, as_of)
    recent = events.between(as_of - ACTIVE_DAYS * 86_400.0, as_of)
    active = np.unique(recent.users)
    active = active[state.watch_counts[active] > 0]
    rows = np.random.default_rng(seed).permutation(active)
    max_maturity = world.users["max_maturity"].to_numpy().astype(np.int64)
    views = rm.user_views(state, rows, embeddings, titles, max_maturity)
    mask = rm.candidate_mask(rm.cf_scores(views, embeddings), rm.content_scores_of(views, titles),
                             state.trending, views.eligible, CANDIDATE_SIZES)
    users, items = np.nonzero(mask)
    x = rm.ranker_matrix(state, views, titles, embeddings, users, items)
    bounds = np.searchsorted(users, np.arange(len(rows) + 1))
    return [x[bounds[i]:bounds[i + 1]] for i in range(len(rows)) if bounds[i + 1] > bounds[i]]


def read(repository: ModelRepository, version: int, requests: list[np.ndarray]
         ) -> dict[str, Any]:
    """The recommender's DriftMonitor fed every request in order, as the service feeds it
    (DRIFT_ROWS_PER_REQUEST random rows of each) and as it did before (every row: the window
    then holds the last ~50 requests whole): both windows' PSI. And each column's PSI over all
    the requests' rows (the population both windows sample)."""
    everything = np.concatenate(requests)
    scores = onnx_probabilities(repository.model_path("ranker", version),
                                everything.astype(np.float32))
    ends = np.cumsum([len(x) for x in requests])
    found: dict[str, Any] = {}
    for name, per_request in (("window", DRIFT_ROWS_PER_REQUEST), ("window_whole_requests",
                                                                   None)):
        metrics = Metrics("recommender")
        monitor = DriftMonitor(repository=repository, model_name="ranker",
                               feature_names=RANKER_FEATURE_NAMES, metrics=metrics,
                               window=WINDOW, rows_per_call=per_request)
        for x, s in zip(requests, np.split(scores, ends[:-1]), strict=True):
            monitor.observe(version, x, s)
        monitor.publish_now()
        found[name] = {c: float(metrics.registry.get_sample_value(METRIC, {"column": c})
                                or math.nan) for c in (*RANKER_FEATURE_NAMES, SCORE)}
    reference = DriftReference.from_json(
        repository.extra_file("ranker", version, DRIFT_REFERENCE_FILE).read_text(),
        RANKER_FEATURE_NAMES)
    population = DriftWindow(reference, size=len(everything), min_rows=1)
    population.observe(everything, scores)
    sizes = np.cumsum([len(x) for x in reversed(requests)])
    return {**found, "population": population.psi(), "requests": len(requests),
            "rows": len(everything),
            # whole requests: the requests whose rows the window holds (the oldest in part)
            "whole_requests_in_window": int(np.searchsorted(sizes, WINDOW) + 1),
            "requests_in_window": min(len(requests), WINDOW // DRIFT_ROWS_PER_REQUEST)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=ViewingConfig.n_users)
    parser.add_argument("--seed", type=int, default=ViewingConfig.seed)
    parser.add_argument("--genres", default="Horror,Documentary",
                        help="the craze: the genres tastes move towards")
    parser.add_argument("--weights", default="0.6,1.0",
                        help="how far each user's genre taste moves towards them: one scenario "
                             "a weight")
    parser.add_argument("--shift-days", type=int, default=28,
                        help="the shift starts this many days before the world's end")
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "benchmarks/results/recs_drift_scenario.json")
    args = parser.parse_args()
    load_before = list(os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="recs-drift-"))
    timings: dict[str, float] = {}
    repository = ModelRepository(workdir / "models")
    genres = tuple(g.strip() for g in args.genres.split(",") if g.strip())
    weights = [float(w) for w in args.weights.split(",")]

    with timed(timings, "world and production ranker (make models' recommendations part)"):
        world = generate_viewing(ViewingConfig(seed=args.seed, n_users=args.users))
        trained = train_recommendations(world, workdir / "report", progress=lambda _: None)
        production = register(repository, trained.ranker).version
    embeddings = trained.artifacts.item_embeddings
    as_of = world.config.end.timestamp()
    since = world.config.end - timedelta(days=args.shift_days)
    titles = world.titles.set_index("content_id")["genres"]

    def craze_share(frame: Any) -> float:
        after = frame[frame["timestamp"] >= since]
        return float(titles.loc[after["content_id"]].str.contains("|".join(genres)).mean())

    scenarios: dict[str, Any] = {}
    with timed(timings, "control: candidate rows and gauges"):
        scenarios["control"] = {"weight": 0.0, "craze_share": craze_share(world.interactions),
                                **read(repository, production,
                                       candidate_rows(world, embeddings, as_of, args.seed))}
    for weight in weights:
        name = f"taste_shifted_{weight:g}"
        with timed(timings, f"{name}: the shift, candidate rows and gauges"):
            moved = taste_shifted(world, since, genres, weight, args.seed)
            scenarios[name] = {
                "weight": weight, "craze_share": craze_share(moved.interactions),
                "watches_dropped": len(world.interactions) - len(moved.interactions),
                **read(repository, production, candidate_rows(moved, embeddings, as_of,
                                                              args.seed))}
    checks = {f"{name}{suffix}": promtool(found[window], workdir, f"{name}{suffix}", METRIC, JOB)
              for name, found in scenarios.items()
              for suffix, window in (("", "window"), ("_whole_requests",
                                                      "window_whole_requests"))}
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe() | {"note": "2 cores shared with other jobs"},
        "load_average_before": load_before,
        "versions": {"scikit_learn": sklearn.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "world": {"users": args.users, "titles": world.config.n_titles,
                  "days": world.config.days, "seed": args.seed,
                  "watches": len(world.interactions), "end": world.config.end.isoformat()},
        "shift": {"genres": list(genres), "since": since.isoformat(),
                  "shift_days": args.shift_days,
                  "watches_redrawn": int((world.interactions["timestamp"] >= since).sum())},
        "production_version": production, "window": WINDOW, "active_days": ACTIVE_DAYS,
        "rows_per_request": DRIFT_ROWS_PER_REQUEST, "threshold": THRESHOLD,
        "scenarios": scenarios,
        "over_threshold": {name: {window: expected_alerts(found[window]) for window in (
            "window", "window_whole_requests", "population")}
            for name, found in scenarios.items()},
        "alerts": checks, "timings_s": timings,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    for name, found in scenarios.items():
        print(f"{name}: {found['requests']} requests, {found['rows']:,} rows, "
              f"{found['craze_share']:.0%} of the last {args.shift_days} days' watches "
              f"in {'/'.join(genres)}")
        for window in ("window", "window_whole_requests", "population"):
            print(f"  {window}: " + ", ".join(f"{c} {v:.3f}" for c, v in found[window].items()))
    for name, check in checks.items():
        print(f"{name}: alerts {check['alerts']}, promtool "
              + ("agrees" if check["promtool_passed"] else "DISAGREES"))
    print(f"result: {args.out}; scratch: {workdir}")
    return 0 if all(c["promtool_passed"] for c in checks.values()) else 1

if __name__ == "__main__":
    sys.exit(main())
