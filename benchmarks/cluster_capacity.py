"""What one Kafka broker and one Redis Cluster master carry, measured on the cluster topology.

    make bench-cluster
    .venv/bin/python benchmarks/cluster_capacity.py [--backlog 100000] [--scorers 2]
        [--customers 10000] [--reads 20000] [--out benchmarks/results/cluster_capacity.json]

`make run-cluster`'s topology, started by the same node scripts on free loopback ports
(services/devstack/servers.start_cluster_topology: 3 KRaft brokers, every topic replication
factor 3 and min.insync.replicas 2; 3 Redis masters with a replica each, with a password), so
it never collides with a stack on the default ports. Three phases, each timed, with the CPU
seconds of every broker and every Redis node read from /proc around it (as fraud_stream.py does):

1. ingest: the fraud stream benchmark's backlog (its world, its history in the Redis Cluster
   through RedisFraudState.record) published to `transactions` with acks=all; what each broker
   wrote to its log directory (du) and the CPU it took.
2. drain: --scorers `python -m services.fraud.stream` processes score the backlog (group
   fraud-scorer) against the Redis Cluster and publish the decisions: each broker's and each
   master's CPU per transaction.
3. reads: the recommender's one-round-trip read of a user's online state (RedisRecsStore.read_user)
   for --reads users of the default viewing world, after its watches went through the stream's
   WatchFeaturesHandler into the cluster: each master's CPU per read, and the bytes of those
   keys per user (MEMORY USAGE of each; the world's per-catalog keys included).

From those: transactions a second one broker core and one master core carry, the bytes a broker
writes to its log per transaction, reads a second a master core serves and Redis bytes per user;
benchmarks/doc_numbers.py turns them into the brokers and masters 10,000 tx/s and 200 M users
need. Writes the JSON (date, machine, versions, load average, counts).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import redis
from redis.cluster import RedisCluster
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fraud_stream import (  # a sibling script, on sys.path above
    GROUP,
    Stack,
    Timeline,
    bench_world,
    decision_ends,
    history,
    machine_cpu_s,
    process_cpu_s,
    scorers,
    scrape,
    stage_costs,
)
from kafka import KafkaConsumer
from recs_features_online import build_items, replay, watch_events

from services.common.bus.confluent_bus import ConfluentPublisher
from services.common.bus.kafka_bus import ensure_topics, group_lags
from services.common.bus.ports import publish_or_raise
from services.common.bus.topics import TRANSACTIONS, platform_topics
from services.common.machine import describe as describe_machine
from services.designs.fraud.redis_state import RedisFraudState
from services.designs.recs.redis_store import RedisRecsStore
from services.devstack.cluster import redis_roles
from services.devstack.servers import ClusterTopology, start_cluster_topology
from services.stream.watches import WatchFeaturesHandler
from services.trainer.worlds.viewing import ViewingConfig, generate_viewing

# this checkout's root: run as a script, `services` may come from another checkout's editable
# install, and the scorers, the models and the result belong to this one
REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "cap"  # the replayed recommendation state's keys: cap:<view>:{<user>}
RESULT = REPO_ROOT / "benchmarks/results/cluster_capacity.json"


class NodeMeter:
    """CPU seconds of each node (and of the machine) between start and stop, as mean cores."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._started = time.perf_counter()
        self._start = self._read()

    def _read(self) -> dict[str, float]:
        used = {name: process_cpu_s(pid) for name, pid in self._pids.items()}
        used["machine"], used["steal"] = machine_cpu_s()
        return used

    def stop(self) -> tuple[float, dict[str, float]]:
        seconds = time.perf_counter() - self._started
        end = self._read()
        return seconds, {name: round((end[name] - self._start[name]) / seconds, 3)
                         for name in end}


def node_pids(topology: ClusterTopology) -> dict[str, int]:
    return {name: server.process.pid for name, server in topology.servers.items()}


def roles(topology: ClusterTopology) -> dict[str, str]:
    by_address = redis_roles(topology.redis_addresses, topology.redis_password)
    return {name: by_address[topology.nodes[name].address] for name in topology.redis_names}


def log_bytes(workdir: Path, name: str) -> int:
    """What a broker holds on disk (du -sb of its data directory)."""
    out = subprocess.run(["du", "-sb", str(workdir / name)], capture_output=True, text=True,
                         check=True).stdout
    return int(out.split()[0])


def per_node(cores: dict[str, float], names: list[str]) -> dict[str, float]:
    return {name: cores[name] for name in names}


def ingest(topology: ClusterTopology, workdir: Path, timeline: Timeline) -> dict[str, Any]:
    """Phase 1: the backlog published with acks=all; each broker's CPU and bytes on disk."""
    messages = timeline.backlog_messages(f"cap-{datetime.now(UTC):%H%M%S}")
    payload = sum(len(m.value) + len(m.key or b"") for m in messages)
    before = {name: log_bytes(workdir, name) for name in topology.kafka_names}
    publisher = ConfluentPublisher(topology.kafka_access, client_id="capacity",
                                   delivery_timeout_s=60)
    meter = NodeMeter(node_pids(topology) | {"benchmark": os.getpid()})
    for start in tqdm(range(0, len(messages), 5000), desc="publish", unit="batch"):
        publish_or_raise(publisher, messages[start:start + 5000])
    seconds, cores = meter.stop()
    publisher.close()
    written = {name: log_bytes(workdir, name) - before[name] for name in topology.kafka_names}
    return {"transactions": len(messages), "payload_bytes": payload,
            "seconds": round(seconds, 2), "tx_per_s": round(len(messages) / seconds),
            "broker_cores": per_node(cores, topology.kafka_names),
            "broker_bytes_written": written,
            "other_cores": {k: v for k, v in cores.items() if k not in topology.kafka_names}}


def drain(topology: ClusterTopology, workdir: Path, env: dict[str, str], count: int,
          backlog: int) -> dict[str, Any]:
    """Phase 2: `count` scorers drain the backlog; each node's CPU per transaction."""
    # scorers() reads the stack's env and workdir only; the nodes named are the first of each
    stack = Stack(topology.servers["redis-1"], topology.servers["kafka-1"], env, workdir)
    probe = KafkaConsumer(**topology.kafka_access.python_config(), client_id="cap-probe",
                          enable_auto_commit=False)
    before = decision_ends(probe)
    node_roles = roles(topology)
    with scorers(stack, count) as running:
        first, meter = 0.0, None
        decided = 0
        with tqdm(total=backlog, desc=f"drain with {count} scorer(s)", unit="tx") as bar:
            while True:
                time.sleep(0.25)
                for scorer in running:
                    scorer.check()
                decided = sum(decision_ends(probe).values()) - sum(before.values())
                bar.n = decided
                bar.refresh()
                if meter is None:
                    if decided:
                        first = time.perf_counter()
                        meter = NodeMeter(node_pids(topology) | {
                            f"scorer-{k}": s.process.pid for k, s in enumerate(running)})
                    continue
                if decided >= backlog and \
                        group_lags(topology.kafka_access, {GROUP: [TRANSACTIONS]})[GROUP] == 0:
                    break
        seconds, cores = meter.stop()
        costs = stage_costs(scrape([s.port for s in running]))
    probe.close()
    del first
    masters = [n for n in topology.redis_names if node_roles[n] == "master"]
    replicas = [n for n in topology.redis_names if node_roles[n] != "master"]
    return {"scorers": count, "transactions": backlog, "decisions": decided,
            "seconds": round(seconds, 2), "tx_per_s": round(backlog / seconds),
            "broker_cores": per_node(cores, topology.kafka_names),
            "master_cores": per_node(cores, masters), "replica_cores": per_node(cores, replicas),
            "scorer_cores": round(sum(v for k, v in cores.items() if k.startswith("scorer")), 3),
            "machine_cores": cores["machine"], "steal_cores": cores["steal"],
            "degraded": costs["degraded"], "stale": costs["stale"],
            "mean_batch": round(costs["mean_batch"], 1)}


def recs_reads(topology: ClusterTopology, client: RedisCluster, reads: int) -> dict[str, Any]:
    """Phase 3: the recommender's per-request read on the cluster; each master's CPU per read."""
    world = generate_viewing(ViewingConfig())
    items = build_items(world)
    events = watch_events(world)
    replay(WatchFeaturesHandler(client, items, NAMESPACE), events, 500)
    users = sorted(world.train["user_id"].unique())
    stored, keys = namespace_bytes(client)
    store = RedisRecsStore(client, items, NAMESPACE)
    chosen = [str(u) for u in np.random.default_rng(3).choice(users, size=reads)]
    node_roles = roles(topology)
    masters = [n for n in topology.redis_names if node_roles[n] == "master"]
    meter = NodeMeter(node_pids(topology) | {"benchmark": os.getpid()})
    for user in tqdm(chosen, desc="reads", unit="read"):
        store.read_user(user)
    seconds, cores = meter.stop()
    return {"reads": reads, "seconds": round(seconds, 2), "reads_per_s": round(reads / seconds),
            "master_cores": per_node(cores, masters), "client_cores": cores["benchmark"],
            "users_with_state": len(users), "watch_events": len(events),
            "recs_keys": keys, "recs_bytes": stored,
            "bytes_per_user": round(stored / len(users), 1)}


def namespace_bytes(client: RedisCluster) -> tuple[int, int]:
    """(bytes, keys) of every key the replay wrote, each counted whole (MEMORY USAGE SAMPLES 0):
    used_memory would count the fraud phase's decisions expiring meanwhile too."""
    keys = list(client.scan_iter(match=f"{NAMESPACE}:*", count=10_000))
    total = 0
    for start in range(0, len(keys), 5000):
        pipe = client.pipeline()  # type: ignore[no-untyped-call]  # redis-py: untyped here
        for key in keys[start:start + 5000]:
            pipe.memory_usage(key, samples=0)
        total += sum(int(v or 0) for v in pipe.execute())
    return total, len(keys)


def masters_memory(topology: ClusterTopology) -> dict[str, int]:
    node_roles = roles(topology)
    out = {}
    for name in topology.redis_names:
        if node_roles[name] == "master":
            host, port = topology.nodes[name].address.split(":")
            node = redis.Redis(host=host, port=int(port), password=topology.redis_password)
            out[name] = int(node.info("memory")["used_memory"])
            node.close()
    return out


def capacity(phases: dict[str, Any]) -> dict[str, Any]:
    """What one broker core and one master core carry (doc_numbers.py turns these into how many
    the design's scale needs, at its stated utilisation)."""
    ingest_, drain_, reads_ = phases["ingest"], phases["drain"], phases["reads"]
    brokers = len(ingest_["broker_cores"])
    # broker core-seconds a transaction costs, published once and then scored (fetched, decided,
    # its decision published): its whole path through Kafka, summed over the brokers
    broker_s_per_tx = (sum(ingest_["broker_cores"].values()) / ingest_["tx_per_s"]
                       + sum(drain_["broker_cores"].values()) / drain_["tx_per_s"])
    master_s_per_tx = sum(drain_["master_cores"].values()) / drain_["tx_per_s"]
    master_s_per_read = sum(reads_["master_cores"].values()) / reads_["reads_per_s"]
    return {
        "broker_core_us_per_tx": round(broker_s_per_tx * 1e6, 1),
        # with replication factor 3 on 3 brokers each holds every partition: a third of the
        # leaders' work and a copy of everything lands on each
        "broker_tx_per_s_per_core": round(brokers / broker_s_per_tx),
        "broker_log_bytes_per_tx": round(sum(ingest_["broker_bytes_written"].values())
                                         / brokers / ingest_["transactions"], 1),
        "master_core_us_per_tx": round(master_s_per_tx * 1e6, 1),
        "master_tx_per_s_per_core": round(len(drain_["master_cores"]) / master_s_per_tx),
        "master_core_us_per_read": round(master_s_per_read * 1e6, 1),
        "master_reads_per_s_per_core": round(len(reads_["master_cores"]) / master_s_per_read),
        "bytes_per_user": reads_["bytes_per_user"],
    }


def versions(topology: ClusterTopology) -> dict[str, str]:
    host, port = topology.redis_addresses[0].split(":")
    node = redis.Redis(host=host, port=int(port), password=topology.redis_password)
    redis_version = str(node.info("server")["redis_version"])
    node.close()
    kafka = sorted((REPO_ROOT / ".cache").glob("kafka-*"))
    return {"redis": redis_version, "kafka": kafka[-1].name.removeprefix("kafka-") if kafka
            else "unknown", "redis_py": redis.__version__}


def timed(label: str, step: Callable[[], Any]) -> Any:
    began = time.perf_counter()
    result = step()
    print(f"{label}: {time.perf_counter() - began:.1f} s", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--scorers", type=int, default=2)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--model-repository", type=Path, default=REPO_ROOT / ".state/models")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    machine = describe_machine()
    started = datetime.now(UTC)
    world = timed("world", lambda: bench_world(args.customers, args.backlog))
    timeline = Timeline.of(world, args.backlog)
    workdir = Path(tempfile.mkdtemp(prefix="cluster-capacity-"))
    password = "capacity-" + os.urandom(8).hex()
    topology = start_cluster_topology(workdir, password)
    try:
        ensure_topics(topology.kafka_admin_access, platform_topics(3, replication_factor=3))
        client = RedisCluster.from_url(topology.redis_url, password=password)
        writer = RedisFraudState(client)
        for transactions, frauds in tqdm(history(timeline), desc="history -> Redis Cluster"):
            writer.record(transactions, frauds)
        fraud_memory = masters_memory(topology)
        env = {**os.environ, **topology.service_environment(),
               "MLSD_MODEL_REPOSITORY": str(args.model_repository),
               "MLSD_FRAUD_POLICY_PATH": str(REPO_ROOT / "config/fraud/policy.toml"),
               "MLSD_FRAUD_STREAM_MAX_AGE_S": str(60 * 86_400), "MLSD_LOG_LEVEL": "WARNING"}
        phases: dict[str, Any] = {}
        phases["ingest"] = timed("ingest", lambda: ingest(topology, workdir, timeline))
        phases["drain"] = timed("drain", lambda: drain(topology, workdir, env, args.scorers,
                                                      args.backlog))
        phases["reads"] = timed("reads", lambda: recs_reads(topology, client, args.reads))
        found = versions(topology)
        client.close()
    finally:
        topology.stop()
    result = {
        "what": "one broker's and one Redis Cluster master's share of the fraud stream "
                "(publish, score) and of the recommender's per-request read, on make "
                "run-cluster's topology (3 brokers RF 3 min ISR 2, 3 masters + 3 replicas)",
        "date": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine, "load_average_after": list(os.getloadavg()),
        "versions": found,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "world": {"customers": args.customers, "history_transactions": len(timeline.history),
                  "backlog": args.backlog},
        "fraud_state_masters_used_memory_bytes": fraud_memory,
        "phases": phases, "capacity": capacity(phases),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["capacity"], indent=1))
    print(f"logs: {workdir}; result: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
