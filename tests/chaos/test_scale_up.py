"""The autoscaler under a load step: one recommender worker is overwhelmed, the controller adds
workers (SIGTTIN to uvicorn's supervisor) and the p99 comes back inside budget, nothing restarted;
the same step without the controller stays over budget.

The recommender runs uncached with wide candidate lists and long lists (k=100), so a request
costs about 5 ms of CPU, nearly all of it Python under one interpreter lock: one worker serves at
most about one core's worth whatever the machine has free. The step is not a fixed rate: the run
first measures what one worker serves when never idle (a closed loop, on what the shared cores
give it now) and steps to STEP_FACTOR times that, a rate one worker cannot serve while the
machine still has idle cores for more workers (both measured and reported). Every worker's
requests, CPU and connections are sampled each second: a worker added behind one socket gets only
connections opened after it started, so without the services' connection recycling
(MLSD_HTTP_MAX_CONNECTION_AGE_S=0) the load stays on the first worker.

Recovery is judged on SETTLED_S seconds with the controller at rest: the last SETTLED_S of the
step, unless the controller added a worker less than REACT_S before they began. Then the step
goes on for REACT_S + SETTLED_S more seconds and its last SETTLED_S are judged (once). Why: the
machine's other tenants change what each worker gets during the run, and the controller answers
a loss of capacity by adding a worker, after two windows over budget (its hysteresis), so the
seconds before a late step are over budget by design. A fresh clone's run (2026-12-06 21:12
UTC) failed the old fixed window by one second that way: two workers had held the step for
30 s, other work took cores, 3 seconds went over budget and the controller added a third worker
10 s before the end. The same budget and the same 18 of 20 seconds are asked, of a window the
controller is at rest in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from services.autoscaler.observe import worker_count
from services.devstack.probes import ProcessCpu
from tests.chaos.load import (
    Answer,
    closed_loop_gets,
    open_loop_gets,
    per_second,
    percentile,
    watch_events,
    write_report,
)
from tests.chaos.processes import WorkerSampler
from tests.e2e.conftest import ServiceProcess, StartService
from tests.harness import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

# The step's rate: STEP_FACTOR times one worker's measured capacity. A fixed rate (150 to 210/s
# in the runs of benchmarks/results/chaos/scale_up_connections/) overloaded one worker on some
# runs and not on others, and on the loaded ones asked the added workers for more than the
# shared cores had. A worker is held to about a core by its interpreter lock; two or three of
# them get more of the machine than one, from idle cores or, when other work is runnable, from
# the scheduler's share per runnable thread (three workers beside one busy thread of other work
# get 1.5 cores where one worker gets 1). 1.2 overloads one worker (its backlog grows by a fifth
# of what it serves, every second: p99 9 to 11 s after 30 s) and leaves the added workers a
# margin; at 1.3 three workers on a loaded machine (load average 9) barely kept up
# (benchmarks/results/chaos/scale_up_knee/earlier/).
STEP_FACTOR = 1.2
PROBE_S, PROBE_WARMUP_S, PROBE_CONCURRENCY = 8.0, 2.0, 8
LOW_RATE = 20.0
LOW_S, HIGH_S = 10.0, 70.0
CONTRAST_S = 30.0  # the same step on one worker with no controller beside it
BUDGET_MS = 100.0
SETTLED_S = 20.0  # the run's last seconds: the p99 promised back inside budget
# from a controller's step to its added worker serving its share: the worker's start (about
# 2 s) and the connections' recycling (CONNECTION_AGE_S); a step later than REACT_S before the
# judged window extends the step (module docstring)
REACT_S = 6.0
MAX_WORKERS = 4
# Recovered: the p99 inside budget in at least this share of the last SETTLED_S seconds, each
# second alone (seconds_inside); the whole window's p99 is reported beside it
RECOVERED_SHARE = 0.9
# The machine's idle cores, on average from the step to the end, below which a p99 that did not
# recover is reported inconclusive rather than failed: the other tenants had every core, and no
# number of processes makes up for that (with idle cores left, it is the controller's or the
# services' failure). The load's spread over the workers is asserted either way.
IDLE_FLOOR = 0.15
USERS = 40
K = 100
# the services' connection recycling (services/common/connections.py): an added worker gets
# only connections opened after it started, so the age bounds how long it waits for its first
# request. At the services' default (10 s) each added worker sat idle 6 to 8 s while the
# backlog grew (the first runs of this version: benchmarks/results/chaos/scale_up_knee/), so
# the step runs with 2 s; the environment's MLSD_HTTP_MAX_CONNECTION_AGE_S (0: off) wins, for
# a comparison
CONNECTION_AGE_S = float(os.environ.get("MLSD_HTTP_MAX_CONNECTION_AGE_S", "2"))
HEAVY = {"MLSD_RECOMMENDER_CACHE_ENABLED": "false", "MLSD_RECOMMENDER_CF_CANDIDATES": "1000",
         "MLSD_RECOMMENDER_CONTENT_CANDIDATES": "1000",
         "MLSD_RECOMMENDER_TRENDING_CANDIDATES": "500", "MLSD_RECOMMENDER_EXPERIMENT": "",
         "MLSD_HTTP_MAX_CONNECTION_AGE_S": f"{CONNECTION_AGE_S:g}"}


def seed(start_service: StartService, run: str, users: list[str]) -> None:
    """Six watches a user through ingest and the stream: personal lists, ranked."""
    stream = start_service("stream", MLSD_STREAM_CONCERNS="watch-features")
    ingest = start_service("ingest")
    assert httpx.post(f"{ingest.url}/v1/events", json={"events": watch_events(run, users)},
                      timeout=30).status_code == 202
    time.sleep(5)  # the stream applies them; a few missing would only make lists cold
    ingest.stop()
    stream.stop()


def controller(recommender: ServiceProcess, log: Path) -> subprocess.Popen[bytes]:
    port = recommender.url.rsplit(":", 1)[1]
    env = {**os.environ, "MLSD_AUTOSCALER_PORT": port,
           "MLSD_AUTOSCALER_P99_BUDGET_MS": str(BUDGET_MS),
           "MLSD_AUTOSCALER_MAX_WORKERS": str(MAX_WORKERS),
           "MLSD_AUTOSCALER_INTERVAL_S": "2", "MLSD_AUTOSCALER_COOLDOWN_S": "8"}
    return subprocess.Popen([sys.executable, "-m", "services.autoscaler"], cwd=REPO_ROOT, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def windows(log: Path) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("message") == "window":
            found.append({k: record[k] for k in ("time", "p99_ms", "queue", "workers", "step")})
    return found


def step_times(decisions: list[dict[str, Any]], since: datetime) -> list[float]:
    """When the controller added a worker, in seconds since `since` (its log's local time)."""
    return [(datetime.fromisoformat(d["time"].replace(",", ".")).replace(tzinfo=UTC)
             - since).total_seconds() for d in decisions if d["step"]]


def run_groups(recommender_pid: int) -> dict[str, Callable[[], set[int]]]:
    """The recommender's processes (its supervisor and workers), and the rest of this run's:
    this process (the load generator) and every other process it started."""
    def tree(pid: int) -> set[int]:
        root = psutil.Process(pid)
        return {pid, *(child.pid for child in root.children(recursive=True))}

    return {"recommender": lambda: tree(recommender_pid),
            "rest_of_run": lambda: tree(os.getpid()) - tree(recommender_pid)}


def mean_cores(samples: list[dict[str, Any]], from_s: float, to_s: float) -> dict[str, float]:
    """Each group's cores (ProcessCpu's, "others" included) and the machine's busy cores, on
    average over the samples inside [from_s, to_s]."""
    inside = [s for s in samples if from_s < s["t_s"] <= to_s]
    if not inside:
        return {}
    names = sorted({name for s in inside for name in s["groups"]})
    means = {name: round(sum(s["groups"].get(name, 0.0) for s in inside) / len(inside), 2)
             for name in names}
    return {**means, "busy": round(sum(s["busy"] for s in inside) / len(inside), 2)}


def latency(group: list[Answer]) -> dict[str, float]:
    values = [a.latency_ms for a in group]
    return {"p50": round(percentile(values, 50), 1), "p99": round(percentile(values, 99), 1),
            "requests": len(values)}


def worker_cores(sampler: WorkerSampler, from_s: float, to_s: float) -> dict[str, float]:
    """Each worker's CPU over a stretch, in cores."""
    return {pid: round(w["cpu_s"] / (to_s - from_s), 2)
            for pid, w in sampler.between(from_s, to_s).items()}


def measure_capacity(url_of: Callable[[int], str], sampler: WorkerSampler, at_s: float
                     ) -> dict[str, Any]:
    """What one worker serves when it is never idle, after a warm-up: requests a second, its
    CPU in cores, and the machine's idle cores meanwhile (the room more workers would have)."""
    answers = closed_loop_gets(url_of, PROBE_CONCURRENCY, PROBE_S)
    counted = [a for a in answers if a.sent_s >= PROBE_WARMUP_S and a.status == 200]
    measured_s = PROBE_S - PROBE_WARMUP_S
    return {"requests_per_s": round(len(counted) / measured_s, 1),
            "concurrency": PROBE_CONCURRENCY, "seconds": measured_s,
            "latency": latency(counted),
            "worker_cores": worker_cores(sampler, at_s + PROBE_WARMUP_S, at_s + PROBE_S),
            "machine_idle_cores": sampler.idle_cores(at_s + PROBE_WARMUP_S, at_s + PROBE_S)}


def seconds_inside(answers: list[Answer], from_s: float, to_s: float) -> dict[str, Any]:
    """Each second's p99 taken alone (by send time), and how many of them were inside budget: a
    burst of the machine's other tenants costs the seconds it lasts, where it would decide the
    p99 of the whole window (1 % of 20 s is a fifth of a second)."""
    seconds = per_second([a for a in answers if from_s <= a.sent_s < to_s])
    inside = sum(1 for s in seconds if s["p99_ms"] <= BUDGET_MS)
    return {"seconds": len(seconds), "inside_budget": inside,
            "share": round(inside / len(seconds), 3) if seconds else 0.0}


def the_step(recommend: Callable[[int], str], rate: float, scaler_log: Path,
             step_started: datetime) -> tuple[list[Answer], float]:
    """HIGH_S seconds at the step's rate, and REACT_S + SETTLED_S more when the controller added
    a worker less than REACT_S before the last SETTLED_S began (it was not at rest in them).
    Returns the answers (sent_s from the step) and the step's length."""
    high = open_loop_gets(recommend, rate, HIGH_S)
    last_step_s = max(step_times(windows(scaler_log), step_started), default=None)
    if last_step_s is None or last_step_s <= LOW_S + HIGH_S - SETTLED_S - REACT_S:
        return high, HIGH_S
    more = open_loop_gets(recommend, rate, REACT_S + SETTLED_S)
    for answer in more:
        answer.sent_s += HIGH_S
    return high + more, HIGH_S + REACT_S + SETTLED_S


def without_controller(start_service: StartService, url_of: Callable[[str], Callable[[int], str]]
                       ) -> tuple[dict[str, Any], float]:
    """One worker, no controller: its capacity, then the step at STEP_FACTOR times it. Returns
    what was seen and the step's rate."""
    recommender = start_service("recommender", MLSD_RECOMMENDER_WORKERS="1",
                                MLSD_WORKERS_SUPERVISED="true", **HEAVY)
    recommend = url_of(recommender.url)
    port = int(recommender.url.rsplit(":", 1)[1])
    with WorkerSampler(recommender.process.pid, port, "recommendations") as sampler:
        open_loop_gets(recommend, LOW_RATE, 5.0)  # warm: the first requests load the ranker
        capacity = measure_capacity(recommend, sampler, 5.0)
        rate = round(STEP_FACTOR * capacity["requests_per_s"])
        step_at = 5.0 + PROBE_S
        step = open_loop_gets(recommend, rate, CONTRAST_S)
    workers = worker_count(recommender.process.pid)
    recommender.stop()  # its backlog is not the next run's
    seen = {"capacity_of_one_worker": capacity, "rate_per_s": rate,
            "statuses": {str(k): v for k, v in sorted(Counter(a.status for a in step).items())},
            "first_10s": latency([a for a in step if a.sent_s < 10]),
            "last_10s": latency([a for a in step if a.sent_s >= CONTRAST_S - 10]),
            # the test's own criterion of recovery, on this run's last SETTLED_S seconds
            f"seconds_inside_budget_last_{SETTLED_S:.0f}s": seconds_inside(
                step, CONTRAST_S - SETTLED_S, CONTRAST_S),
            "workers_after": workers,
            "worker_cores": worker_cores(sampler, step_at + 5, step_at + CONTRAST_S),
            "machine_idle_cores": sampler.idle_cores(step_at + 5, step_at + CONTRAST_S),
            "per_second": per_second(step)}
    return seen, rate


def test_a_load_step_is_absorbed_by_added_workers_without_a_restart(
        start_service: StartService, report_dir: Path, tmp_path: Path) -> None:
    run = f"su{uuid.uuid4().hex[:6]}"
    users = [f"u{run}{n}" for n in range(USERS)]
    seed(start_service, run, users)

    def url_of(base: str) -> Callable[[int], str]:
        return lambda n: f"{base}/v1/recommendations/{users[n % USERS]}?k={K}"

    started = datetime.now(UTC)
    contrast, high_rate = without_controller(start_service, url_of)

    recommender = start_service("recommender", MLSD_RECOMMENDER_WORKERS="1",
                                MLSD_WORKERS_SUPERVISED="true", **HEAVY)
    assert worker_count(recommender.process.pid) == 1
    scaler_log = tmp_path / "autoscaler.log"
    scaler = controller(recommender, scaler_log)
    recommend = url_of(recommender.url)
    step_started = datetime.now(UTC)
    port = int(recommender.url.rsplit(":", 1)[1])
    try:
        with WorkerSampler(recommender.process.pid, port, "recommendations") as sampler:
            cpu = ProcessCpu(run_groups(recommender.process.pid))
            low = open_loop_gets(recommend, LOW_RATE, LOW_S)
            high, high_s = the_step(recommend, high_rate, scaler_log, step_started)
            cpu_per_second = cpu.stop()
    finally:
        scaler.terminate()
        scaler.wait(10)
    workers_after = worker_count(recommender.process.pid)
    decisions = windows(scaler_log)
    for answer in high:
        answer.sent_s += LOW_S
    answers: list[Answer] = low + high

    steps = [d for d in decisions if d["step"]]
    up_s = step_times(decisions, step_started)
    first_up_s = round(up_s[0] - LOW_S, 1) if up_s else None
    end_s = LOW_S + high_s
    settled_from = end_s - SETTLED_S
    settled = [a for a in high if a.sent_s >= settled_from]
    results: dict[str, Any] = {
        "statuses": {str(k): v for k, v in sorted(Counter(a.status for a in answers).items())},
        "workers_before": 1, "workers_after": workers_after,
        "steps": [d["step"] for d in steps], "first_step_after_load_step_s": first_up_s,
        "before_step": latency(low),
        "first_10s_after_step": latency([a for a in high if a.sent_s < LOW_S + 10]),
        f"last_{SETTLED_S:.0f}s": latency(settled),
        # the step's length: HIGH_S, or more after a late step of the controller (docstring)
        "high_s": high_s, "steps_after_load_step_s": [round(t - LOW_S, 1) for t in up_s],
        "settled_window_s": [settled_from, end_s],
        "budget_ms": BUDGET_MS, "restarts": 0 if recommender.process.poll() is None else 1,
        # the same step on one worker with no controller: over budget to the end, or the test
        # shows nothing
        "without_controller": contrast,
        # which worker served what: a worker added behind one socket gets only new connections
        "per_worker_first_10s_after_step": sampler.between(LOW_S, LOW_S + 10),
        f"per_worker_last_{SETTLED_S:.0f}s": sampler.between(settled_from, end_s + 60),
        f"worker_cores_last_{SETTLED_S:.0f}s": worker_cores(sampler, settled_from, end_s),
        f"machine_idle_cores_last_{SETTLED_S:.0f}s": sampler.idle_cores(settled_from, end_s),
        "windows": decisions,
        "worker_samples": sampler.samples,
    }
    results[f"seconds_inside_budget_last_{SETTLED_S:.0f}s"] = seconds_inside(
        high, settled_from, end_s)
    # who had the cores: the recommender, the rest of the run (this process's load generator,
    # the autoscaler, Redis, the broker) and processes outside the run ("others"): the idle
    # cores alone cannot tell added workers using them from other work taking them
    results |= {"machine_idle_cores_after_step": sampler.idle_cores(LOW_S, end_s),
                "cpu_per_second": cpu_per_second,
                f"cores_last_{SETTLED_S:.0f}s": mean_cores(cpu_per_second, settled_from, end_s),
                "cores_after_step": mean_cores(cpu_per_second, LOW_S, end_s)}
    write_report(report_dir, "scale_up",
                 "one recommender worker's capacity measured (closed loop), then open-loop load "
                 "steps from LOW_RATE to STEP_FACTOR times it, first on one worker alone, then "
                 "on one worker with services.autoscaler beside it adding workers from the "
                 "route's window p99 (2 s windows, up after 2 over budget, cooldown 8 s, max "
                 f"{MAX_WORKERS})",
                 started, {"low_rate_per_s": LOW_RATE, "high_rate_per_s": high_rate,
                           "step_factor": STEP_FACTOR, "low_s": LOW_S, "high_s": HIGH_S,
                           "settled_s": SETTLED_S, "react_s": REACT_S,
                           "contrast_s": CONTRAST_S, "budget_ms": BUDGET_MS,
                           "max_workers": MAX_WORKERS, "recommender": HEAVY, "k": K,
                           "http_max_connection_age_s": CONNECTION_AGE_S,
                           "client": "aiohttp, at most 200 connections, kept alive",
                           "topology": "one redis-server, one broker"},
                 results, answers)

    assert contrast["workers_after"] == 1
    alone = contrast[f"seconds_inside_budget_last_{SETTLED_S:.0f}s"]
    assert contrast["last_10s"]["p99"] > BUDGET_MS and alone["share"] < RECOVERED_SHARE, \
        ("one worker kept up with the step without the controller: the test shows nothing",
         contrast["capacity_of_one_worker"], contrast["last_10s"], alone)
    assert results["restarts"] == 0 and recommender.process.poll() is None
    assert workers_after > 1, ("no worker was added", decisions)
    assert results["first_10s_after_step"]["p99"] > BUDGET_MS, \
        "the step did not overload one worker: the test shows nothing"
    # the added workers took their share (connections recycled): the first one served less
    # than three quarters of the settled window's requests
    served = [w["requests"] for w in results[f"per_worker_last_{SETTLED_S:.0f}s"].values()]
    assert served and served[0] < 0.75 * sum(served), ("the load stayed on the first worker",
                                                       served)
    recovered = results[f"seconds_inside_budget_last_{SETTLED_S:.0f}s"]
    idle = results["machine_idle_cores_after_step"]
    if recovered["share"] < RECOVERED_SHARE and idle is not None and idle < IDLE_FLOOR:
        pytest.skip(f"inconclusive: the machine had {idle} idle cores on average after the step "
                    f"(other work took them); {recovered}")
    assert recovered["share"] >= RECOVERED_SHARE, results
