"""The recommendation gate right after an A/B promotion (`make demo`'s end), before and after.

    .venv/bin/python benchmarks/recs_after_promotion.py --before REF [--turns 2]

`make demo` promotes the challenger ranker when its A/B test wins, then runs `make load` at the
demo's rates. This replays that end on servers of its own (free ports, nothing of `make run`
touched), with the recommender of REF (`git archive` into a temporary directory) and of this
checkout in turns, so the same machine's noise falls on both:

1. once: Redis and Kafka (the test harness's starters); the viewing world's history before its
   split replayed into Redis in process through the stream's watch handler, times moved to now,
   and the users' profiles, as `make seed` leaves them (the catalog's titles are not loaded:
   the ranker's own items serve, for both).
2. each run, REF's then this checkout's recommender, `--turns` times: a copy of the model
   repository (`.state/models`, ranker v1 in production) with v2 registered from v1's graph and
   embeddings (a retrain registers a copy of production's embeddings; the same graph makes both
   rankers cost the same); the response cache and the exposure marks emptied; the recommender
   started as `make run` starts it (its default workers); then the demo's steps:
   - baseline: rec-algorithm running, every world user asked once for 10 titles, 8 at a time
     (the simulator's `ask`: make ab-demo's viewers without their clicks);
   - the last A/B round: rec-algorithm stopped, `ranker-v2-r5` running (control: production
     v1, treatment: v2, as services/simulator/loop.py defines it), every user asked again;
   - the end: ranker-v2-r5 stopped, rec-algorithm running again, v2 promoted; once the
     recommender serves v2 (a cold list's model_version, then one refresh more for every
     worker), the demo's load: `make load`'s recs half with make demo's rate and duration
     (Locust closed loop, then the open loop), the same commands, then the same open loop
     uncached (`recs-uncached`: every list computed, the computed path's p99 at this rate).

Each load's p99, rate, requests, failures and gate verdict (its `_slo.csv`), where answers
came from (its `_served_from.csv`), and the recommender's cache lookups over the three loads.
Writes benchmarks/results/recs_after_promotion.json (date, machine, versions, load average at
each run's start, sample counts).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import redis
from tqdm import tqdm

from services.common.bus.envelope import decode_event
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import platform_topics
from services.common.loopback import free_port
from services.common.machine import describe as describe_machine
from services.common.models import ModelRepository
from services.common.probe import process_ready
from services.common.processes import stop_process
from services.designs.experiments.definitions import parse_definition
from services.designs.experiments.store import RedisDefinitionStore
from services.designs.recs.artifacts import load_item_artifacts
from services.designs.recs.redis_store import write_profiles
from services.devstack.servers import start_kafka, start_redis
from services.devstack.worktrees import checkout_commit, exported
from services.seeder.history import synthetic_history, watch_messages
from services.simulator.loop import DEFINITIONS_REFRESH_S, challenger_definition
from services.simulator.traffic import ask
from services.stream.watches import WatchFeaturesHandler

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT = REPO_ROOT / "benchmarks/results/recs_after_promotion.json"
PYTHON = sys.executable
NAMESPACE = "fs"
BASELINE = "rec-algorithm"
ROUND = "ranker-v2-r5"
COLD_PROBE = "u9999999"           # no world has it: a cold list, computed, names the version
UNCACHED = {"Cache-Control": "no-cache, no-store"}
STATS_REFRESH_S = 5.0             # the recommender's default: how often it looks for a promotion
LOADS = ("locust", "openloop", "openloop_uncached")


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the git ref measured beside this "
                                                        "checkout (e.g. main)")
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--rps", type=float, default=150.0, help="make demo's DEMO_RECS_RPS")
    parser.add_argument("--duration", default="15s", help="make demo's DEMO_LOAD_DURATION")
    parser.add_argument("--locust-users", type=int, default=30, help="make load's default")
    parser.add_argument("--concurrency", type=int, default=8, help="make ab-demo's viewers")
    parser.add_argument("--viewers", type=int, default=0,
                        help="world users asked in the baseline and the round (0: every one, "
                             "as make ab-demo's 6,000 of 6,000; fewer: a smoke run)")
    parser.add_argument("--models", type=Path, default=REPO_ROOT / ".state/models")
    parser.add_argument("--world-dir", type=Path, default=REPO_ROOT / ".state/worlds/viewing")
    parser.add_argument("--out", type=Path, default=RESULT)
    return parser.parse_args(argv)


# --- once: the servers and the seeded state --------------------------------------------------


def seed(client: redis.Redis, models: Path, world_dir: Path) -> dict[str, int]:
    """The viewing history before the split, moved to now, through the stream's handler (the
    taste vectors stamped with production v1's artifacts, as `make seed` leaves them)."""
    frames = [pd.read_parquet(world_dir / f"{name}.parquet")
              for name in ("users", "titles", "interactions")]
    history = synthetic_history(*frames)
    items = load_item_artifacts(ModelRepository(models))
    handler = WatchFeaturesHandler(client, items, NAMESPACE)
    shift = datetime.now(UTC) - history.split
    watches = 0
    for message in tqdm(watch_messages(history.history, shift), total=len(history.history),
                        desc="seed watches", unit="ev", mininterval=5):
        handler.handle(decode_event(message.value))
        watches += 1
        if watches % 2_000 == 0:
            handler.flush()
    handler.flush()
    write_profiles(client, history.profiles, NAMESPACE)
    return {"watches": watches, "profiles": len(history.profiles)}


# --- each run ---------------------------------------------------------------------------------


def repository_with_challenger(source: Path, into: Path) -> int:
    """A copy of `source` with v2 registered from production's graph and embeddings."""
    shutil.copytree(source, into)
    repository = ModelRepository(into)
    production = repository.production_version("ranker")
    assert production is not None
    meta = repository.metadata("ranker", production)
    return repository.register(
        "ranker", repository.model_path("ranker", production).read_bytes(),
        feature_names=list(meta.feature_names), metrics={}, training_data_hash="bench",
        description="challenger: production's graph and embeddings",
        extra_files={"embeddings.npz": repository.extra_file(
            "ranker", production, "embeddings.npz").read_bytes()})


def forget_caches(client: redis.Redis) -> int:
    """The response cache and the exposure marks: each run starts where the last one did."""
    removed = 0
    for pattern in (f"{NAMESPACE}:rec_cache:*", f"{NAMESPACE}:exp_exposure_logged:*"):
        batch = list(client.scan_iter(match=pattern, count=5_000))
        for start in range(0, len(batch), 5_000):
            removed += int(client.unlink(*batch[start:start + 5_000]))
    return removed


def set_running(store: RedisDefinitionStore, running: str | None, definitions: dict[str, Any]
                ) -> None:
    """`running` runs, every other experiment that chooses the algorithm is stopped."""
    for key, definition in definitions.items():
        store.put(parse_definition({**definition,
                                    "status": "running" if key == running else "stopped"}))
    time.sleep(DEFINITIONS_REFRESH_S)       # every worker has refreshed its definitions


def baseline_definition() -> dict[str, Any]:
    import tomllib  # noqa: PLC0415  (only here)
    with (REPO_ROOT / "config/experiments/experiments.toml").open("rb") as file:
        experiments = tomllib.load(file)["experiments"]
    found: dict[str, Any] = next(e for e in experiments if e["key"] == BASELINE)
    return found


def ask_everyone(url: str, users: list[str], concurrency: int, desc: str) -> dict[str, int]:
    served: dict[str, int] = {}
    with httpx.Client(timeout=30.0) as client, ThreadPoolExecutor(concurrency) as pool:
        for shown in tqdm(pool.map(lambda user: ask(client, url, user, 10), users),
                          total=len(users), desc=desc, unit="user", mininterval=5):
            served[shown.variant] = served.get(shown.variant, 0) + 1
    return served


def wait_for_version(url: str, wanted: int, timeout_s: float = 60.0) -> float:
    """Seconds until a computed cold list names `wanted`, then one refresh more (each worker
    looks for a promotion on its own clock)."""
    start = time.monotonic()
    with httpx.Client(timeout=10.0) as client:
        while time.monotonic() - start < timeout_s:
            answer = client.get(f"{url}/v1/recommendations/{COLD_PROBE}", params={"k": 10},
                                headers=UNCACHED).json()
            if answer["model_version"] == wanted:
                waited = time.monotonic() - start
                time.sleep(STATS_REFRESH_S + 1.0)
                return round(waited, 1)
            time.sleep(0.5)
    raise TimeoutError(f"the recommender did not serve v{wanted} within {timeout_s:.0f} s")


def scrape(url: str) -> dict[str, float]:
    """The recommender's cache lookups by result (every worker's, summed by /metrics)."""
    text = httpx.get(f"{url}/metrics", timeout=10.0).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("recommender_cache_lookups_total{"):
            name, value = line.rsplit(" ", 1)
            result = name.split('result="', 1)[1].split('"', 1)[0]
            out[result] = out.get(result, 0.0) + float(value)
    return out


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def load(url: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """make load's recs half (closed, then open loop), then the open loop uncached."""
    host, world = url, str(args.world_dir)
    rate = f"{args.rps:g}"
    commands = {
        "locust": [str(Path(PYTHON).with_name("locust")), "-f", "load-tests/recs.py",
                   "--headless", "--only-summary", "--host", host, "--users",
                   str(args.locust_users), "--spawn-rate", str(args.locust_users),
                   "--run-time", args.duration, "--target-rps", rate,
                   "--csv", str(out / "locust"), "--world-dir", world, "--mix", "population"],
        "openloop": [PYTHON, "load-tests/openloop.py", "recs", "--host", host, "--duration",
                     args.duration, "--rps", rate, "--arrival", "poisson", "--out",
                     str(out / "openloop"), "--world-dir", world, "--mix", "population"],
        "openloop_uncached": [PYTHON, "load-tests/openloop.py", "recs-uncached", "--host",
                              host, "--duration", args.duration, "--rps", rate, "--arrival",
                              "poisson", "--out", str(out / "openloop_uncached"),
                              "--world-dir", world, "--mix", "population"]}
    results: dict[str, Any] = {}
    for name, command in commands.items():
        before = scrape(url)
        code = subprocess.run(command, cwd=REPO_ROOT, check=False, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode
        after = scrape(url)
        [gate] = read_rows(out / f"{name}_slo.csv")
        served = {row["served_from"]: int(row["answers"])
                  for row in read_rows(out / f"{name}_served_from.csv")}
        results[name] = {
            "exit_code": code, "verdict": gate["verdict"], "problems": gate["problems"],
            "requests": int(gate["requests"]), "failures": int(gate["failures"]),
            "p50_ms": float(gate["p50_ms"]), "p95_ms": float(gate["p95_ms"]),
            "p99_ms": float(gate["p99_ms"]), "max_ms": float(gate["max_ms"]),
            "rps": round(float(gate["rps"]), 1), "served_from": served,
            "cache_share": round(served.get("cache", 0) / max(sum(served.values()), 1), 3),
            "cache_lookups": {k: int(after.get(k, 0) - before.get(k, 0)) for k in after}}
    return results


@contextmanager
def recommender(cwd: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen([PYTHON, "-m", "services.recommender"], cwd=cwd,
                                   env={**os.environ, **env, "MLSD_RECOMMENDER_PORT": str(port)},
                                   stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        if not process_ready(f"{url}/readyz", process, 120):
            raise RuntimeError(f"the recommender in {cwd} did not get ready: see {log}")
        yield url
    finally:
        stop_process(process, 30)


@dataclass(frozen=True)
class Servers:
    redis_url: str
    kafka: str
    client: redis.Redis


def run(name: str, checkout: Path, servers: Servers, users: list[str],
        args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    workdir = tmp / name
    workdir.mkdir()
    challenger = repository_with_challenger(args.models, workdir / "models")
    production = ModelRepository(workdir / "models").production_version("ranker")
    assert production is not None
    removed = forget_caches(servers.client)
    store = RedisDefinitionStore(servers.client, NAMESPACE)
    definitions = {BASELINE: baseline_definition(),
                   ROUND: challenger_definition(ROUND, production, challenger)}
    set_running(store, BASELINE, definitions)
    started = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
               "load_average": list(os.getloadavg())}
    env = {"MLSD_REDIS_URL": servers.redis_url, "MLSD_KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
           "MLSD_MODEL_REPOSITORY": str(workdir / "models")}
    with recommender(checkout, env, workdir / "recommender.log") as url:
        baseline = ask_everyone(url, users, args.concurrency, f"{name}: baseline")
        set_running(store, ROUND, definitions)
        round_ = ask_everyone(url, users, args.concurrency, f"{name}: {ROUND}")
        set_running(store, BASELINE, definitions)
        ModelRepository(workdir / "models").promote("ranker", challenger, actor="bench")
        promoted_at = time.monotonic()
        waited = wait_for_version(url, challenger)
        loads = load(url, args, workdir)
        since_promotion = round(time.monotonic() - promoted_at, 1)
    for what in LOADS:
        shown = loads[what]
        print(f"{name:>24} {what:>18}: p99 {shown['p99_ms']:7.1f} ms  {shown['rps']:6.1f} "
              f"req/s  cache {shown['cache_share']:.0%}  {shown['verdict']}", flush=True)
    return {"started": started, "keys_cleared": removed, "baseline_variants": baseline,
            "round_variants": round_, "seconds_until_v2_served": waited,
            "seconds_from_promotion_to_loads_end": since_promotion, "loads": loads}


def floors(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per code and load: the worst p99 (the floor a claim may rest on) and the cache shares."""
    out: dict[str, dict[str, Any]] = {}
    for code in ("before", "after"):
        mine = [r for r in runs if r["code"] == code]
        out[code] = {what: {
            "p99_ms_worst": max(r["loads"][what]["p99_ms"] for r in mine),
            "p99_ms_each": [r["loads"][what]["p99_ms"] for r in mine],
            "cache_share_each": [r["loads"][what]["cache_share"] for r in mine],
            "verdicts": [r["loads"][what]["verdict"] for r in mine]} for what in LOADS}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    users = [str(u) for u in pd.read_parquet(args.world_dir / "users.parquet",
                                             columns=["user_id"])["user_id"]]
    users = users[:args.viewers] if args.viewers else users
    with tempfile.TemporaryDirectory(prefix="recs-promotion-") as name:
        tmp = Path(name)
        before_commit = exported(args.before, tmp / "before")
        redis_server = start_redis(tmp / "servers")
        kafka_server = start_kafka(tmp / "servers")
        try:
            ensure_topics(kafka_server.address, platform_topics(3))
            client = redis.Redis.from_url(redis_server.address)
            began = time.monotonic()
            seeded: dict[str, float] = {**seed(client, args.models, args.world_dir)}
            seeded["seconds"] = round(time.monotonic() - began, 1)
            servers = Servers(redis_server.address, kafka_server.address, client)
            redis_version = str(client.info("server")["redis_version"])
            runs = []
            for turn in range(1, args.turns + 1):
                for code, where in (("before", tmp / "before"), ("after", REPO_ROOT)):
                    result = run(f"turn {turn} {code}", where, servers, users, args, tmp)
                    runs.append({"turn": turn, "code": code, **result})
            client.close()
        finally:
            kafka_server.stop()
            redis_server.stop()
    record = {
        "what": "make demo's end on its own servers: baseline, the last A/B round "
                f"({ROUND}), v2 promoted, then make load's recs half at make demo's rate, "
                "and the same open loop uncached; the recommender of `before` and of `after` "
                "in turns",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "versions": {"before": {"ref": args.before, "commit": before_commit},
                     "after": {"commit": checkout_commit()},
                     "redis": redis_version,
                     **{p: version(p) for p in ("numpy", "onnxruntime", "locust", "fastapi",
                                                "redis", "confluent-kafka")}},
        "settings": {"rps": args.rps, "duration": args.duration,
                     "locust_users": args.locust_users, "viewers_concurrency": args.concurrency,
                     "world_users": len(users), "k": 10, "mix": "population"},
        "seeded": seeded, "floors": floors(runs), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {args.out}")
    print(json.dumps(record["floors"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
