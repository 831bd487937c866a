"""CPU a request spends logging its listed titles' ranker features, side by side in one run.

    make models
    .venv/bin/python benchmarks/recs_feature_logging.py [--models .state/models] [--rounds 7]

In process, one thread, BLAS at 1 thread (as the service runs): the production ranker and its
catalog from the model repository, an in-memory user store of --users users with --history
random watches each, and an impression log whose publisher only counts (the request thread's
part: building and encoding the event; the send is the background thread's). For each variant
(control: the blend; treatment: the ranker) and each path (computed: `Cache-Control: no-cache,
no-store`; cached: every list from the response cache), `RecommenderService.recommend` is timed
with feature logging on and off (`ListPolicy.log_features`), the four configurations of a round
interleaved so that noise hits them alike. CPU per request is `time.process_time` over the
round's requests; the median over --rounds rounds is reported, with the added CPU (on - off)
and the impression's bytes with and without features.

Writes benchmarks/results/recs_feature_logging.json (date, machine, versions, counts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pydantic
from threadpoolctl import threadpool_limits

from services.common.breaker import BreakerSet, CircuitBreaker
from services.common.bus.ports import OutboundMessage
from services.common.models import LocalModelClient, ModelRepository
from services.common.telemetry import Metrics
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.state import ItemStats, UserOnlineState, Watch
from services.recommender.candidates import CandidateSizes
from services.recommender.catalog import LiveCatalog, training_time_stats
from services.recommender.impressions import ImpressionLog
from services.recommender.metrics import RecommenderMetrics
from services.recommender.service import CacheUse, ListPolicy, RecommenderService
from services.recommender.variants import fixed_variant

RESULT = Path("benchmarks/results/recs_feature_logging.json")
K = 10


class MemoryStore:
    """Users with random histories; the response cache in a dict; training-time item stats."""

    def __init__(self, items: ItemArtifacts, users: int, history: int, seed: int) -> None:
        rng = random.Random(seed)
        trained = [str(t) for t in items.title_ids[:items.n_trained]]
        now_ms = int(time.time() * 1000)
        self.users = {
            f"u{u}": UserOnlineState(
                f"u{u}", tuple(Watch(f"e{u}-{i}", rng.choice(trained), True,
                                     now_ms - (history - i) * 60_000) for i in range(history)),
                history, None, ())
            for u in range(users)}
        self.cache: dict[tuple[str, int], bytes] = {}
        self._stats = training_time_stats(items)

    def read_user(self, user_id: str, trending_n: int = 50) -> UserOnlineState:
        return self.users[user_id]

    def cached_recommendations(self, user_id: str, k: int) -> bytes | None:
        return self.cache.get((user_id, k))

    def cache_recommendations(self, user_id: str, k: int, payload: bytes, ttl_s: int,
                              if_watch_count: int | None) -> bool:
        self.cache[(user_id, k)] = payload
        return True

    def read_item_stats(self, now_s: float) -> ItemStats:
        return self._stats


class CountingPublisher:
    """The background queue's submit, minus the queue: the request thread's share only."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def submit(self, message: OutboundMessage) -> bool:
        self.messages += 1
        self.bytes += len(message.value)
        return True


def service(catalog: LiveCatalog, store: MemoryStore, model: LocalModelClient, variant: str,
            log_features: bool, publisher: CountingPublisher) -> RecommenderService:
    policy = ListPolicy(candidates=CandidateSizes(100, 50, 50), cache_ttl_s=300,
                        default_max_maturity=4, fallback_max_maturity=1,
                        log_features=log_features)
    return RecommenderService(
        catalog=catalog, store_for=lambda items: store, model=model, model_name="ranker",
        metrics=RecommenderMetrics(Metrics("bench")), choose_variant=fixed_variant(variant),
        impressions=ImpressionLog(publisher, "rec-impressions"),  # type: ignore[arg-type]
        policy=policy, redis_breakers=BreakerSet.single("redis", 100),
        model_breaker=CircuitBreaker("model", 100))


def cpu_per_request(svc: RecommenderService, users: Sequence[str], cache: CacheUse) -> float:
    start = time.process_time()
    for user in users:
        svc.recommend(user, K, cache)
    return (time.process_time() - start) / len(users)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path(".state/models"))
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--history", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    repository = ModelRepository(args.models)
    model = LocalModelClient(repository, reload_interval_s=None)
    results: dict[str, Any] = {}
    # The store needs the catalog's items: read them once through a store with no users.
    loader = LiveCatalog(repository, "ranker", lambda items: MemoryStore(items, 0, 0, 0), 60.0)
    loader.refresh()
    store = MemoryStore(loader.snapshot.items, args.users, args.history, args.seed)
    users = sorted(store.users)
    with threadpool_limits(1):
        for variant in ("control", "treatment"):
            rigs: dict[bool, tuple[RecommenderService, CountingPublisher]] = {}
            for on in (True, False):
                publisher = CountingPublisher()
                catalog = LiveCatalog(repository, "ranker", lambda items: store, 60.0)
                catalog.refresh()
                rigs[on] = (service(catalog, store, model, variant, on, publisher), publisher)
            for svc, _ in rigs.values():  # warm: ONNX session, caches, first-call costs
                cpu_per_request(svc, users[:20], CacheUse(read=False, write=False))
            timings: dict[str, list[float]] = {f"{path}_{on}": [] for path in ("computed", "cached")
                                               for on in ("on", "off")}
            for _ in range(args.rounds):
                for on in (True, False):
                    svc, _ = rigs[on]
                    label = "on" if on else "off"
                    timings[f"computed_{label}"].append(
                        cpu_per_request(svc, users, CacheUse(read=False, write=True)))
                    timings[f"cached_{label}"].append(cpu_per_request(svc, users, CacheUse()))
            size = {}
            for on in (True, False):
                publisher = rigs[on][1]
                publisher.messages = publisher.bytes = 0
                cpu_per_request(rigs[on][0], users, CacheUse(read=False, write=False))
                size["on" if on else "off"] = round(publisher.bytes / publisher.messages, 1)
            medians = {name: statistics.median(values) * 1e3 for name, values in timings.items()}
            results[variant] = {
                "cpu_ms_per_request": {name: round(v, 4) for name, v in medians.items()},
                "added_cpu_ms": {path: round(medians[f"{path}_on"] - medians[f"{path}_off"], 4)
                                 for path in ("computed", "cached")},
                "added_share": {path: round(medians[f"{path}_on"] / medians[f"{path}_off"] - 1, 4)
                                for path in ("computed", "cached")},
                "impression_bytes": size,
                "rounds_ms": {name: [round(v * 1e3, 4) for v in values]
                              for name, values in timings.items()},
            }
    model.close()
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0], "load_1m": round(os.getloadavg()[0], 2)},
        "versions": {"numpy": np.__version__, "onnxruntime": onnxruntime.__version__,
                     "pydantic": pydantic.__version__},
        "ranker_version": loader.snapshot.version, "titles": len(loader.snapshot.items),
        "k": K, "users": args.users, "history": args.history, "rounds": args.rounds,
        "requests_per_round": args.users, "blas_threads": 1,
        "variants": results,
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({v: {"cpu_ms": r["cpu_ms_per_request"], "added_ms": r["added_cpu_ms"],
                          "bytes": r["impression_bytes"]} for v, r in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
