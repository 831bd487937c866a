"""Feast's side of the feature-read comparison; runs in the peers' Feast virtualenv, not ours.

    .cache/peers-venv/feast/bin/python benchmarks/peers/feast_side.py --repo DIR --redis HOST:PORT

Writes a Feast feature repository to DIR (feature_store.yaml, a Redis online store on the given
server), registers the same 5 views x 10 features of entity `user` as our store's benchmark
catalog, writes the same values for user0..user99 straight to the online store, then answers
the driver (benchmarks/peers/run.py) one JSON line per command on stdin:

    {"cmd": "read", "entities": 100, "samples": 500}  ->  {"samples_us": [...], "rows": n}
    {"cmd": "versions"}                               ->  {"feast": "0.67.0", ...}

so the driver can take turns between Feast and our store in one run. The repository it leaves
is what `feast serve` (Feast's Python feature server) serves over HTTP. It imports nothing from
the project: the Feast virtualenv has none of its packages.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float64, Int64, String

VIEWS, FEATURES_PER_VIEW, ENTITIES = 5, 10, 100
# The kinds and values of benchmarks/feature_store_read.py's catalog: 6 floats, 2 ints, a
# string, a bool per view.
KINDS = [(Float64, 1234.5678)] * 6 + [(Int64, 42)] * 2 + [(String, "PT"), (Bool, True)]

CONFIG = """\
project: peers
provider: local
registry: {repo}/registry.db
online_store:
  type: redis
  connection_string: "{redis}"
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def feature_refs() -> list[str]:
    return [f"bench_view_{v}:f{i}" for v in range(VIEWS) for i in range(FEATURES_PER_VIEW)]


def frame(now: datetime) -> pd.DataFrame:
    columns: dict[str, Any] = {"user": [f"user{e}" for e in range(ENTITIES)],
                               "event_timestamp": [now] * ENTITIES}
    for i, (_, value) in enumerate(KINDS):
        columns[f"f{i}"] = [value] * ENTITIES
    return pd.DataFrame(columns)


def build(repo: Path, redis: str) -> FeatureStore:
    """The repository, applied, with every view's rows in the online store."""
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(CONFIG.format(repo=repo, redis=redis))
    now = datetime.now(UTC).replace(microsecond=0)
    data = frame(now)
    source_path = repo / "users.parquet"
    data.to_parquet(source_path)  # Feast requires a batch source; reads never touch it
    user = Entity(name="user", join_keys=["user"], value_type=ValueType.STRING)
    views = [
        FeatureView(
            name=f"bench_view_{v}", entities=[user], ttl=timedelta(hours=1),
            schema=[Field(name=f"f{i}", dtype=kind) for i, (kind, _) in enumerate(KINDS)],
            source=FileSource(path=str(source_path), timestamp_field="event_timestamp"),
            online=True)
        for v in range(VIEWS)]
    store = FeatureStore(repo_path=str(repo))
    store.apply([user, *views])
    for view in views:
        store.write_to_online_store(view.name, data)
    return store


def read_samples(store: FeatureStore, entities: int, samples: int) -> tuple[list[float], int]:
    refs = feature_refs()
    rows = [{"user": f"user{e}"} for e in range(entities)]
    got: dict[str, list[Any]] = {}
    timings = []
    for _ in range(samples):
        start = time.perf_counter_ns()
        got = store.get_online_features(features=refs, entity_rows=rows,
                                        full_feature_names=True).to_dict()
        timings.append((time.perf_counter_ns() - start) / 1000)
    # Every value present: a read that found nothing would be fast and wrong.
    found = sum(value is not None for name, values in got.items() if name != "user"
                for value in values)
    return timings, found


def versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name)
            for name in ("feast", "redis", "pandas", "pyarrow", "protobuf", "fastapi")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--redis", required=True, help="host:port of the online store")
    args = parser.parse_args()
    store = build(args.repo.resolve(), args.redis)
    read_samples(store, ENTITIES, 20)  # warm: registry cache, connection, imports
    gc.collect()
    gc.freeze()  # as our side does after start-up: the start-up heap leaves the GC's view
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "read":
            timings, found = read_samples(store, command["entities"], command["samples"])
            answer: dict[str, Any] = {"samples_us": timings, "values_found": found}
        elif command["cmd"] == "versions":
            answer = versions()
        else:
            break
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
