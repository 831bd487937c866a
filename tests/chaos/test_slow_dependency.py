"""Fault 4 of issue 17: Redis made slow, then the model server made slow, under load.

A slow dependency is worse than a dead one: a dead one refuses at once, a slow one holds every
request that waits for it. Each call on the request path has a deadline (fraud's Redis round trip
20 ms, the recommender's 30 ms, its ranker call 50 ms) and each dependency a circuit breaker
(5 failures in a row skip it for 5 s), so the answers come on time, degraded and flagged.

Redis: `CLIENT PAUSE <ms> ALL` on every master, which holds every client's commands (the cluster
bus still runs, so no failover starts: the node is slow, not dead). The model server: SIGSTOP,
then SIGCONT, as a process stalled by the machine (a long pause, a swapped-out page).

The load's clients close a connection idle for KEEPALIVE_S (tests/chaos/load.py), before the
services' own idle timeout does: at httpx's default, equal to it, one request of a fresh clone's
run (2026-12-06 19:57 UTC) was sent on a connection as the recommender closed it and got no HTTP
answer, 5 s after the pause had opened a burst of connections. A race of the load client's,
counted against the service; no budget or promise of this test changed.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.cluster import RedisCluster

from services.devstack.cluster import redis_roles
from tests.chaos.load import Answer, open_loop, percentile, seed_watches, transaction, write_report
from tests.e2e.conftest import StartService
from tests.harness import ClusterTopology

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.chaos]

RATE = 20.0  # requests a second to each of fraud and the recommender, open loop
DURATION_S = 30.0
REDIS_SLOW_AT_S, REDIS_SLOW_S = 6.0, 5.0
MODEL_SLOW_AT_S, MODEL_SLOW_S = 18.0, 5.0
USERS = 40
BUDGET_MS = {"fraud": 50.0, "recommender": 100.0}
ONSET_S = 1.0


def window(answers: list[Answer], start: float, length: float, flag: str,
           budget_ms: float) -> dict[str, Any]:
    """What the requests sent while a dependency was slow got."""
    inside = [a for a in answers if start <= a.sent_s < start + length]
    latencies = [a.latency_ms for a in inside]
    # the breaker opens after its 5 failures: what came after the first second shows the
    # steady state of the fault, the first second what opening the breaker cost
    settled = [a.latency_ms for a in inside if a.sent_s >= start + ONSET_S]
    late = [a.sent_s - start for a in inside if a.latency_ms > budget_ms]
    return {"requests": len(inside),
            "statuses": {str(k): v for k, v in sorted(Counter(a.status for a in inside).items())},
            f"{flag}_answers": sum(1 for a in inside if a.flags.get(flag)),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(max(latencies), 1),
            "within_budget_share": round(sum(1 for v in latencies if v <= budget_ms)
                                         / len(latencies), 4),
            "over_budget": len(late),
            "last_over_budget_sent_after_s": round(max(late), 2) if late else None,
            f"p99_after_first_{ONSET_S:.0f}s_ms": round(percentile(settled, 99), 1)}


def whole_run(answers: list[Answer], budget_ms: float) -> dict[str, Any]:
    latencies = [a.latency_ms for a in answers]
    return {"requests": len(answers),
            "statuses": {str(k): v for k, v in sorted(Counter(a.status for a in answers).items())},
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(max(latencies), 1), "budget_ms": budget_ms,
            "within_budget_share": round(sum(1 for v in latencies if v <= budget_ms)
                                         / len(latencies), 4)}


def test_slow_redis_and_a_stalled_model_server_are_cut_off_by_deadlines_and_breakers(
        on_cluster: StartService, cluster_topology: ClusterTopology,
        cluster_client: RedisCluster, report_dir: Path) -> None:
    run = f"sd{uuid.uuid4().hex[:6]}"
    users = [f"u{run}{n}" for n in range(USERS)]
    seed_watches(on_cluster, cluster_client, run, users)
    model_server = on_cluster("modelserver")
    fraud = on_cluster("fraud")
    # Every request ranks through the model server: the ranker for all (no experiment), remote
    recommender = on_cluster("recommender", MLSD_MODEL_BACKEND="remote",
                             MLSD_MODEL_SERVER_URL=model_server.url,
                             MLSD_RECOMMENDER_EXPERIMENT="",
                             MLSD_RECOMMENDER_DEFAULT_VARIANT="treatment")
    roles = redis_roles(cluster_topology.redis_addresses, cluster_topology.redis_password)
    masters = [a for a in cluster_topology.redis_addresses if roles[a] == "master"]
    marks: dict[str, float] = {}

    def slow_redis() -> None:
        marks["redis_slow"] = time.monotonic()
        for address in masters:
            host, port = address.rsplit(":", 1)
            with redis.Redis(host=host, port=int(port),
                             password=cluster_topology.redis_password) as node:
                node.execute_command("CLIENT", "PAUSE", int(REDIS_SLOW_S * 1000), "ALL")

    def stall_model_server() -> None:
        marks["model_slow"] = time.monotonic()
        model_server.process.send_signal(signal.SIGSTOP)
        time.sleep(MODEL_SLOW_S)
        model_server.process.send_signal(signal.SIGCONT)

    async def score(client: httpx.AsyncClient, n: int) -> tuple[int, dict[str, Any]]:
        body = transaction(run, n)
        response = await client.post(f"{fraud.url}/v1/score", json=body)
        degraded = response.status_code == 200 and bool(response.json()["degraded"])
        return response.status_code, {"fraud": True, "degraded": degraded}

    async def recommend(client: httpx.AsyncClient, n: int) -> tuple[int, dict[str, Any]]:
        response = await client.get(f"{recommender.url}/v1/recommendations/{users[n % USERS]}",
                                    params={"k": 10}, headers={"Cache-Control": "no-cache"})
        fallbacks = response.json()["fallbacks"] if response.status_code == 200 else []
        return response.status_code, {"fallback": bool(fallbacks),
                                      "feature_store": "feature_store" in fallbacks,
                                      "model": "model" in fallbacks}

    async def both(client: httpx.AsyncClient, n: int) -> tuple[int, dict[str, Any]]:
        return await (score(client, n // 2) if n % 2 == 0 else recommend(client, n // 2))

    started = datetime.now(UTC)
    load_start = time.monotonic()
    answers = open_loop(both, 2 * RATE, DURATION_S,
                        [(REDIS_SLOW_AT_S, slow_redis), (MODEL_SLOW_AT_S, stall_model_server)],
                        timeout_s=10.0)
    redis_at = marks["redis_slow"] - load_start
    model_at = marks["model_slow"] - load_start
    fraud_side = [a for a in answers if a.flags.get("fraud")]
    recs_side = [a for a in answers if not a.flags.get("fraud")]
    results = {
        "redis_slow_at_s": round(redis_at, 2), "model_server_stalled_at_s": round(model_at, 2),
        "paused_masters": len(masters),
        "redis_slow": {
            "fraud": window(fraud_side, redis_at, REDIS_SLOW_S, "degraded", BUDGET_MS["fraud"]),
            "recommender": window(recs_side, redis_at, REDIS_SLOW_S, "feature_store",
                                  BUDGET_MS["recommender"])},
        "model_server_stalled": {
            "fraud": window(fraud_side, model_at, MODEL_SLOW_S, "degraded",
                            BUDGET_MS["fraud"]),
            "recommender": window(recs_side, model_at, MODEL_SLOW_S, "model",
                                  BUDGET_MS["recommender"])},
        "whole_run": {"fraud": whole_run(fraud_side, BUDGET_MS["fraud"]),
                      "recommender": whole_run(recs_side, BUDGET_MS["recommender"])},
    }
    write_report(report_dir, "slow_dependency",
                 "CLIENT PAUSE ALL on every Redis master, then SIGSTOP/SIGCONT of the model "
                 "server, while fraud (POST /v1/score) and the recommender (GET, no-cache, "
                 "ranker through the model server) take open-loop load",
                 started, {"rate_per_service_per_s": RATE, "duration_s": DURATION_S,
                           "redis_slow_at_s": REDIS_SLOW_AT_S, "redis_slow_s": REDIS_SLOW_S,
                           "model_slow_at_s": MODEL_SLOW_AT_S, "model_slow_s": MODEL_SLOW_S,
                           "fraud_redis_timeout_ms": 20, "recommender_redis_timeout_ms": 30,
                           "recommender_model_timeout_ms": 50,
                           "breakers": "5 failures in a row, open 5 s"},
                 results, answers)

    assert {a.status for a in answers} == {200}, Counter(a.status for a in answers)
    slow, stalled = results["redis_slow"], results["model_server_stalled"]
    assert slow["fraud"]["degraded_answers"] > 0, "fraud never noticed the paused Redis"
    assert slow["recommender"]["feature_store_answers"] > 0, "recs never noticed it"
    assert stalled["recommender"]["model_answers"] > 0, "recs never noticed the stall"
    # The promise kept: once the breakers have opened, answers are inside budget. The onset
    # (five failing calls, each a timeout and redis-py's slot-map re-read) is reported, not
    # asserted: docs/reliability.md says what it costs, before and after its retries went.
    for name, budget in BUDGET_MS.items():
        for phase in (slow, stalled):
            assert phase[name][f"p99_after_first_{ONSET_S:.0f}s_ms"] <= budget, (name, phase)

