"""Redis bytes per user and per title of the seeded recommendation state, and what 200 M users need.

    make run && make seed
    .venv/bin/python benchmarks/recs_memory.py [--users 2000] [--shard-gb 25]

`MEMORY USAGE key SAMPLES 0` (every element counted, not estimated) over a random sample of the
world's users: each user's watch history, watch count, taste row (the feature-store hash) and
profile, summed per user; the response cache (`rec_cache`, 5 minutes) separately, since only
users active in the last five minutes hold one. Titles: the per-catalog keys (trending, release
dates, titles, daily watch counts) divided by the titles they hold. Then the projection: bytes
per user x 200 M, as GB, and the Redis Cluster masters that takes at --shard-gb of data per
master (replicas double the memory, not the masters).

Writes benchmarks/results/recs_memory.json (date, machine, Redis version, sample sizes).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis
from tqdm import tqdm

from services.common.machine import describe as describe_machine
from services.common.settings import PlatformSettings
from services.designs.recs import keys

DESIGN_USERS = 200_000_000
RESULT = Path("benchmarks/results/recs_memory.json")


def usage(client: redis.Redis, key: str) -> int:
    value = client.memory_usage(key, samples=0)
    return int(value or 0)


def per_user(client: redis.Redis, user_id: str, namespace: str) -> dict[str, int]:
    return {
        "watch_history": usage(client, keys.history_key(user_id, namespace)),
        "watch_count": usage(client, keys.watch_count_key(user_id, namespace)),
        "taste_row": usage(client, keys.user_view_key(user_id, namespace)),
        "profile": usage(client, keys.profile_key(user_id, namespace)),
    }


def catalog_keys(client: redis.Redis, namespace: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for view in ("trending", "title_release", "catalog_titles", "title_watches"):
        for key in client.scan_iter(f"{namespace}:{view}:*", count=1000):
            name = key.decode() if isinstance(key, bytes) else str(key)
            found[view] = found.get(view, 0) + usage(client, name)
    return found


def stats(values: Sequence[int]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(array.mean()), 1), "p50": float(np.percentile(array, 50)),
            "p99": float(np.percentile(array, 99)), "max": float(array.max())}


def projection(bytes_per_user: float, shard_gb: float) -> dict[str, Any]:
    total_gb = bytes_per_user * DESIGN_USERS / 1e9
    masters = math.ceil(total_gb / shard_gb)
    return {"users": DESIGN_USERS, "gb": round(total_gb, 1), "shard_gb": shard_gb,
            "masters": masters, "with_one_replica_gb": round(2 * total_gb, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=2000, help="world users sampled")
    parser.add_argument("--world-dir", default=".state/worlds/viewing")
    parser.add_argument("--shard-gb", type=float, default=25.0,
                        help="data per Redis Cluster master (leave headroom below its RAM)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULT))
    args = parser.parse_args(argv)

    settings = PlatformSettings()
    client = redis.Redis.from_url(settings.redis_url)
    namespace = settings.feature_namespace
    users = [str(u) for u in pd.read_parquet(Path(args.world_dir) / "users.parquet",
                                             columns=["user_id"])["user_id"]]
    sample = random.Random(args.seed).sample(users, min(args.users, len(users)))
    rows = [per_user(client, user, namespace)
            for user in tqdm(sample, desc="MEMORY USAGE per user", unit="user")]
    histories = [client.zcard(keys.history_key(user, namespace)) for user in sample]
    seeded = [r for r in rows if r["watch_history"] > 0]
    if not seeded:
        print("no seeded users in Redis: run `make seed` first", file=sys.stderr)
        return 1
    totals = [sum(r.values()) for r in seeded]
    caches = [usage(client, keys.rec_cache_key(user, namespace)) for user in sample]
    cached = [c for c in caches if c > 0]
    catalog = catalog_keys(client, namespace)
    titles = int(client.hlen(keys.title_release_key(namespace)) or 0)
    mean_user = float(np.mean(totals))
    info = client.info()
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "redis": {"version": info.get("redis_version"),
                  "used_memory": info.get("used_memory"), "keys": client.dbsize()},
        "world": args.world_dir, "users_sampled": len(sample), "users_seeded": len(seeded),
        "history_events": stats([h for h, r in zip(histories, rows, strict=True)
                                 if r["watch_history"] > 0]),
        "bytes_per_user": stats(totals),
        "bytes_per_user_by_key": {k: stats([r[k] for r in seeded]) for k in seeded[0]},
        "bytes_per_event": round(sum(r["watch_history"] for r in seeded)
                                 / max(sum(histories), 1), 1),
        "response_cache": {"users_holding_one": len(cached),
                           "bytes": stats(cached) if cached else None},
        "catalog": {"titles": titles, "bytes_by_key": catalog,
                    "bytes_per_title": round(sum(catalog.values()) / max(titles, 1), 1)},
        "projection": projection(mean_user, args.shard_gb),
    }
    # A real user's history is longer than the synthetic world's: the same sizes at the cap.
    fixed = mean_user - float(np.mean([r["watch_history"] for r in seeded]))
    at_cap = fixed + keys.HISTORY_CAP * result["bytes_per_event"]
    result["at_history_cap"] = {"events": keys.HISTORY_CAP, "bytes_per_user": round(at_cap),
                                "projection": projection(at_cap, args.shard_gb)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    p = result["projection"]
    print(f"{len(seeded)} seeded users sampled: {mean_user:,.0f} bytes per user on average "
          f"(p99 {result['bytes_per_user']['p99']:,.0f}; {result['bytes_per_event']} per watch "
          f"event); {result['catalog']['bytes_per_title']:,.0f} bytes per title")
    print(f"200 M users: {p['gb']:,} GB -> {p['masters']} masters at {p['shard_gb']:g} GB each "
          f"({p['with_one_replica_gb']:,} GB with one replica each) -> {out}")
    cap = result["at_history_cap"]
    print(f"every history at its cap of {cap['events']} events: {cap['bytes_per_user']:,} bytes "
          f"per user, {cap['projection']['gb']:,} GB, {cap['projection']['masters']} masters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
