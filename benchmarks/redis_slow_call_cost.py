"""Fault 4's onset without the stack: what one request-path Redis call costs while every master
of a Redis Cluster is paused, before the breakers open.

A 3+3 Redis Cluster from the chaos tests' node scripts (no Kafka, no services). Two clients on
fraud's 20-ms deadline, side by side in turns: main's request path before session 13 (one
retry, redis-py's cluster pipeline sending a failed node's commands again one by one) and
request_path_redis now (no retry on a cluster; a timed-out node's commands not sent again).
For each: the connections opened and the scripts loaded, every master paused (CLIENT PAUSE
ALL), then five calls back to back, as many as the breakers count before they open: fraud's
record_and_read of one transaction (its eight script calls in one pipeline), then the
recommender's user read (five commands on two masters). Each call timed; the pause waited out.

    .venv/bin/python -m benchmarks.redis_slow_call_cost \\
        --out benchmarks/results/chaos/onset/call_cost.json
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.common.redis_client import RedisClient, redis_from_settings, request_path_redis
from services.common.redis_scripts import run_pipeline
from services.devstack.cluster import redis_roles
from services.devstack.servers import ClusterTopology, start_cluster_topology
from services.fraud.settings import FraudSettings
from services.fraud.state_store import RedisFraudStore
from tests.chaos.load import provenance
from tests.support.fraud_state import Txn

TIMEOUT_S = 0.02   # fraud's deadline (fraud_redis_timeout_s)
PAUSE_S = 3.0
CALLS = 5          # the breakers' fail_max


def clients(topology: ClusterTopology) -> dict[str, Callable[[], RedisClient]]:
    settings = FraudSettings(redis_url=topology.redis_url, redis_cluster=True,
                             redis_password=topology.redis_password)
    return {"main (one retry, redis-py's resends)":
            lambda: redis_from_settings(settings, TIMEOUT_S, Retry(NoBackoff(), 1)),
            "request_path_redis now": lambda: request_path_redis(settings, TIMEOUT_S)}


def user_read(client: RedisClient, user: str) -> list[Any]:
    """The shape of RedisRecsStore.read_user: four keys of the user's, one trending list."""
    return run_pipeline(client, [("ZRANGE", f"h:{{{user}}}", 0, -1, "WITHSCORES"),
                                 ("GET", f"c:{{{user}}}"), ("HMGET", f"v:{{{user}}}", "ts", "a"),
                                 ("ZREVRANGE", "trending", 0, 9, "WITHSCORES"),
                                 ("HGET", f"p:{{{user}}}", "max_maturity")])


def pause(topology: ClusterTopology, masters: list[str]) -> None:
    for address in masters:
        host, port = address.rsplit(":", 1)
        with redis.Redis(host=host, port=int(port), password=topology.redis_password) as node:
            node.execute_command("CLIENT", "PAUSE", int(PAUSE_S * 1000), "ALL")


def timed_calls(call: Callable[[int], object]) -> list[dict[str, Any]]:
    outcomes = []
    for n in range(CALLS):
        start = time.perf_counter()
        try:
            call(n)
            error = None
        except Exception as exc:  # the outage, as the service's adapter would see it
            error = type(exc.__cause__ or exc).__name__
        outcomes.append({"ms": round((time.perf_counter() - start) * 1000, 1), "error": error})
    return outcomes


def run(topology: ClusterTopology, turns: int) -> list[dict[str, Any]]:
    roles = redis_roles(topology.redis_addresses, topology.redis_password)
    masters = [a for a in topology.redis_addresses if roles[a] == "master"]
    runs = []
    for turn in range(turns):
        for label, make in clients(topology).items():
            for call_name in ("fraud record_and_read", "recommender user read"):
                client = make()
                store = RedisFraudStore(client)
                tag = f"t{turn}{secrets.token_hex(3)}"

                def call(n: int, client: RedisClient = client, store: RedisFraudStore = store,
                         call_name: str = call_name, tag: str = tag) -> object:
                    if call_name.startswith("fraud"):
                        return store.record_and_read([Txn(transaction_id=f"{tag}x{n}",
                                                          card_id=f"card{tag}")])
                    return user_read(client, f"u{tag}")
                call(-1)                          # connections open, scripts loaded
                pause(topology, masters)
                outcomes = timed_calls(call)
                client.close()
                time.sleep(PAUSE_S + 0.5)         # the pause ends
                runs.append({"turn": turn, "client": label, "call": call_name,
                             "calls": outcomes,
                             "first_ms": outcomes[0]["ms"],
                             "median_of_the_rest_ms": statistics.median(
                                 o["ms"] for o in outcomes[1:]),
                             "total_ms": round(sum(o["ms"] for o in outcomes), 1)})
                print(f"{label:40s} {call_name:24s} "
                      f"{[o['ms'] for o in outcomes]} total {runs[-1]['total_ms']} ms")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = datetime.now(UTC)
    topology = start_cluster_topology(Path(tempfile.mkdtemp(prefix="slow-call-")),
                                      secrets.token_urlsafe(16), kafka_nodes=0)
    try:
        runs = run(topology, args.turns)
    finally:
        topology.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "what": "one request-path Redis call's cost with every master of a 3+3 Redis Cluster "
                "paused (CLIENT PAUSE ALL), five calls back to back, two clients in turns",
        "started": started.isoformat(), "finished": datetime.now(UTC).isoformat(),
        **provenance(),
        "settings": {"timeout_ms": TIMEOUT_S * 1000, "pause_s": PAUSE_S,
                     "calls_per_run": CALLS, "turns": args.turns},
        "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
