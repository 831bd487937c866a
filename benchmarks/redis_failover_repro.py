"""Fault 2 without the stack: fraud's exact Redis path while a Redis Cluster master is killed.

A 3+3 Redis Cluster from the chaos tests' node scripts (no Kafka, no services), fraud's
RedisFraudStore on request_path_redis (its 20 ms deadline; one retry until session 13, none
on a cluster since) behind fraud's breakers (one per master, fraud_store), two threads calling
every 20-50 ms (fraud serves from threads);
kill -9 the master owning the card's slot, and note when calls succeed again. Each run appends
one JSON record to --out: when the replica was promoted, the first success after the kill, the
outcomes of the last 5 s and of each second after the kill, and whether the killed master was
the client's default node (the node redis-py 8.1's cluster pipeline asks for the keys of each
script call).

    .venv/bin/python -m benchmarks.redis_failover_repro --label "$(git rev-parse --short HEAD)" \\
        --out benchmarks/results/chaos/redis_failover_repro/runs.json  [--debug]

--debug logs every slot map refresh (NodesManager.initialize: who called it, which node the
card's slot is on after it) and the traceback of each failed call.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from redis.cluster import NodesManager, RedisCluster

from services.common.redis_client import request_path_redis
from services.devstack.cluster import redis_roles
from services.devstack.servers import ClusterTopology, start_cluster_topology
from services.fraud.settings import FraudSettings
from services.fraud.state_store import FraudStoreUnavailable, RedisFraudStore
from services.fraud.wiring import fraud_store
from tests.support.fraud_state import Txn

logger = logging.getLogger("repro")
CALM_S = 5.0  # the run's last seconds: every call should succeed again by then


@dataclass
class Calls:
    """Fraud's store behind its breakers, called from threads; each outcome timed from start
    ("open": the store skipped the transaction, its master's breaker open)."""

    store: RedisFraudStore
    card: str
    started: float
    debug: bool
    outcomes: list[tuple[float, str, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def loop(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            txn = Txn(transaction_id=f"{self.card}-{worker}-{n}", card_id=self.card,
                      user_id=f"cust{n % 7}", terminal_id=f"term{n % 11}",
                      merchant_id=f"m{n % 13}", device_id=f"dev{n % 5}",
                      ip_address=f"81.0.0.{n % 17}", timestamp=datetime.now(UTC))
            at = time.monotonic() - self.started
            try:
                read = self.store.record_and_read([txn])
                self.outcomes.append((at, "open", read.skipped[0]) if read.skipped
                                     else (at, "ok", ""))
            except FraudStoreUnavailable as exc:
                self.outcomes.append((at, "failed", str(exc)))
                logger.warning("failed at %.2f s: %s", at, exc)
                if self.debug:
                    logger.warning("".join(traceback.format_exception(exc.__cause__)))
            time.sleep(random.uniform(0.02, 0.05))


def trace_initialize(slot: int, started: float) -> None:
    """Log every slot map refresh: who called it, its epochs, who owns `slot` after it."""
    original = NodesManager.initialize

    def traced(self: NodesManager, *args: Any, **kwargs: Any) -> Any:
        before, t0 = self._epoch, time.monotonic()
        try:
            return original(self, *args, **kwargs)
        finally:
            owner = self.slots_cache.get(slot, [None])[0]
            logger.info("initialize from %s at %.2f s: epoch %d -> %d, slot %d on %s",
                        sys._getframe(1).f_code.co_name, t0 - started, before, self._epoch,
                        slot, owner.name if owner else None)

    NodesManager.initialize = traced  # type: ignore[method-assign]


def await_replicas(topology: ClusterTopology, timeout_s: float = 60.0) -> None:
    """Until every master has a replica in sync: one that never synced is not promoted."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        online = 0
        for address in topology.redis_addresses:
            host, port = address.split(":")
            with redis.Redis(host=host, port=int(port), password=topology.redis_password) as r:
                info = r.info("replication")
            online += sum(1 for k, v in info.items() if k.startswith("slave")
                          and isinstance(v, dict) and v.get("state") == "online")
        if online == len(topology.redis_addresses) // 2:
            return
        time.sleep(0.25)
    raise RuntimeError("the replicas did not sync")


def await_promotion(topology: ClusterTopology, dead: str, started: float,
                    until_s: float) -> float | None:
    """Seconds from start when a survivor became the third master (None: not by until_s)."""
    survivors = [a for a in topology.redis_addresses if a != dead]
    while time.monotonic() - started < until_s:
        roles = redis_roles(survivors, topology.redis_password)
        if sum(1 for a in survivors if roles[a] == "master") == 3:
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def run(topology: ClusterTopology, args: argparse.Namespace) -> dict[str, Any]:
    await_replicas(topology)
    settings = FraudSettings(redis_url=topology.redis_url, redis_cluster=True,
                             redis_password=topology.redis_password)
    client = request_path_redis(settings, settings.fraud_redis_timeout_s)
    assert isinstance(client, RedisCluster)
    card = f"card{uuid.uuid4().hex[:6]}"
    slot = client.keyslot(f"{{{card}}}")
    started = time.monotonic()
    if args.debug:
        trace_initialize(slot, started)
    dead = client.nodes_manager.get_node_from_slot(slot).name
    victim = next(n for n in topology.redis_names if topology.nodes[n].address == dead)
    calls = Calls(fraud_store(settings, client), card, started, args.debug)
    threads = [threading.Thread(target=calls.loop, args=(w,), name=f"w{w}")
               for w in range(args.threads)]
    for thread in threads:
        thread.start()
    time.sleep(args.kill_at)
    killed = time.monotonic() - started
    default_at_kill = client.get_default_node().name
    topology.kill(victim)
    logger.info("killed %s (%s) at %.2f s", victim, dead, killed)
    promoted = await_promotion(topology, dead, started, args.seconds)
    time.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
    calls.stop.set()
    for thread in threads:
        thread.join()
    default_at_end = client.get_default_node().name
    client.close()
    after = [o for o in calls.outcomes if o[0] >= killed]
    first_ok = next((at for at, kind, _ in after if kind == "ok"), None)
    return {
        "victim": victim, "killed_at_s": round(killed, 2),
        "promoted_at_s": round(promoted, 2) if promoted else None,
        "victim_was_default_node_at_kill": default_at_kill == dead,
        "default_node_is_dead_at_end": default_at_end == dead,
        "first_success_after_kill_s": round(first_ok - killed, 2) if first_ok else None,
        "outcomes_after_kill": dict(Counter(kind for _, kind, _ in after)),
        f"outcomes_last_{CALM_S:.0f}s": dict(Counter(
            kind for at, kind, _ in calls.outcomes if at >= args.seconds - CALM_S)),
        "errors_after_kill": dict(Counter(error.split(" connecting")[0]
                                          for _, _, error in after if error)),
        # each second after the kill: calls answered, skipped (breaker open) and failed
        "per_second_after_kill": {
            str(second): dict(Counter(kind for at, kind, _ in after
                                      if int(at - killed) == second))
            for second in sorted({int(at - killed) for at, _, _ in after})},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=22.0)
    parser.add_argument("--kill-at", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--out", type=Path, help="append the run's record to this JSON list")
    parser.add_argument("--label", default="", help="what code ran (e.g. the commit)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO,
                        format="%(relativeCreated)8.0f %(threadName)s %(name)s %(message)s")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory() as workdir:
        topology = start_cluster_topology(Path(workdir), secrets.token_urlsafe(16),
                                          kafka_nodes=0)
        try:
            outcome = run(topology, args)
        finally:
            topology.stop()
    record = {
        "label": args.label, "started": started, "machine": platform.node(),
        "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
        "redis_py": redis.__version__,
        "redis_server": subprocess.run(["redis-server", "--version"], capture_output=True,
                                       text=True, check=True).stdout.split()[2],
        "threads": args.threads, "seconds": args.seconds, "kill_at_s": args.kill_at,
        "fraud_redis_timeout_s": FraudSettings().fraud_redis_timeout_s, **outcome,
    }
    print(json.dumps(record, indent=1))
    if args.out:
        runs = json.loads(args.out.read_text()) if args.out.exists() else []
        args.out.write_text(json.dumps([*runs, record], indent=1) + "\n")


if __name__ == "__main__":
    main()
