"""Fault 2 of issue 17: kill -9 a Redis Cluster master while fraud and the recommender take load.

Its replica takes over; until then requests whose keys live on the dead master get degraded
answers (fraud: `degraded`, recommender: `fallbacks`), never a 5xx. Two victims: the first
master (the owner of slot 0, the cluster client's default node at start-up), and the master
holding the trending list, which every recommender read includes: the recommender's users
whose own keys live elsewhere get whole answers then too (the snapshot's trending order).
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
from redis.cluster import RedisCluster

from services.common.redis_client import node_of
from services.designs.recs.keys import trending_key
from services.devstack.cluster import redis_roles
from tests.chaos.load import (
    Answer,
    alternating,
    open_loop,
    percentile,
    seed_watches,
    transaction,
    write_report,
)
from tests.e2e.conftest import StartService
from tests.harness import ClusterTopology
from tests.support.redis_cluster import await_replicas_in_sync

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.chaos]

RATE = 20.0  # requests a second to each of fraud and the recommender, open loop
DURATION_S = 25.0
KILL_AT_S = 8.0
USERS = 40
FRAUD_BUDGET_MS = 50.0
CALM_S = 5.0  # the run's last seconds, well after the failover: every answer must be whole
TRENDING = trending_key()  # fs:trending:{global}, on one master for every user
# The recommender's users whose keys live on a surviving master (whichever master dies, the
# trending list's too) may get a fallback only from a cause other than the kill (a read past
# its 30 ms deadline on the loaded machine): a few.
ELSEWHERE_FALLBACK_SHARE_MAX = 0.05
REPORTS = {"first master": "redis_master_crash",
           "trending list's master": "redis_master_crash_trending_master"}


def summary(answers: list[Answer], flag: str, killed_at: float, promoted_at: float
            ) -> dict[str, Any]:
    latencies = [a.latency_ms for a in answers]
    gap = [a for a in answers if killed_at <= a.sent_s < promoted_at]
    flagged_after_kill = [a.sent_s for a in answers if a.sent_s >= killed_at and a.flags.get(flag)]
    last_seconds = [a for a in answers if a.sent_s >= DURATION_S - CALM_S]
    return {
        "requests": len(answers),
        "statuses": {str(k): v for k, v in sorted(Counter(a.status for a in answers).items())},
        f"{flag}_answers": sum(1 for a in answers if a.flags.get(flag)),
        f"{flag}_answers_in_gap": sum(1 for a in gap if a.flags.get(flag)),
        "requests_in_gap": len(gap),
        # a breaker per master skips the dead one's keys until the client's re-read slot map
        # names its promoted replica (at most a second after the promotion)
        f"last_{flag}_answer_after_kill_s": round(max(flagged_after_kill) - killed_at, 2)
        if flagged_after_kill else None,
        f"{flag}_answers_in_last_{CALM_S:.0f}s": sum(1 for a in last_seconds
                                                    if a.flags.get(flag)),
        "latency_ms": {"p50": round(percentile(latencies, 50), 1),
                       "p99": round(percentile(latencies, 99), 1),
                       "max": round(max(latencies), 1),
                       "p99_in_gap": round(percentile([a.latency_ms for a in gap], 99), 1)},
        "within_50ms_share": round(sum(1 for v in latencies if v <= FRAUD_BUDGET_MS)
                                   / len(latencies), 4),
    }




def users_elsewhere(answers: list[Answer], killed_at: float, promoted_at: float
                    ) -> dict[str, Any]:
    """The recommender's answers to users whose own keys live on a surviving master."""
    elsewhere = [a for a in answers if a.flags.get("user_master") == "other"]
    gap = [a for a in elsewhere if killed_at <= a.sent_s < promoted_at]
    return {"requests": len(elsewhere), "fallback_answers": sum(
                1 for a in elsewhere if a.flags.get("fallback")),
            "requests_in_gap": len(gap),
            "fallback_answers_in_gap": sum(1 for a in gap if a.flags.get("fallback"))}


def victim_of(victim_is: str, topology: ClusterTopology, client: RedisCluster) -> str:
    """The node to kill: the first master by name, or the one holding the trending list."""
    if victim_is == "first master":
        roles = redis_roles(topology.redis_addresses, topology.redis_password)
        return next(name for name in topology.redis_names
                    if roles[topology.nodes[name].address] == "master")
    return next(name for name in topology.redis_names
                if topology.nodes[name].address == node_of(client, TRENDING))


@pytest.mark.parametrize("victim_is", list(REPORTS), ids=["first-master", "trending-master"])
def test_a_master_killed_under_load_fails_over_with_degraded_answers_and_no_5xx(
        victim_is: str, on_cluster: StartService, cluster_topology: ClusterTopology,
        cluster_client: RedisCluster, report_dir: Path) -> None:
    await_replicas_in_sync(cluster_topology)  # the module's topology: a victim killed before
    run = f"rm{uuid.uuid4().hex[:6]}"
    users = [f"u{run}{n}" for n in range(USERS)]
    seed_watches(on_cluster, cluster_client, run, users)
    fraud = on_cluster("fraud")
    recommender = on_cluster("recommender")

    roles = redis_roles(cluster_topology.redis_addresses, cluster_topology.redis_password)
    victim = victim_of(victim_is, cluster_topology, cluster_client)
    victim_address = cluster_topology.nodes[victim].address
    trending_on_victim = node_of(cluster_client, TRENDING) == victim_address
    on_victim = {u for u in users
                 if node_of(cluster_client, f"fs:watch_history:{{{u}}}") == victim_address}
    marks: dict[str, float] = {}

    def watch_failover() -> None:
        """When a replica of the dead master has taken its slots: every other node says ok
        and one more of them is a master than before."""
        survivors = [a for a in cluster_topology.redis_addresses if a != victim_address]
        masters_before = sum(1 for a in survivors if roles[a] == "master")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = redis_roles(survivors, cluster_topology.redis_password)
            if sum(1 for a in survivors if now[a] == "master") > masters_before:
                marks["promoted"] = time.monotonic()
                return
            time.sleep(0.05)

    def kill() -> None:
        marks["killed"] = time.monotonic()
        cluster_topology.kill(victim)
        watch_failover()

    async def score(client: httpx.AsyncClient, n: int) -> tuple[int, dict[str, Any]]:
        body = transaction(run, n)
        response = await client.post(f"{fraud.url}/v1/score", json=body)
        degraded = response.status_code == 200 and bool(response.json()["degraded"])
        return response.status_code, {"degraded": degraded}

    async def recommend(client: httpx.AsyncClient, n: int) -> tuple[int, dict[str, Any]]:
        # no-cache: every request reads the features, as the uncached load test does
        response = await client.get(f"{recommender.url}/v1/recommendations/{users[n % USERS]}",
                                    params={"k": 10}, headers={"Cache-Control": "no-cache"})
        fallback = response.status_code == 200 and bool(response.json()["fallbacks"])
        return response.status_code, {"fallback": fallback, "user_master": "victim"
                                      if users[n % USERS] in on_victim else "other"}

    both = alternating(score, recommend)

    started = datetime.now(UTC)
    load_start = time.monotonic()
    answers = open_loop(both, 2 * RATE, DURATION_S, [(KILL_AT_S, kill)], timeout_s=10.0)
    cluster_topology.restart(victim)  # it rejoins as a replica of the node that took over
    assert "promoted" in marks, "no replica took over the killed master's slots"

    killed_at, promoted_at = marks["killed"] - load_start, marks["promoted"] - load_start
    fraud_side = [a for a in answers if a.flags.get("fraud")]
    recs_side = [a for a in answers if not a.flags.get("fraud")]
    results = {
        "victim": victim, "killed_at_s": round(killed_at, 2),
        "failover_gap_s": round(promoted_at - killed_at, 2),
        "fraud": summary(fraud_side, "degraded", killed_at, promoted_at),
        "recommender": summary(recs_side, "fallback", killed_at, promoted_at),
        "trending_list_on_victim": trending_on_victim,
        "recommender_users_on_victim": len(on_victim),
        "recommender_users_elsewhere": users_elsewhere(recs_side, killed_at, promoted_at),
    }
    write_report(report_dir, REPORTS[victim_is],
                 f"kill -9 a Redis Cluster master ({victim_is}) while fraud (POST /v1/score) "
                 "and the recommender (GET, no-cache) take open-loop load; its replica is "
                 "promoted by the cluster; then the node is restarted and rejoins as a replica",
                 started, {"rate_per_service_per_s": RATE, "duration_s": DURATION_S,
                           "kill_at_s": KILL_AT_S, "users": USERS, "victim": victim_is,
                           "cluster_node_timeout_ms": 2000, "fraud_redis_timeout": "default"},
                 results, answers)

    for side in (fraud_side, recs_side):
        assert {a.status for a in side} == {200}, Counter(a.status for a in side)
    assert results["fraud"]["degraded_answers_in_gap"] > 0, "the gap was not flagged"
    assert results["fraud"]["degraded_answers_in_last_5s"] == 0, "fraud never recovered"
    assert results["recommender"]["fallback_answers_in_last_5s"] == 0, "recs never recovered"
    elsewhere = results["recommender_users_elsewhere"]
    assert elsewhere["fallback_answers"] <= ELSEWHERE_FALLBACK_SHARE_MAX * elsewhere["requests"], \
        f"the recommender's users on live masters degraded: {elsewhere}"
