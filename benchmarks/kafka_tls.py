"""Kafka's TLS beside plaintext: CPU per message of producing and consuming on the cluster topology.

    .venv/bin/python benchmarks/kafka_tls.py [--messages 100000] [--repeats 2]

Starts two of the cluster topology's 3-node Kafka clusters (as the tests do, no Redis), one
SASL_PLAINTEXT and one SASL_SSL (docs/reliability.md, "Kafka over TLS"), both up for the whole
run. In turns (plaintext, TLS, plaintext, TLS...), as the stream benchmark does with the
librdkafka adapter: publish `--messages` transaction-like events of ~350 bytes (acks=all,
chunks of 5,000) to a topic of replication factor 3, then read them back in a fresh consumer
group (benchmarks/kafka_clients.py's produce and consume). This process's CPU gives the
client's cost; the three brokers' CPU over the same steps (their processes' user and system
time, which replication to each other is part of) the brokers'. Both as CPU seconds per 10,000
messages. Writes benchmarks/results/kafka_tls.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import confluent_kafka
import psutil
from kafka_clients import consume, kafka_version, produce, transaction_values

from services.common.bus.acls import grant, service_acls
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import TopicSpec
from services.common.machine import describe as describe_machine
from services.common.settings import PlatformSettings
from services.devstack.servers import REPO_ROOT, ClusterTopology, start_cluster_topology

PARTITIONS = 3
VARIANTS = ("plaintext", "tls")


def brokers_cpu(topology: ClusterTopology) -> float:
    """The nodes' CPU seconds so far (user and system time of each JVM)."""
    total = 0.0
    for name in topology.kafka_names:
        times = psutil.Process(topology.servers[name].process.pid).cpu_times()
        total += times.user + times.system
    return total


def settings_of(topology: ClusterTopology) -> PlatformSettings:
    access = topology.kafka_access  # the tests' user: every topic granted below
    return PlatformSettings(
        kafka_bootstrap_servers=access.bootstrap_servers, service_name="chaos",
        kafka_security_protocol=access.security_protocol, kafka_username=access.username,
        kafka_password=access.password, kafka_client="confluent",
        kafka_ssl_cafile=Path(access.ssl_cafile) if access.ssl_cafile else None)


def measured(topology: ClusterTopology, step: Callable[[], dict[str, float]]) -> dict[str, float]:
    before = brokers_cpu(topology)
    result = step()
    brokers = brokers_cpu(topology) - before
    return {**result, "brokers_cpu_s": round(brokers, 3),
            "brokers_cpu_s_per_10k": round(brokers / result["messages"] * 10_000, 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=350, help="bytes per message value")
    parser.add_argument("--repeats", type=int, default=2, help="turns per variant, alternating")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/kafka_tls.json")
    args = parser.parse_args()
    values = transaction_values(args.messages + 100, args.size)
    workdir = Path(tempfile.mkdtemp(prefix="kafka-tls-bench-"))
    topologies: dict[str, ClusterTopology] = {}
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    try:
        for variant in VARIANTS:
            topologies[variant] = start_cluster_topology(
                workdir / variant, secrets.token_urlsafe(16), redis_masters=0,
                partitions=PARTITIONS, tls=variant == "tls")
        time.sleep(10)  # past the nodes' first seconds of compilation
        for repeat in range(args.repeats):
            for variant in VARIANTS:
                topology = topologies[variant]
                settings = settings_of(topology)
                topic = f"bench-{variant}-{repeat}"
                ensure_topics(topology.kafka_admin_access,
                              [TopicSpec(topic, PARTITIONS, replication_factor=3)])
                grant(topology.kafka_admin_access, service_acls(
                    "chaos", topics=[topic], group_prefixes=("bench-",)))
                time.sleep(3)  # every broker applies the new ACLs from the metadata log
                produced = measured(topology, functools.partial(produce, settings, topic, values))
                consumed = measured(topology,
                                    functools.partial(consume, settings, topic, len(values)))
                runs.append({"variant": variant, "repeat": repeat, "produce": produced,
                             "consume": consumed, "load": os.getloadavg()})
                print(f"{variant:>9} #{repeat}: produce {produced['msg_per_s']:>7,} msg/s, "
                      f"client {produced['cpu_s_per_10k']:.3f} brokers "
                      f"{produced['brokers_cpu_s_per_10k']:.3f} CPU s/10k | consume "
                      f"{consumed['msg_per_s']:>7,} msg/s, client "
                      f"{consumed['cpu_s_per_10k']:.3f} brokers "
                      f"{consumed['brokers_cpu_s_per_10k']:.3f} CPU s/10k", flush=True)
    finally:
        for topology in topologies.values():
            topology.stop()
    median = {variant: {side: {measure: statistics.median(
        r[side][measure] for r in runs if r["variant"] == variant)
        for measure in ("msg_per_s", "cpu_s_per_10k", "brokers_cpu_s_per_10k")}
        for side in ("produce", "consume")} for variant in VARIANTS}
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "how": " ".join(["python benchmarks/kafka_tls.py", *sys.argv[1:]]),
        "machine": describe_machine(), "load_before": load_before,
        "versions": {"confluent-kafka": version("confluent-kafka"),
                     "librdkafka": confluent_kafka.libversion()[0], "broker": kafka_version()},
        "setup": {"messages": args.messages, "value_bytes": args.size, "partitions": PARTITIONS,
                  "replication_factor": 3, "brokers": 3, "client": "confluent", "acks": "all",
                  "repeats": args.repeats, "tls": "SASL_SSL on the BROKER listener (clients "
                                                  "and replication), RSA 2048, PKCS12"},
        "median": median, "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(median, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
