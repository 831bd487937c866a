"""The autoscaler under a load step: one recommender worker is overwhelmed, the controller adds
workers (SIGTTIN to uvicorn's supervisor) and the p99 comes back inside budget, nothing restarted.

The recommender runs uncached with wide candidate lists and long lists (k=100), so one request
costs enough CPU (about 5 ms) that a rate one worker cannot serve is one two workers can on this
machine's two cores, with the load generator beside them. Every worker's requests, CPU and
connections are sampled each second: a worker added behind one socket gets only connections
opened after it started, so without the services' connection recycling
(MLSD_HTTP_MAX_CONNECTION_AGE_S=0) the load stays on the first worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.autoscaler.observe import worker_count
from services.common.settings import PlatformSettings
from tests.chaos.load import Answer, open_loop_gets, percentile, watch_events, write_report
from tests.chaos.processes import WorkerSampler
from tests.e2e.conftest import ServiceProcess, StartService
from tests.harness import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

# requests a second, open loop, before and after the step: at about 5 ms of CPU a request, the
# step asks one worker for about a core, past its budget unless it has the core to itself (the
# ranker's ONNX threads release the interpreter lock, so a worker can use a little more), and
# three for about a third each. At 150 and 170/s one worker sometimes kept up (the test showed
# nothing); at 210/s three workers on what the shared cores left them drained the backlog but
# stayed near a full core, their p99 hundreds of ms (benchmarks/results/chaos/
# scale_up_connections/: how far the step overloads one worker depends on the other tenants)
LOW_RATE, HIGH_RATE = 20.0, 190.0
LOW_S, HIGH_S = 10.0, 60.0
BUDGET_MS = 100.0
SETTLED_S = 20.0  # the run's last seconds: the p99 promised back inside budget
USERS = 40
K = 100
# the services' connection recycling (services/common/connections.py); the environment's
# MLSD_HTTP_MAX_CONNECTION_AGE_S (0: off) reaches the recommender too, for a comparison
CONNECTION_AGE_S = float(os.environ.get(
    "MLSD_HTTP_MAX_CONNECTION_AGE_S",
    PlatformSettings.model_fields["http_max_connection_age_s"].default))
HEAVY = {"MLSD_RECOMMENDER_CACHE_ENABLED": "false", "MLSD_RECOMMENDER_CF_CANDIDATES": "1000",
         "MLSD_RECOMMENDER_CONTENT_CANDIDATES": "1000",
         "MLSD_RECOMMENDER_TRENDING_CANDIDATES": "500", "MLSD_RECOMMENDER_EXPERIMENT": ""}


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
           "MLSD_AUTOSCALER_P99_BUDGET_MS": str(BUDGET_MS), "MLSD_AUTOSCALER_MAX_WORKERS": "3",
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


def test_a_load_step_is_absorbed_by_added_workers_without_a_restart(
        start_service: StartService, report_dir: Path, tmp_path: Path) -> None:
    run = f"su{uuid.uuid4().hex[:6]}"
    users = [f"u{run}{n}" for n in range(USERS)]
    seed(start_service, run, users)
    recommender = start_service("recommender", MLSD_RECOMMENDER_WORKERS="1",
                                MLSD_WORKERS_SUPERVISED="true", **HEAVY)
    assert worker_count(recommender.process.pid) == 1
    scaler_log = tmp_path / "autoscaler.log"
    scaler = controller(recommender, scaler_log)

    def recommend(n: int) -> str:
        return f"{recommender.url}/v1/recommendations/{users[n % USERS]}?k={K}"

    started = datetime.now(UTC)
    port = int(recommender.url.rsplit(":", 1)[1])
    try:
        with WorkerSampler(recommender.process.pid, port, "recommendations") as sampler:
            low = open_loop_gets(recommend, LOW_RATE, LOW_S)
            high = open_loop_gets(recommend, HIGH_RATE, HIGH_S)
    finally:
        scaler.terminate()
        scaler.wait(10)
    workers_after = worker_count(recommender.process.pid)
    decisions = windows(scaler_log)
    for answer in high:
        answer.sent_s += LOW_S
    answers: list[Answer] = low + high

    def latency(group: list[Answer]) -> dict[str, float]:
        values = [a.latency_ms for a in group]
        return {"p50": round(percentile(values, 50), 1), "p99": round(percentile(values, 99), 1),
                "requests": len(values)}

    steps = [d for d in decisions if d["step"]]
    first_up_s = None
    if steps:
        first_up = datetime.fromisoformat(steps[0]["time"].replace(",", ".")).replace(tzinfo=UTC)
        first_up_s = round((first_up - started).total_seconds() - LOW_S, 1)
    settled = [a for a in high if a.sent_s >= LOW_S + HIGH_S - SETTLED_S]
    results = {
        "statuses": {str(k): v for k, v in sorted(Counter(a.status for a in answers).items())},
        "workers_before": 1, "workers_after": workers_after,
        "steps": [d["step"] for d in steps], "first_step_after_load_step_s": first_up_s,
        "before_step": latency(low),
        "first_10s_after_step": latency([a for a in high if a.sent_s < LOW_S + 10]),
        f"last_{SETTLED_S:.0f}s": latency(settled),
        "budget_ms": BUDGET_MS, "restarts": 0 if recommender.process.poll() is None else 1,
        # which worker served what: a worker added behind one socket gets only new connections
        "per_worker_first_10s_after_step": sampler.between(LOW_S, LOW_S + 10),
        f"per_worker_last_{SETTLED_S:.0f}s": sampler.between(LOW_S + HIGH_S - SETTLED_S,
                                                             LOW_S + HIGH_S + 60),
        "windows": decisions,
        "worker_samples": sampler.samples,
    }
    write_report(report_dir, "scale_up",
                 "open-loop load steps from LOW_RATE to HIGH_RATE on an uncached recommender "
                 "(one worker, wide candidate lists); services.autoscaler adds workers from the "
                 "route's window p99 (2 s windows, up after 2 over budget, cooldown 8 s, max 3)",
                 started, {"low_rate_per_s": LOW_RATE, "high_rate_per_s": HIGH_RATE,
                           "low_s": LOW_S, "high_s": HIGH_S, "budget_ms": BUDGET_MS,
                           "recommender": HEAVY, "k": K,
                           "http_max_connection_age_s": CONNECTION_AGE_S,
                           "client": "aiohttp, at most 200 connections, kept alive",
                           "topology": "one redis-server, one broker"},
                 results, answers)

    assert results["restarts"] == 0 and recommender.process.poll() is None
    assert workers_after > 1, ("no worker was added", decisions)
    assert results["first_10s_after_step"]["p99"] > BUDGET_MS, \
        "the step did not overload one worker: the test shows nothing"
    assert results[f"last_{SETTLED_S:.0f}s"]["p99"] <= BUDGET_MS, results
