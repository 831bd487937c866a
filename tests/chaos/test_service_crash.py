"""Fault 3 of issue 17: kill -9 one worker of fraud and one of the recommender under load.

Each service runs two workers on one port (services/common/workers.py): the kernel hands new
connections to whichever worker accepts, and uvicorn's supervisor starts a new worker in place of
a dead one. What a client can lose is what was in flight on the dead worker: its connection is
cut. The client here retries once on a cut connection (never on an HTTP answer): both calls are
safe to repeat (a recommendation is a read; a score repeated with its transaction_id gets the
same decision, `MLSD_FRAUD_IDEMPOTENCY_WINDOW_S`). The report counts what the first attempt
saw (a client without retries) and what the retrying client ended with (goal: no error).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos.load import (
    Answer,
    alternating,
    open_loop,
    percentile,
    retry_once,
    transaction,
    write_report,
)
from tests.chaos.processes import await_workers, kill_worker, live_workers
from tests.e2e.conftest import StartService

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.chaos]

RATE = 30.0  # requests a second to each of fraud and the recommender, open loop
DURATION_S = 25.0
KILL_AT_S = 8.0
WORKERS = 2
BUDGET_MS = {"fraud": 50.0, "recommender": 100.0}




def summary(answers: list[Answer], budget_ms: float, killed_at: float) -> dict[str, Any]:
    latencies = [a.latency_ms for a in answers]
    after = [a.latency_ms for a in answers if killed_at <= a.sent_s < killed_at + 2]
    return {
        "requests": len(answers),
        "statuses": {str(k): v for k, v in sorted(Counter(a.status for a in answers).items())},
        "first_attempt_errors": sum(1 for a in answers if a.flags.get("retried")),
        "first_attempt_error_kinds": dict(Counter(str(a.flags["first_error"]) for a in answers
                                                  if a.flags.get("retried"))),
        "errors_after_retry": sum(1 for a in answers if a.status != 200),
        "latency_ms": {"p50": round(percentile(latencies, 50), 1),
                       "p99": round(percentile(latencies, 99), 1),
                       "max": round(max(latencies), 1),
                       "p99_in_2s_after_kill": round(percentile(after, 99), 1)},
        "budget_ms": budget_ms,
        "within_budget_share": round(sum(1 for v in latencies if v <= budget_ms)
                                     / len(latencies), 4),
    }


def test_a_worker_killed_under_load_is_replaced_and_a_retrying_client_sees_no_error(
        on_cluster: StartService, report_dir: Path) -> None:
    run = f"sc{uuid.uuid4().hex[:6]}"
    fraud = on_cluster("fraud", MLSD_FRAUD_WORKERS=str(WORKERS))
    recommender = on_cluster("recommender", MLSD_RECOMMENDER_WORKERS=str(WORKERS))
    services = {"fraud": fraud, "recommender": recommender}
    before = {name: await_workers(s.process.pid, WORKERS) for name, s in services.items()}
    marks: dict[str, float] = {}
    replaced: dict[str, dict[str, Any]] = {}

    def kill() -> None:
        victims = {name: min(pids) for name, pids in before.items()}
        marks["killed"] = time.monotonic()
        for pid in victims.values():
            kill_worker(pid)
        deadline = time.monotonic() + 30
        while len(replaced) < len(services) and time.monotonic() < deadline:
            for name, service in services.items():
                now = live_workers(service.process.pid)
                if name not in replaced and len(now) == WORKERS and now != before[name]:
                    replaced[name] = {"killed_pid": victims[name],
                                      "new_pids": sorted(now - before[name]),
                                      "replaced_after_s": round(time.monotonic()
                                                                - marks["killed"], 2)}
            time.sleep(0.05)

    async def score(client: httpx.AsyncClient, n: int) -> tuple[int, dict[str, Any]]:
        body = transaction(run, n)
        return await retry_once(lambda: client.post(f"{fraud.url}/v1/score", json=body))

    async def recommend(client: httpx.AsyncClient, n: int) -> tuple[int, dict[str, Any]]:
        return await retry_once(lambda: client.get(
            f"{recommender.url}/v1/recommendations/u{run}{n % 50}", params={"k": 10},
            headers={"Cache-Control": "no-cache"}))

    both = alternating(score, recommend)

    started = datetime.now(UTC)
    load_start = time.monotonic()
    answers = open_loop(both, 2 * RATE, DURATION_S, [(KILL_AT_S, kill)], timeout_s=10.0)
    killed_at = marks["killed"] - load_start
    sides = {"fraud": [a for a in answers if a.flags.get("fraud")],
             "recommender": [a for a in answers if not a.flags.get("fraud")]}
    results: dict[str, Any] = {"killed_at_s": round(killed_at, 2), "workers_per_service": WORKERS,
               "replaced": replaced,
               **{name: summary(side, BUDGET_MS[name], killed_at)
                  for name, side in sides.items()}}
    write_report(report_dir, "service_crash",
                 "kill -9 one of two workers of fraud (POST /v1/score) and of the recommender "
                 "(GET, no-cache) under open-loop load; uvicorn's supervisor starts a new one; "
                 "the client retries once on a cut or refused connection, never on an answer",
                 started, {"rate_per_service_per_s": RATE, "duration_s": DURATION_S,
                           "kill_at_s": KILL_AT_S, "workers": WORKERS,
                           "client_retries": "one, on a transport error only"},
                 results, answers)

    for name in services:
        assert name in replaced, f"{name}: no worker replaced the killed one in 30 s"
        assert results[name]["errors_after_retry"] == 0, results[name]
