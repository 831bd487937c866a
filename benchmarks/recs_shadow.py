"""What a shadow ranker costs the answer: request latency and request-thread CPU, shadow on and off.

    make models
    .venv/bin/python benchmarks/recs_shadow.py [--models .state/models] [--rounds 5]

In process, BLAS at 1 thread, the production ranker and catalog from the model repository,
the in-memory users of benchmarks/recs_feature_logging.py, every list computed. For each variant,
rounds of --users sequential requests alternate shadow off and shadow on (the production version
itself as the candidate, share 1.0: every request sampled, the worst case). Per request: wall
time of `recommend` (p50, p99) and the request thread's CPU (`time.thread_time`); per shadow job:
the shadow thread's CPU (process CPU minus the request thread's, over the round, divided by the
jobs scored), and how many jobs were dropped. Writes benchmarks/results/recs_shadow.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from threadpoolctl import threadpool_limits

from services.common.models import LocalModelClient, ModelRepository
from services.common.telemetry import Metrics
from services.recommender.catalog import LiveCatalog
from services.recommender.service import CacheUse
from services.recommender.shadow import ShadowMetrics, ShadowRanker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recs_feature_logging import CountingPublisher, MemoryStore, service  # the same rig

RESULT = Path("benchmarks/results/recs_shadow.json")
K = 10
UNCACHED = CacheUse(read=False, write=False)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path(".state/models"))
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    repository = ModelRepository(args.models)
    version = repository.production_version("ranker")
    assert version is not None, "no production ranker: run make models"
    model = LocalModelClient(repository, reload_interval_s=None)
    loader = LiveCatalog(repository, "ranker", lambda items: MemoryStore(items, 0, 0, 0), 60.0)
    loader.refresh()
    store = MemoryStore(loader.snapshot.items, args.users, 30, 7)
    users = sorted(store.users)
    results: dict[str, Any] = {}
    with threadpool_limits(1):
        for variant in ("control", "treatment"):
            registry = Metrics("bench_shadow")
            shadow_metrics = ShadowMetrics(registry)
            svc = service(loader, store, model, variant, True, CountingPublisher())
            shadow = ShadowRanker(model=model, model_name="ranker", version=version, share=1.0,
                                  metrics=shadow_metrics, capacity=10_000)
            for user in users[:20]:                     # warm both paths
                svc.recommend(user, K, UNCACHED)
            per: dict[str, dict[str, list[float]]] = {
                mode: {"wall_ms": [], "thread_cpu_ms": [], "shadow_cpu_ms_per_job": []}
                for mode in ("off", "on")}
            dropped = scored = 0.0
            for _ in range(args.rounds):
                for mode in ("off", "on"):
                    svc._shadow = shadow if mode == "on" else None
                    jobs_before = _count(registry, "scored")
                    process_start, thread_total = time.process_time(), 0.0
                    for user in users:
                        wall, cpu = time.perf_counter(), time.thread_time()
                        svc.recommend(user, K, UNCACHED)
                        per[mode]["wall_ms"].append((time.perf_counter() - wall) * 1e3)
                        spent = time.thread_time() - cpu
                        per[mode]["thread_cpu_ms"].append(spent * 1e3)
                        thread_total += spent
                    shadow.drain(60.0)
                    jobs = _count(registry, "scored") - jobs_before
                    if mode == "on" and jobs:
                        other = time.process_time() - process_start - thread_total
                        per[mode]["shadow_cpu_ms_per_job"].append(other / jobs * 1e3)
            dropped = _count(registry, "dropped")
            scored = _count(registry, "scored")
            shadow.close()
            results[variant] = {
                mode: {"wall_p50_ms": round(percentile(v["wall_ms"], 50), 3),
                       "wall_p99_ms": round(percentile(v["wall_ms"], 99), 3),
                       "request_thread_cpu_ms": round(statistics.mean(v["thread_cpu_ms"]), 4),
                       **({"shadow_cpu_ms_per_job": round(statistics.median(
                           v["shadow_cpu_ms_per_job"]), 4)} if v["shadow_cpu_ms_per_job"]
                          else {}),
                       "requests": len(v["wall_ms"])}
                for mode, v in per.items()}
            results[variant]["shadow_jobs"] = {"scored": scored, "dropped": dropped}
            print(variant, json.dumps(results[variant]))
    model.close()
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0], "load_1m": round(os.getloadavg()[0], 2)},
        "versions": {"numpy": np.__version__, "onnxruntime": onnxruntime.__version__},
        "ranker_version": version, "titles": len(loader.snapshot.items), "k": K,
        "users": args.users, "rounds": args.rounds, "share": 1.0, "blas_threads": 1,
        "variants": results,
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(out, indent=1) + "\n")
    return 0


def _count(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("bench_shadow_shadow_requests_total",
                                              {"outcome": outcome})
    return value or 0.0


if __name__ == "__main__":
    raise SystemExit(main())
