"""Online recommendation features on real Redis: watch-handler throughput, per-request read latency.

    .venv/bin/python benchmarks/recs_features_online.py [--redis-url redis://127.0.0.1:6379/0]

1. Replays the default viewing world's train-period watch events through WatchFeaturesHandler in
   flushes of 500 (handle() + flush() timed; building the events is not, and they are frozen
   out of the garbage collector's reach first).
2. Then, at the replay's end instant, times what the recommender does per request: the
   one-round-trip read of a user's online state, and RANKER_FEATURES for 300 candidates
   (user_vectors + ranker_features), for --reads random users with history. Candidate generation
   over the whole catalog (cf top-100, content top-50, trending top-50) and the item-stats
   snapshot read are timed too, as separate stages.

Without --redis-url it starts its own redis-server the way the tests do, and everything it writes
goes under the `bench` namespace. Raw samples go to reports/recs-features-online/<UTC time>.json;
a summary for docs/recs-features-online.md goes to the log.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import redis
from redis.utils import HIREDIS_AVAILABLE
from tqdm import tqdm

from services.common.bus.envelope import Event
from services.designs.payloads import WatchData
from services.designs.recs.features import ranker_features
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.redis_store import RedisRecsStore
from services.designs.recs.state import (
    ItemStats,
    UserOnlineState,
    UserVectors,
    trending_rows,
    user_vectors,
)
from services.devstack.servers import redis_url
from services.stream.watches import WatchFeaturesHandler
from services.trainer import recs_models as rm
from services.trainer.recs import CANDIDATE_SIZES, EMBEDDING_DIM
from services.trainer.worlds.viewing import GENRES, ViewingConfig, ViewingWorld, generate_viewing

logger = logging.getLogger("recs_features_online")
REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
PERCENTILES = (50, 90, 99, 99.9)


def build_items(world: ViewingWorld) -> ItemArtifacts:
    """What load_item_artifacts gives the recommender after `make models` on this world."""
    events, titles = rm.Events.of(world), rm.Titles.of(world)
    state = rm.state_at(events, len(world.users), titles, world.config.split.timestamp())
    embeddings = rm.fit_item_embeddings(state.weights, EMBEDDING_DIM, world.config.seed)
    return ItemArtifacts.build(titles.ids, embeddings, titles.genres, titles.release_seconds,
                               titles.maturity, GENRES, label="bench")


def watch_events(world: ViewingWorld) -> list[Event]:
    return [Event(id=row.event_id, type="watch", source="bench",
                  time=row.timestamp.to_pydatetime(),
                  data=WatchData(user_id=row.user_id, content_id=row.content_id,
                                 watch_seconds=int(row.watch_seconds),
                                 completed=bool(row.completed)).model_dump())
            for row in world.train.itertuples(index=False)]


def replay(handler: WatchFeaturesHandler, events: Sequence[Event], batch: int
           ) -> tuple[float, list[float]]:
    """Total seconds in handle() + flush(), and each flush's ms."""
    total, flushes = 0.0, []
    for start in tqdm(range(0, len(events), batch), desc="replay", unit="batch"):
        began = time.perf_counter()
        for event in events[start:start + batch]:
            handler.handle(event)
        handled = time.perf_counter()
        handler.flush()
        done = time.perf_counter()
        total += done - began
        flushes.append((done - handled) * 1000)
    return total, flushes


def candidates(vectors: UserVectors, state: UserOnlineState, items: ItemArtifacts
               ) -> npt.NDArray[np.int64]:
    """The trainer's candidate union (cf, content, trending top-N) over the whole catalog."""
    cf_n, content_n, trending_n = CANDIDATE_SIZES
    cf = items.embeddings @ vectors.taste.astype(np.float32)
    norm = np.linalg.norm(vectors.profile)
    content = items.content @ (vectors.profile / norm if norm > 0 else vectors.profile)
    cf[vectors.watched] = -np.inf
    content[vectors.watched] = -np.inf
    trending = trending_rows(state, items)
    picked = [np.argpartition(-cf, cf_n)[:cf_n], np.argpartition(-content, content_n)[:content_n],
              trending[~np.isin(trending, vectors.watched)][:trending_n]]
    return np.unique(np.concatenate(picked))


def measure_reads(store: RedisRecsStore, items: ItemArtifacts, stats: ItemStats,
                  users: Sequence[str], n_candidates: int, now_s: float, warmup: int
                  ) -> dict[str, list[float]]:
    rng = np.random.default_rng(7)
    lists = rng.integers(0, len(items), (len(users), n_candidates))
    samples: dict[str, list[float]] = {"read": [], "features": [], "read + features": [],
                                       "candidates": []}
    for i, user in enumerate(tqdm([*users[:warmup], *users], desc="reads", unit="read")):
        t0 = time.perf_counter_ns()
        state = store.read_user(user)
        t1 = time.perf_counter_ns()
        vectors = user_vectors(state, items)
        ranker_features(vectors, items, stats, lists[i % len(users)], now_s)
        t2 = time.perf_counter_ns()
        candidates(vectors, state, items)
        t3 = time.perf_counter_ns()
        if i == warmup - 1:
            # As a service does after start-up: keep full collections off the start-up heap.
            gc.collect()
            gc.freeze()
        if i >= warmup:
            for name, ns in (("read", t1 - t0), ("features", t2 - t1), ("read + features", t2 - t0),
                             ("candidates", t3 - t2)):
                samples[name].append(ns / 1e6)
    return samples


def summary(samples_ms: Sequence[float]) -> dict[str, float]:
    values = np.percentile(np.asarray(samples_ms), PERCENTILES)
    stats = {f"p{p:g}_ms": round(float(v), 3) for p, v in zip(PERCENTILES, values, strict=True)}
    stats["mean_ms"] = round(float(np.mean(samples_ms)), 3)
    stats["max_ms"] = round(float(np.max(samples_ms)), 3)
    return stats




def run(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()[0]
    world = generate_viewing(ViewingConfig())
    items = build_items(world)
    events = watch_events(world)
    now_s = world.config.split.timestamp()
    with redis_url(args.redis_url) as url:
        client = redis.Redis.from_url(url, socket_timeout=5.0)
        handler = WatchFeaturesHandler(client, items, NAMESPACE)
        # A consumer holds one batch, not 187,602 events: keep them (and the world) out of the
        # full collections, which otherwise take about 185 ms each here (timed with gc.callbacks).
        gc.collect()
        gc.freeze()
        seconds, flushes = replay(handler, events, args.batch)
        store = RedisRecsStore(client, items, NAMESPACE)
        snapshot_ms = []
        for _ in range(args.snapshots):
            began = time.perf_counter()
            stats = store.read_item_stats(now_s)
            snapshot_ms.append((time.perf_counter() - began) * 1000)
        rng = np.random.default_rng(3)
        with_history = sorted(world.train["user_id"].unique())
        users = [str(u) for u in rng.choice(with_history, size=args.reads)]
        reads = measure_reads(store, items, stats, users, args.candidates, now_s, args.warmup)
        memory = client.info("memory")["used_memory"]
        meta = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "redis": f"Redis {client.info('server')['redis_version']}",
            "redis_py": redis.__version__,
            "parser": "hiredis" if HIREDIS_AVAILABLE else "pure Python",
            "python": platform.python_version(),
            "machine": platform.platform(),
            "cpus": str(os.cpu_count()),
            "load_avg_1m": f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
            "world": f"default ViewingConfig: {len(world.users)} users, {len(items)} titles, "
                     f"{len(events)} train-period watches",
            "redis_used_memory_mb": f"{memory / 2**20:.1f}",
        }
        client.delete(*client.scan_iter(match=f"{NAMESPACE}:*", count=1000))
        client.close()
    report(meta, len(events), seconds, flushes, snapshot_ms, reads, args)


def report(meta: Mapping[str, str], n_events: int, seconds: float, flushes: Sequence[float],
           snapshot_ms: Sequence[float], reads: Mapping[str, Sequence[float]],
           args: argparse.Namespace) -> None:
    logger.info("%s", json.dumps(meta, indent=1))
    throughput = n_events / seconds
    logger.info("watch handler: %d events in %.1f s = %.0f events/s; flush of %d: %s", n_events,
                seconds, throughput, args.batch, summary(flushes))
    logger.info("item stats snapshot (%d reads): %s", len(snapshot_ms), summary(snapshot_ms))
    logger.info("| stage | samples | p50 ms | p90 ms | p99 ms | p99.9 ms | mean ms | max ms |")
    logger.info("|---|---|---|---|---|---|---|---|")
    for name, samples in reads.items():
        s = summary(samples)
        logger.info("| %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |", name, len(samples),
                    s["p50_ms"], s["p90_ms"], s["p99_ms"], s["p99.9_ms"], s["mean_ms"],
                    s["max_ms"])
    args.reports.mkdir(parents=True, exist_ok=True)
    raw = args.reports / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    raw.write_text(json.dumps({
        "meta": meta, "events": n_events, "handler_seconds": seconds,
        "events_per_second": throughput, "flush_ms": list(flushes),
        "snapshot_ms": list(snapshot_ms), "reads_ms": {k: list(v) for k, v in reads.items()},
        "summary": {"flush": summary(flushes), "snapshot": summary(snapshot_ms),
                    **{k: summary(v) for k, v in reads.items()}},
    }, indent=1))
    logger.info("raw samples: %s", raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument("--reads", type=int, default=3000, help="timed per-request reads")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=300, help="candidates per request")
    parser.add_argument("--batch", type=int, default=500, help="events per flush")
    parser.add_argument("--snapshots", type=int, default=50, help="item-stats snapshot reads")
    parser.add_argument("--reports", type=Path,
                        default=REPO_ROOT / "reports/recs-features-online")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
