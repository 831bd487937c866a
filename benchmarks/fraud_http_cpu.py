"""The fraud service's CPU a request, side by side: two checkouts (or more) and the bare floor.

    PYTHONPATH=. .venv/bin/python benchmarks/fraud_http_cpu.py --models .state/models \
        --world .state/worlds/transactions --tree before=/tmp/before --tree after=. \
        [--env after:MLSD_FRAUD_HTTP_MAX_BATCH=16] [--rates 300,500,700] \
        [--step-duration 20s] [--repeats 3]

Each --tree is a source tree (a `git worktree` of the commit to compare; one tree may be named
twice, to compare settings: --env NAME:VARIABLE=VALUE sets one for that target alone): its
`python -m services.fraud` (MLSD_FRAUD_WORKERS=1) runs from there on a free port, with a
redis-server of its own (the same transactions go to every target: a shared Redis would answer
the second one from the first one's idempotency window) and one Kafka broker for all. The
floor (load-tests/floor.py, one process) answers beside them. At each rate every target gets
the same arrival times and transactions (load-tests/sweep.py's driver, open loop, Poisson), the
targets in rotating order, --repeats rounds over the rates; around each step the target's CPU
(the service process and its children) and its Redis's CPU are read from /proc. The figure to
compare is CPU a request: it moves less with the machine's other tenants than a p99 does.
Writes benchmarks/results/fraud_http_cpu.json and prints the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "load-tests"))

import openloop  # load-tests/ is not a package: on sys.path above
import slo
import sweep
import viewers

from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import platform_topics
from services.common.loopback import free_port
from services.common.probe import process_ready
from services.devstack.servers import REPO_ROOT, start_kafka, start_redis

logger = logging.getLogger("fraud_http_cpu")
OUT = REPO_ROOT / "benchmarks" / "results" / "fraud_http_cpu.json"
FLOOR = "floor"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children alive now."""
    process = psutil.Process(pid)
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return total


@dataclass
class Service:
    name: str
    url: str
    pid: int
    redis_pid: int | None
    tree: str
    commit: str
    steps: list[dict[str, Any]] = field(default_factory=list)


def tree_commit(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "describe", "--always", "--dirty"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


@contextmanager
def fraud_from(name: str, tree: Path, env: dict[str, str], work: Path) -> Iterator[Service]:
    """The service from `tree` with `env` and its own redis-server, answering."""
    redis = start_redis(work / name)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (work / f"fraud-{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.fraud"], cwd=tree, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, **env, "PYTHONPATH": str(tree), "MLSD_REDIS_URL": redis.address,
             "MLSD_FRAUD_PORT": str(port), "MLSD_FRAUD_WORKERS": "1"})
    try:
        if not process_ready(f"{url}/readyz", process, 120):
            raise RuntimeError(f"fraud from {tree} did not start: see {log.name}")
        yield Service(name, url, process.pid, redis.process.pid, str(tree), tree_commit(tree))
    finally:
        process.terminate()
        process.wait(40)
        log.close()
        redis.stop()


def step(service: Service, target: sweep.Target, rate: float, due: list[float],
         design: openloop.Design, settings: sweep.Settings, repeat: int) -> dict[str, Any]:
    target.tally.clear()
    before = cpu_seconds(service.pid)
    redis_before = cpu_seconds(service.redis_pid) if service.redis_pid else 0.0
    run = asyncio.run(sweep.run_step(target, rate, due, design.endpoint, settings))
    cpu = cpu_seconds(service.pid) - before
    redis_cpu = (cpu_seconds(service.redis_pid) - redis_before) if service.redis_pid else 0.0
    measured = sweep.measure("fraud", service.name, rate, run,
                             slo.Slo({design.endpoint: design.p99_budget_ms}), design.endpoint,
                             settings.arrival, target.tally.problems())
    row = {**asdict(measured), "repeat": repeat, "cpu_s": round(cpu, 3),
           "redis_cpu_s": round(redis_cpu, 3),
           "cpu_ms_per_request": round(1000 * cpu / max(1, measured.requests), 4),
           "redis_cpu_ms_per_request": round(1000 * redis_cpu / max(1, measured.requests), 4)}
    logger.info("%s  cpu %.3f ms/request (Redis %.3f)", sweep.progress_line(measured),
                row["cpu_ms_per_request"], row["redis_cpu_ms_per_request"])
    return row


def medians(service: Service) -> dict[str, dict[str, float]]:
    by_rate: dict[str, dict[str, float]] = {}
    for rate in sorted({s["offered_rps"] for s in service.steps}):
        steps = [s for s in service.steps if s["offered_rps"] == rate]
        by_rate[f"{rate:g}"] = {
            key: round(statistics.median(s[key] for s in steps), 4)
            for key in ("cpu_ms_per_request", "redis_cpu_ms_per_request", "p50_ms", "p99_ms",
                        "achieved_rps")}
    return by_rate


def parse_tree(value: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep or not name or name == FLOOR or not (Path(path) / "services").is_dir():
        raise SystemExit(f"--tree takes NAME=PATH, PATH a source tree of this project and NAME "
                         f"not {FLOOR!r}, got {value!r}")
    return name, path


def parse_env(values: list[str], names: set[str]) -> dict[str, dict[str, str]]:
    settings: dict[str, dict[str, str]] = {name: {} for name in names}
    for value in values:
        name, _, assignment = value.partition(":")
        variable, sep, setting = assignment.partition("=")
        if name not in names or not sep or not variable:
            raise SystemExit(f"--env takes NAME:VARIABLE=VALUE with NAME one of the --tree "
                             f"names ({', '.join(sorted(names))}), got {value!r}")
        settings[name][variable] = setting
    return settings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s/%(name)s: %(message)s")
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=Path, required=True, help="a trained model repository")
    parser.add_argument("--world", type=Path, required=True, help="the transactions world")
    parser.add_argument("--tree", action="append", default=[],
                        help="NAME=PATH, a source tree to run the service from (repeatable)")
    parser.add_argument("--env", action="append", default=[],
                        help="NAME:VARIABLE=VALUE, a setting for one target (repeatable)")
    parser.add_argument("--rates", type=sweep.parse_rates, default=(300, 500, 700))
    parser.add_argument("--step-duration", default="20s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    trees = dict(parse_tree(value) for value in args.tree or [f"this={REPO_ROOT}"])
    extra = parse_env(args.env, set(trees))
    settings = sweep.Settings(args.rates, openloop.parse_duration(args.step_duration), 1.0,
                              openloop.POISSON, 1, 5.0, 100)
    design = openloop.DESIGNS["fraud"]
    started, at_start = datetime.now(UTC), sweep.machine()
    with tempfile.TemporaryDirectory(prefix="fraud-http-cpu-") as scratch, ExitStack() as stack:
        work = Path(scratch)
        kafka = start_kafka(work)
        stack.callback(kafka.stop)
        ensure_topics(kafka.address, platform_topics(3))
        env = {"MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka.address,
               "MLSD_MODEL_REPOSITORY": str(args.models.resolve()), "MLSD_LOG_LEVEL": "WARNING"}
        services = [stack.enter_context(fraud_from(name, Path(path).resolve(),
                                                   {**env, **extra[name]}, work))
                    for name, path in trees.items()]
        floor_url = stack.enter_context(sweep.floor_server())
        floor_pid = next(p.pid for p in psutil.Process().children()
                         if "floor.py" in " ".join(p.cmdline()))
        services.append(Service(FLOOR, floor_url, floor_pid, None, "load-tests/floor.py",
                                tree_commit(REPO_ROOT)))
        targets = {s.name: sweep.Target(s.name, s.url, design.calls(
            args.world, random.Random(settings.seed), tally), tally)
            for s in services for tally in [viewers.Tally()]}
        # one unrecorded step each first: the first requests load scripts, fill caches
        warm = openloop.schedule(100, 5.0, settings.arrival, random.Random(0))
        for s in services:
            asyncio.run(sweep.run_step(targets[s.name], 100, warm, design.endpoint, settings))
        order = list(services)
        for repeat in range(args.repeats):
            for index, rate in enumerate(settings.rates):
                due = openloop.schedule(rate, settings.step_s, settings.arrival,
                                        random.Random(settings.seed + 1000 * repeat + index))
                for s in order:
                    s.steps.append(step(s, targets[s.name], rate, list(due), design, settings,
                                        repeat))
                    time.sleep(settings.pause_s)
                order = order[1:] + order[:1]
    result = {
        "what": "POST /v1/score open loop (Poisson), the fraud service (1 worker, its own Redis) "
                "from each source tree and the bare floor, in rotating order; CPU a request of "
                "the service process and of its Redis, read from /proc around each step",
        "started": started.isoformat(), "finished": datetime.now(UTC).isoformat(),
        "machine": {"at_start": at_start, "at_end": sweep.machine()},
        "versions": sweep.versions(),
        "settings": {**asdict(settings), "repeats": args.repeats,
                     "budget_ms": design.p99_budget_ms, "models": str(args.models),
                     "world": str(args.world), "redis": "one empty redis-server per target"},
        "targets": {s.name: {"tree": s.tree, "commit": s.commit, "env": extra.get(s.name, {}),
                             "medians": medians(s),
                             "steps": s.steps} for s in services},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for s in services:
        for rate, m in result["targets"][s.name]["medians"].items():
            logger.info("MEDIAN %-8s %5s req/s: cpu %.3f ms/request, Redis %.3f, p50 %g, p99 %g ms",
                        s.name, rate, m["cpu_ms_per_request"], m["redis_cpu_ms_per_request"],
                        m["p50_ms"], m["p99_ms"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
