"""CPU per recommendation by process, side by side in one run; and the cores the brief's rates need.

    make run && make seed
    .venv/bin/python benchmarks/recs_cpu.py [--rps 200] [--duration 20]
    .venv/bin/python benchmarks/recs_cpu.py --before REF --out benchmarks/results/<name>.json

Each configuration starts its own recommender process (one worker) on a free port against the
running stack's Redis and Kafka, drives it with the open-loop driver at --rps for --duration
seconds, and reads the CPU seconds every process spent meanwhile (psutil: user + system, all
threads): the recommender, Redis, the Kafka broker, the stream processor (it consumes the
impressions and exposures), the lake sink (it writes every event to Parquet), and the driver.
Divided by the requests answered: ms of CPU per request, per process. The configurations, in
one run so noise hits them alike:

- uncached, BLAS 1 thread: every list computed (`Cache-Control: no-cache, no-store`);
- uncached, BLAS 2 threads: the same with numpy's BLAS left at its default on 2 cores, to show
  what MLSD_BLAS_THREADS=1 buys;
- cached: the same traffic (same seed) twice without the header; the second pass is measured,
  when nearly every list is in the cache;
- the floor: load-tests/floor.py, fixed answers, what FastAPI and the driver cost alone.

With --before REF, the recommender of that git ref (`git archive` into a temporary directory,
run from there) is measured too, uncached and cached, each right before this checkout's same
configuration: a change's effect as ratios (after / before) from one run on one load.

Then the capacity line: cores for 11,600 and 35,000 req/s (the brief's 1 B a day, on average
and at a 3x peak) at a cache hit ratio h, as R x (h x hit + (1 - h) x miss), the service's,
Redis's, Kafka's and the stream's CPU per request counted: the serving path. The lake's share
is reported beside it, not in it (analytics is sized on its own).
Writes benchmarks/results/recs_cpu.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil

from services.common.loopback import free_port
from services.common.machine import describe as describe_machine
from services.common.probe import process_ready
from services.common.settings import PlatformSettings
from services.devstack.worktrees import commit, exported
from services.lake.settings import LakeSettings
from services.stream.settings import StreamSettings

RESULT = Path("benchmarks/results/recs_cpu.json")
BRIEF_RATES = {"average (1 B a day)": 11_600, "peak (3x)": 35_000}
PYTHON = sys.executable
VERSIONED = ("fastapi", "starlette", "uvicorn", "pydantic", "redis", "numpy", "onnxruntime",
             "confluent-kafka")  # what a request runs through


def listening_on(port: int) -> psutil.Process | None:
    """The process listening on a loopback port: the stack's own Redis, broker, stream
    processor (other copies may run on this machine, on other ports)."""
    for connection in psutil.net_connections(kind="tcp"):
        if (connection.status == psutil.CONN_LISTEN and connection.laddr
                and connection.laddr.port == port and connection.pid):
            return psutil.Process(connection.pid)
    return None


def stack_processes() -> dict[str, psutil.Process | None]:
    platform_settings, stream = PlatformSettings(), StreamSettings()
    redis_port = urlparse(platform_settings.redis_url).port or 6379
    kafka_port = int(platform_settings.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    return {"redis": listening_on(redis_port), "kafka": listening_on(kafka_port),
            "stream": listening_on(stream.stream_port),
            "lake": listening_on(LakeSettings().lake_port)}


def cpu_s(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    times = proc.cpu_times()
    return float(times.user + times.system)


@contextmanager
def server(command: list[str], port: int, env: dict[str, str],
           cwd: Path | None = None) -> Iterator[psutil.Process]:
    """`cwd`: another checkout's root; `python -m` imports the services from there."""
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # an answer, not /readyz: the floor has none, and the first list warms the process
        if not process_ready(f"http://127.0.0.1:{port}/v1/recommendations/warm", process, 60):
            raise RuntimeError(f"{command} did not answer on port {port}")
        yield psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(30)


@dataclass(frozen=True)
class Drive:
    answered: int
    served_from: dict[str, int]
    p50_ms: float
    p99_ms: float
    driver_cpu_s: float


def drive(design: str, port: int, args: argparse.Namespace, out: Path) -> Drive:
    before = os.times()
    subprocess.run([PYTHON, "load-tests/openloop.py", design, "--host",
                    f"http://127.0.0.1:{port}", "--rps", str(args.rps), "--duration",
                    f"{args.duration}s", "--seed", str(args.seed), "--world-dir", args.world_dir,
                    "--out", str(out), "--slo-p99-ms", "100000"],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = os.times()
    with open(f"{out}_served_from.csv") as f:
        served = {row["served_from"]: int(row["answers"]) for row in csv.DictReader(f)}
    with open(f"{out}_slo.csv") as f:
        [row] = list(csv.DictReader(f))
    return Drive(int(row["requests"]) - int(row["failures"]), served, float(row["p50_ms"]),
                 float(row["p99_ms"]),
                 (after.children_user + after.children_system)
                 - (before.children_user + before.children_system))


def measured(name: str, command: list[str], env: dict[str, str], design: str,
             args: argparse.Namespace, tmp: Path, warm_first: bool = False,
             cwd: Path | None = None) -> dict[str, Any]:
    port = free_port()
    others = stack_processes()
    with server([*command, *(["--port", str(port)] if "floor" in name else [])], port,
                {**env, "MLSD_RECOMMENDER_PORT": str(port)}, cwd) as proc:
        if warm_first:
            drive(design, port, args, tmp / f"{name}-warm")
        start = {"service": cpu_s(proc), **{k: cpu_s(p) for k, p in others.items()}}
        run = drive(design, port, args, tmp / name)
        end = {"service": cpu_s(proc), **{k: cpu_s(p) for k, p in others.items()}}
    per_request = {k: round((end[k] - start[k]) * 1000 / max(run.answered, 1), 3) for k in start}
    per_request["driver"] = round(run.driver_cpu_s * 1000 / max(run.answered, 1), 3)
    print(f"{name:28} {run.answered:6} answered  served_from {run.served_from}  "
          f"p50 {run.p50_ms} p99 {run.p99_ms} ms  CPU ms/request {per_request}", flush=True)
    return {"answered": run.answered, "served_from": run.served_from, "p50_ms": run.p50_ms,
            "p99_ms": run.p99_ms, "cpu_ms_per_request": per_request,
            "processes_found": {k: p is not None for k, p in others.items()}}


def capacity(miss: dict[str, float], hit: dict[str, float],
             hit_ratios: Sequence[float]) -> list[dict[str, Any]]:
    """Cores for the brief's rates: the recommender's, Redis's, Kafka's and the stream's CPU."""
    parts = ("service", "redis", "kafka", "stream")
    per_miss, per_hit = sum(miss[p] for p in parts), sum(hit[p] for p in parts)
    plan = []
    for h in hit_ratios:
        ms = h * per_hit + (1 - h) * per_miss
        for what, rate in BRIEF_RATES.items():
            plan.append({"rate": what, "req_s": rate, "hit_ratio": h,
                         "cpu_ms_per_request": round(ms, 3),
                         "cores": round(rate * ms / 1000, 1),
                         "req_s_per_core": round(1000 / ms)})
    return plan


def ratios(runs: dict[str, dict[str, Any]], ref: str) -> dict[str, dict[str, float]]:
    """After / before for each configuration measured at both: service CPU a request, p50, p99."""
    out = {}
    for name, before in runs.items():
        if not name.endswith(f", {ref}"):
            continue
        after = runs[name.removesuffix(f", {ref}")]
        out[name.removesuffix(f", {ref}")] = {
            "service_cpu": round(after["cpu_ms_per_request"]["service"]
                                 / before["cpu_ms_per_request"]["service"], 3),
            "p50": round(after["p50_ms"] / before["p50_ms"], 3),
            "p99": round(after["p99_ms"] / before["p99_ms"], 3)}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rps", type=float, default=200)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--world-dir", default=".state/worlds/viewing")
    parser.add_argument("--hit-ratios", default="0,0.5,0.8",
                        help="cache hit ratios the capacity line is computed at")
    parser.add_argument("--out", default=str(RESULT))
    parser.add_argument("--before", metavar="REF",
                        help="also measure this git ref's recommender, uncached and cached, "
                             "each beside this checkout's (after / before ratios)")
    args = parser.parse_args(argv)
    recommender = [PYTHON, "-m", "services.recommender"]
    one = {"MLSD_RECOMMENDER_WORKERS": "1", "MLSD_LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        before = tmp / "before"
        before_commit = exported(args.before, before) if args.before else None
        runs: dict[str, dict[str, Any]] = {}

        def both(name: str, env: dict[str, str], design: str, warm_first: bool = False) -> None:
            """This checkout's configuration, right after the --before ref's when there is one."""
            if args.before:
                runs[f"{name}, {args.before}"] = measured(
                    f"{name}, {args.before}", recommender, env, design, args, tmp, warm_first,
                    cwd=before)
            runs[name] = measured(name, recommender, env, design, args, tmp, warm_first)

        both("uncached, BLAS 1 thread", {**one, "MLSD_BLAS_THREADS": "1"}, "recs-uncached")
        if not args.before:   # a before/after run keeps to the configurations it compares
            runs["uncached, BLAS 2 threads"] = measured(
                "uncached, BLAS 2 threads", recommender, {**one, "MLSD_BLAS_THREADS": "2"},
                "recs-uncached", args, tmp)
        both("cached (second pass)", one, "recs", warm_first=True)
        runs["floor"] = measured("floor", [PYTHON, "load-tests/floor.py"], {}, "recs", args, tmp)
    hit_ratios = [float(h) for h in args.hit_ratios.split(",")]
    plan = capacity(runs["uncached, BLAS 1 thread"]["cpu_ms_per_request"],
                    runs["cached (second pass)"]["cpu_ms_per_request"], hit_ratios)
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "versions": {package: version(package) for package in VERSIONED},
        "load": {"rps": args.rps, "duration_s": args.duration, "seed": args.seed,
                 "driver": "load-tests/openloop.py, poisson arrivals, population mix"},
        "runs": runs, "capacity": plan,
    }
    if args.before:
        head = commit()
        result["before"] = {"ref": args.before, "commit": before_commit, "after_commit": head,
                            "after_over_before": ratios(runs, args.before)}
        print(f"after / before ({args.before}): {result['before']['after_over_before']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for line in plan:
        print(f"{line['rate']:>20} {line['req_s']:>6} req/s at hit ratio {line['hit_ratio']:.2f}: "
              f"{line['cpu_ms_per_request']} ms CPU a request -> {line['cores']} cores "
              f"({line['req_s_per_core']} req/s per core)")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
