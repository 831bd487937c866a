"""Where the two cores go while one design takes load: each part of the local stack's CPU beside
the load's latency, rate by rate (services/devstack/probes.py ProcessCpu).

Needs the local stack running (`make run`, seeded: `make demo` leaves it so). For each --rates
step, load-tests/openloop.py sends the design's traffic for --duration, open loop, and every
part's CPU is sampled each second: a part is a supervisord program with its child processes
(Redis, Kafka and PostgreSQL are programs too), plus the load generator; `others` is what the
machine's busy time holds beyond them. The report gives each part's mean cores over the step
beside the step's p50 / p99 and the driver's own lag (a lagging driver measures itself too).

    .venv/bin/python -m benchmarks.stack_cpu fraud --rates 300,500 --duration 30s \\
        --out benchmarks/results/stack_cpu_fraud.json
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from services.common.machine import describe
from services.devstack.__main__ import process_info
from services.devstack.probes import ProcessCpu
from services.devstack.worktrees import commit

REPO = Path(__file__).resolve().parent.parent
LOAD_ARGS = {"fraud": (), "recs": ("--mix", "population")}


def tree(pid: int) -> set[int]:
    """A process and all its descendants (a service's workers, a scorer's children)."""
    try:
        parent = psutil.Process(pid)
        return {pid, *(child.pid for child in parent.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def stack_groups() -> dict[str, Callable[[], set[int]]]:
    programs = {name: int(info["pid"]) for name, info in process_info().items()
                if info.get("pid")}
    if not programs:
        raise SystemExit("the local stack is not running: `make run` (seeded: `make demo`)")
    return {name: functools.partial(tree, pid) for name, pid in programs.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def step(design: str, rate: float, duration_s: float, prefix: Path) -> dict[str, Any]:
    groups = stack_groups()
    load = subprocess.Popen(
        [sys.executable, "load-tests/openloop.py", design, "--rps", str(rate),
         "--duration", f"{duration_s}s", "--seed", "7", "--out", str(prefix),
         "--slo-p99-ms", "100000", *LOAD_ARGS[design]],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert load.stdout is not None
    for line in load.stdout:  # logged once the world is read, just before the schedule starts
        if " requests at " in line:
            break
    probe = ProcessCpu({**groups, "load generator": functools.partial(tree, load.pid)})
    started = time.monotonic()
    load.communicate(timeout=duration_s + 120)
    seconds = time.monotonic() - started
    samples = probe.stop()
    with Path(f"{prefix}_requests.csv").open() as rows_file:
        rows = list(csv.DictReader(rows_file))
    latencies = [float(r["latency_ms"]) for r in rows]
    lags = [float(r["lag_ms"]) for r in rows]
    names = sorted({name for s in samples for name in s["groups"]})
    cores = {name: round(statistics.fmean(s["groups"].get(name, 0.0) for s in samples), 3)
             for name in names}
    return {"offered_rps": rate, "requests": len(rows), "seconds": round(seconds, 1),
            "errors": sum(1 for r in rows if r["error"] or not r["status"].startswith("2")),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "driver_lag_p99_ms": round(percentile(lags, 99), 1),
            "machine_busy_cores": round(statistics.fmean(s["busy"] for s in samples), 3),
            "cores_by_part": dict(sorted(cores.items(), key=lambda kv: -kv[1])),
            "samples": len(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("design", choices=sorted(LOAD_ARGS))
    parser.add_argument("--rates", default="300,500", help="offered req/s, comma-separated")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds a step")
    parser.add_argument("--work-dir", default="reports/stack_cpu")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    started, machine = datetime.now(UTC), describe()
    steps = []
    for rate in (float(r) for r in args.rates.split(",")):
        steps.append(step(args.design, rate, args.duration,
                          Path(args.work_dir) / f"{args.design}_{int(rate)}"))
        print(json.dumps(steps[-1]), flush=True)
        time.sleep(3)  # the stack settles between steps
    report = {"what": f"each part of the local stack's CPU while {args.design} takes open-loop "
                      "load, beside the load's latency",
              "started": started.isoformat(), "finished": datetime.now(UTC).isoformat(),
              "machine": machine, "commit": commit(),
              "settings": {"design": args.design, "duration_s": args.duration,
                           "arrival": "poisson"},
              "steps": steps}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
