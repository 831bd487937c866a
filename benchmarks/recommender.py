"""The recommender in process against the seeded stack's Redis: per-stage time, online quality.

    make run && make seed        # the stack, with the viewing world's history before the split
    .venv/bin/python benchmarks/recommender.py [--requests 600] [--users 0]

1. Per-stage time: --requests uncached requests per variant (control: the blend; treatment: the
   ranker in process), users drawn at random from the world, sequential, stage by stage. The
   numbers are the service's own stage timers (cache, features, candidates, rank, rerank).
2. Online quality: every evaluated user of the offline evaluation (history before the split, a
   watch after it) asks the running service's code for 10 titles under each variant; recall@10,
   NDCG@10, coverage and diversity are computed against the held-out week exactly as
   docs/evaluation/recommendations.md computes them offline. The seeder replayed only the
   history before the split, so the online state is the offline state, shifted to now.

Writes reports/recommender/<UTC time>.json and a PNG of the stage percentiles.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from tqdm import tqdm

from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.recommender.app import create_app
from services.recommender.metrics import STAGES
from services.recommender.service import RecommenderService
from services.recommender.settings import RecommenderSettings
from services.recommender.variants import fixed_variant
from services.trainer.recs_metrics import (
    catalog_coverage,
    intra_list_diversity,
    ndcg_at_k,
    recall_at_k,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
PERCENTILES = (50, 90, 99)
K = 10


class TimedService(RecommenderService):
    """The service with every stage's duration also kept as a raw sample, and no cache reads
    (every answer computed)."""

    samples: dict[str, list[float]]

    def _cached(self, *args: Any, **kwargs: Any) -> None:
        return None

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.samples[name].append((time.perf_counter() - start) * 1e3)


def build(variant: str, **settings: Any) -> tuple[Any, TimedService]:
    app = create_app(RecommenderSettings(**settings),
                     publisher=InMemoryPublisher(InMemoryBroker()),
                     choose_variant=fixed_variant(variant))
    service: RecommenderService = app.state.recommender
    service.__class__ = TimedService
    timed: TimedService = service  # type: ignore[assignment]
    timed.samples = defaultdict(list)
    return app, timed


def stage_times(users: list[str], requests: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for variant in ("control", "treatment"):
        app, service = build(variant)
        with TestClient(app):
            totals = []
            for i in tqdm(range(requests), desc=f"stages, {variant}", unit="req"):
                start = time.perf_counter()
                answer = service.recommend(users[i % len(users)], K)
                totals.append((time.perf_counter() - start) * 1e3)
                assert answer.served_from == "computed", answer.fallbacks
            samples = {**service.samples, "total": totals}
            results[variant] = {
                stage: {f"p{p:g}": float(np.percentile(samples[stage], p)) for p in PERCENTILES}
                | {"mean": float(np.mean(samples[stage]))}
                for stage in (*STAGES[1:], "total")}
    return results


def online_quality(world: Path, max_users: int, **settings: Any) -> dict[str, dict[str, float]]:
    interactions = pd.read_parquet(world / "interactions.parquet")
    titles = pd.read_parquet(world / "titles.parquet")
    split = interactions["timestamp"].max() - pd.Timedelta(days=7)
    before = set(interactions.loc[interactions["timestamp"] < split, "user_id"])
    past = interactions[interactions["timestamp"] < split]
    future = interactions[interactions["timestamp"] >= split]
    # As offline: a future watch of a title already watched cannot be recommended, so it is not
    # a title the list could have found (offline masks labels with the eligible titles).
    seen = past.groupby("user_id")["content_id"].agg(set)
    future_titles = future.groupby("user_id")["content_id"].agg(set)
    future_titles = pd.Series({u: titles_ - seen.get(u, set())
                               for u, titles_ in future_titles.items()})
    users = sorted(u for u in future_titles.index if u in before)
    if max_users:
        users = users[:max_users]
    row_of = {c: i for i, c in enumerate(titles["content_id"])}
    genres = sorted({g for gs in titles["genres"] for g in gs.split("|")})
    multi_hot = np.zeros((len(titles), len(genres)))
    for i, gs in enumerate(titles["genres"]):
        for g in gs.split("|"):
            multi_hot[i, genres.index(g)] = 1
    quality: dict[str, dict[str, float]] = {}
    for variant in ("control", "treatment"):
        app, service = build(variant, **settings)
        with TestClient(app):
            top = np.full((len(users), K), -1, dtype=np.int64)
            relevant = np.zeros((len(users), len(titles)), dtype=bool)
            for n, user in enumerate(tqdm(users, desc=f"quality, {variant}", unit="user")):
                answer = service.recommend(user, K)
                rows = [row_of[item.content_id] for item in answer.items]
                top[n, :len(rows)] = rows
                relevant[n, [row_of[c] for c in future_titles[user]]] = True
        quality[variant] = {
            "users": float(len(users)),
            "recall@10": recall_at_k(top, relevant, K),
            "NDCG@10": ndcg_at_k(top, relevant, K),
            "coverage@10": catalog_coverage(top, len(titles), K),
            "diversity@10": intra_list_diversity(top, multi_hot, K),
        }
    return quality


def plot(stages: dict[str, dict[str, Any]], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(8, 4))
    names = [*STAGES[1:], "total"]
    width = 0.38
    for i, variant in enumerate(("control", "treatment")):
        p50 = [stages[variant][s]["p50"] for s in names]
        p99 = [stages[variant][s]["p99"] for s in names]
        x = np.arange(len(names)) + (i - 0.5) * width
        axis.bar(x, p99, width, alpha=0.35, label=f"{variant} p99")
        axis.bar(x, p50, width, label=f"{variant} p50")
    axis.set_xticks(np.arange(len(names)), names)
    axis.set_ylabel("ms")
    axis.set_title("recommender stages, sequential, uncached (in process)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--users", type=int, default=0, help="quality: first N users (0: all)")
    parser.add_argument("--world", type=Path, default=REPO_ROOT / ".state/worlds/viewing")
    parser.add_argument("--rerank", action="append", default=[], metavar="NAME=VALUE",
                        help="quality only, under other rerank settings, e.g. "
                             "--rerank recommender_discovery_slot=false (repeatable)")
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports/recommender")
    args = parser.parse_args()
    users = pd.read_parquet(args.world / "users.parquet")["user_id"].tolist()
    random.Random(7).shuffle(users)
    overrides = dict(item.split("=", 1) for item in args.rerank)
    if args.quality_only:
        for variant, metrics in online_quality(args.world, args.users, **overrides).items():
            print(overrides, variant, " ".join(f"{m} {v:.3f}" for m, v in metrics.items()))
        return 0
    stages = stage_times(users, args.requests)
    quality = online_quality(args.world, args.users, **overrides)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"when": stamp, "machine": platform.machine(), "cpus": 2,
              "python": platform.python_version(), "requests": args.requests,
              "rerank_overrides": overrides, "stages_ms": stages, "quality": quality}
    (args.out / f"{stamp}.json").write_text(json.dumps(report, indent=2))
    plot(stages, args.out / "stages.png")
    for variant, by_stage in stages.items():
        print(variant, " ".join(f"{s} {v['p50']:.2f}/{v['p99']:.2f}" for s, v in by_stage.items()))
    for variant, metrics in quality.items():
        print(variant, " ".join(f"{m} {v:.3f}" for m, v in metrics.items()))
    print(f"report: {args.out / (stamp + '.json')}, plot: {args.out / 'stages.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
