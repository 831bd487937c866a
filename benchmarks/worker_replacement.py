"""What replacing a dead worker costs: uvicorn's spawned worker against one forked from the
supervising parent (services/common/workers.py, `MLSD_WORKERS_START`).

Needs the local stack (`make demo`, or `make run` and `make seed`): the service under test uses
its Redis, Kafka and model server, but runs apart from it, on a free port with two workers. For
each start method, in turns (the order alternates by repeat):

1. idle: one worker killed (kill -9); the time until its replacement logs "Application startup
   complete.", and the CPU the replacement used until then (its user + system time);
2. under load: load-tests/openloop.py at --rps for --duration, one worker killed at --kill-at;
   the answers due in the WINDOW_S after the kill against those due in the WINDOW_S before it:
   p99, answers over the design's budget, errors. The machine's two cores are shared by the
   load, the service, the stack and the replacement starting: what the replacement takes, the
   workers serving lose.

    .venv/bin/python -m benchmarks.worker_replacement --service fraud --service recommender \\
        --repeats 3 --out benchmarks/results/worker_replacement.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from services.common.loopback import free_port
from services.common.machine import describe
from services.common.processes import stop_process
from services.common.workers import workers_of
from services.devstack.worktrees import commit

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WINDOW_S = 10.0
READY_LINE = "Application startup complete."
METHODS = ("spawn", "fork")
OPENLOOP_LEAD_S = 0.2  # openloop.py's START_LEAD_S: its first request is due this long after


@dataclass(frozen=True)
class Service:
    module: str
    env: str        # its settings' prefix: MLSD_<env>_PORT, MLSD_<env>_WORKERS
    design: str     # openloop.py's name for it
    budget_ms: float
    load_args: tuple[str, ...] = ()


SERVICES = {
    "fraud": Service("services.fraud", "FRAUD", "fraud", 50.0),
    "recommender": Service("services.recommender", "RECOMMENDER", "recs", 100.0,
                           ("--world-dir", ".state/worlds/viewing", "--mix", "population")),
}


class Running:
    """The service on its own port with two workers, its log in a file."""

    def __init__(self, service: Service, method: str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        env = {**os.environ, f"MLSD_{service.env}_PORT": str(self.port),
               f"MLSD_{service.env}_WORKERS": "2", "MLSD_WORKERS_START": method}
        with log.open("w") as out:
            self.process = subprocess.Popen([PYTHON, "-m", service.module], cwd=REPO, env=env,
                                            stdout=out, stderr=subprocess.STDOUT)
        self.wait_ready(2, 120.0)

    def ready_count(self) -> int:
        return self.log.read_text(errors="replace").count(READY_LINE)

    def wait_ready(self, count: int, timeout_s: float) -> float:
        """Seconds until the log has `count` start-ups complete."""
        start = time.monotonic()
        while self.ready_count() < count:
            if self.process.poll() is not None or time.monotonic() - start > timeout_s:
                raise RuntimeError(f"service not ready: see {self.log}")
            time.sleep(0.02)
        return time.monotonic() - start

    def workers(self) -> list[psutil.Process]:
        return workers_of(self.process.pid)

    def kill_one(self) -> dict[str, Any]:
        """kill -9 the oldest worker; its replacement's start: seconds until ready, its CPU."""
        before = self.ready_count()
        victim = min(self.workers(), key=lambda p: p.create_time())
        others = {p.pid for p in self.workers()} - {victim.pid}
        killed = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        replacement = None
        while replacement is None:
            fresh = [p for p in self.workers() if p.pid not in others and p.pid != victim.pid]
            replacement = fresh[0] if fresh else None
            if time.monotonic() - killed > 30:
                raise RuntimeError("no replacement worker")
            time.sleep(0.01)
        seen_s = time.monotonic() - killed
        ready_s = seen_s + self.wait_ready(before + 1, 60.0)
        times = replacement.cpu_times()
        return {"replacement_seen_s": round(seen_s, 3), "ready_s": round(ready_s, 3),
                "replacement_cpu_s_until_ready": round(times.user + times.system, 3)}

    def stop(self) -> None:
        stop_process(self.process, 30)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def window(rows: list[dict[str, str]], start: float, end: float, budget_ms: float
           ) -> dict[str, Any]:
    inside = [r for r in rows if start <= float(r["due_s"]) < end]
    latencies = [float(r["latency_ms"]) for r in inside]
    errors = sum(1 for r in inside if r["error"] or not r["status"].startswith("2"))
    p99 = percentile(latencies, 99)
    return {"answers": len(inside), "errors": errors,
            "over_budget": sum(1 for v in latencies if v > budget_ms),
            "p50_ms": percentile(latencies, 50),
            "p99_ms": None if p99 is None else round(p99, 1),
            "max_ms": round(max(latencies), 1) if latencies else None}


def under_load(running: Running, service: Service, args: argparse.Namespace, prefix: Path
               ) -> dict[str, Any]:
    load = subprocess.Popen(
        [PYTHON, "load-tests/openloop.py", service.design,
         "--host", f"http://127.0.0.1:{running.port}", "--rps", str(args.rps[service.design]),
         "--duration", f"{args.duration}s", "--seed", "7", "--out", str(prefix),
         "--slo-p99-ms", "100000", *service.load_args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert load.stdout is not None
    for line in load.stdout:  # logged once the world is read, just before the schedule starts
        if " requests at " in line:
            break
    schedule_start = time.monotonic() + OPENLOOP_LEAD_S
    time.sleep(max(0.0, schedule_start + args.kill_at - time.monotonic()))
    kill_s = time.monotonic() - schedule_start
    replaced = running.kill_one()
    load.communicate(timeout=args.duration + 120)
    with Path(f"{prefix}_requests.csv").open() as rows_file:
        rows = list(csv.DictReader(rows_file))
    return {"kill_at_s": round(kill_s, 2), **replaced,
            "before": window(rows, kill_s - WINDOW_S, kill_s, service.budget_ms),
            "after": window(rows, kill_s, kill_s + WINDOW_S, service.budget_ms)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    runs_dir = Path(args.work_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for repeat in range(args.repeats):
        order = METHODS if repeat % 2 == 0 else METHODS[::-1]
        for name in args.service:
            service = SERVICES[name]
            for method in order:
                tag = f"{name}_{method}_{repeat}"
                print(f"{datetime.now(UTC):%H:%M:%S} {tag}", flush=True)
                running = Running(service, method, runs_dir / f"{tag}.log")
                try:
                    time.sleep(2)
                    idle = running.kill_one()
                    time.sleep(2)
                    loaded = under_load(running, service, args, runs_dir / tag)
                finally:
                    running.stop()
                runs.append({"service": name, "method": method, "repeat": repeat,
                             "idle": idle, "under_load": loaded,
                             "load_average_after": list(os.getloadavg())})
                print(json.dumps(runs[-1]), flush=True)
    return {"runs": runs, "summary": summary(runs)}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per service and method, the median of each measure over the repeats."""
    out: dict[str, Any] = {}
    for name in sorted({r["service"] for r in runs}):
        for method in METHODS:
            mine = [r for r in runs if r["service"] == name and r["method"] == method]
            if not mine:
                continue

            def median(values: list[Any]) -> float | None:
                present = [v for v in values if v is not None]
                return round(statistics.median(present), 3) if present else None

            out.setdefault(name, {})[method] = {
                "repeats": len(mine),
                "idle_ready_s": median([r["idle"]["ready_s"] for r in mine]),
                "idle_cpu_s": median([r["idle"]["replacement_cpu_s_until_ready"]
                                      for r in mine]),
                "loaded_ready_s": median([r["under_load"]["ready_s"] for r in mine]),
                "loaded_cpu_s": median([r["under_load"]["replacement_cpu_s_until_ready"]
                                        for r in mine]),
                "over_budget_after": [r["under_load"]["after"]["over_budget"] for r in mine],
                "over_budget_before": [r["under_load"]["before"]["over_budget"] for r in mine],
                "p99_after_ms": [r["under_load"]["after"]["p99_ms"] for r in mine],
                "p99_before_ms": [r["under_load"]["before"]["p99_ms"] for r in mine],
                "errors_after": [r["under_load"]["after"]["errors"] for r in mine],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", action="append", choices=sorted(SERVICES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fraud-rps", type=float, default=150.0)
    parser.add_argument("--recs-rps", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--kill-at", type=float, default=15.0)
    parser.add_argument("--work-dir", default="reports/worker_replacement")
    parser.add_argument("--out", default="benchmarks/results/worker_replacement.json")
    args = parser.parse_args()
    args.service = args.service or ["fraud", "recommender"]
    args.rps = {"fraud": args.fraud_rps, "recs": args.recs_rps}
    started = datetime.now(UTC)
    machine = describe()
    results = run(args)
    report = {"what": "a dead worker replaced: spawned (uvicorn's way) against forked from the "
                      "supervising parent; two workers a service, beside the local stack",
              "started": started.isoformat(), "finished": datetime.now(UTC).isoformat(),
              "machine": machine, "load_average_after": list(os.getloadavg()),
              "versions": {"uvicorn": metadata.version("uvicorn"), "python": machine["python"]},
              "commit": commit(),
              "settings": {"services": args.service, "repeats": args.repeats, "rps": args.rps,
                           "duration_s": args.duration, "kill_at_s": args.kill_at,
                           "window_s": WINDOW_S, "workers": 2,
                           "budgets_ms": {n: SERVICES[n].budget_ms for n in args.service}},
              **results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(results["summary"], indent=1))


if __name__ == "__main__":
    main()
