"""Kafka clients side by side: msg/s and CPU per message of each bus adapter, same broker, one run.

    .venv/bin/python benchmarks/kafka_clients.py [--messages 200000] [--repeats 3]

Starts its own Kafka broker (as the tests do). For each client, alternating, `--repeats` times:
publish `--messages` transaction-like events of ~350 bytes through the platform's Publisher
(acks=all, idempotent; chunks of 5,000 as the seeder sends them, each returning only once every
message is acknowledged), then read them back through a RecordSource in a fresh consumer group
(batches of 500, a commit every second, as the runner does). Wall time gives msg/s; this
process's CPU time (every thread: the client's own IO threads count too; the broker does not)
gives CPU seconds per 10,000 messages. Consuming is timed from the first record, so the group
join is left out. Writes benchmarks/results/kafka_clients.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, get_args

import confluent_kafka

from services.common.bus.clients import kafka_publisher, kafka_record_source
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.ports import OutboundMessage, TopicPartitionKey, publish_or_raise
from services.common.bus.topics import TopicSpec
from services.common.machine import describe as describe_machine
from services.common.settings import KafkaClient, PlatformSettings
from services.devstack.servers import REPO_ROOT, start_kafka

CHUNK = 5_000
BATCH = 500
PARTITIONS = 3
CARDS = 20_000


def transaction_values(n: int, size: int) -> list[tuple[str, bytes]]:
    """(key, value) pairs shaped like the `transactions` topic's events, padded to `size` bytes."""
    now = datetime.now(UTC).isoformat()
    pairs = []
    for i in range(n):
        card = f"card-{i * 7919 % CARDS:05d}"
        body: dict[str, Any] = {
            "id": f"bench-tx-{i:07d}", "type": "transaction", "source": "bench", "time": now,
            "data": {"transaction_id": f"tx-{i:07d}", "card_id": card,
                     "customer_id": f"cust-{i * 31 % 9_000:05d}",
                     "merchant_id": f"m-{i * 13 % 2_000:04d}", "amount": 42.17 + i % 500,
                     "currency": "EUR", "country": "FR", "city": "Lyon", "channel": "card_present",
                     "timestamp": now}}
        encoded = json.dumps(body, separators=(",", ":")).encode()
        body["data"]["note"] = "x" * max(0, size - len(encoded) - len(',"note":""'))
        pairs.append((card, json.dumps(body, separators=(",", ":")).encode()))
    return pairs


def produce(settings: PlatformSettings, topic: str,
            values: list[tuple[str, bytes]]) -> dict[str, float]:
    publisher = kafka_publisher(settings, client_id="bench-producer", delivery_timeout_s=30.0)
    messages = [OutboundMessage(topic, key, value) for key, value in values]
    publish_or_raise(publisher, messages[:100])  # connection and metadata, outside the clock
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(100, len(messages), CHUNK):
        publish_or_raise(publisher, messages[start:start + CHUNK])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    publisher.close()
    return measures(len(messages) - 100, wall, cpu)


def consume(settings: PlatformSettings, topic: str, expected: int) -> dict[str, float]:
    source = kafka_record_source(settings, f"bench-{uuid.uuid4().hex[:8]}", [topic],
                                 client_id="bench-consumer")
    seen: set[tuple[int, int]] = set()
    pending: dict[TopicPartitionKey, int] = {}
    deadline = time.monotonic() + 600
    try:
        while not seen and time.monotonic() < deadline:  # the group join, outside the clock
            first = source.poll(0.5, BATCH)
            seen.update((r.partition, r.offset) for r in first)
        wall, cpu = time.perf_counter(), time.process_time()
        last_commit = time.monotonic()
        while len(seen) < expected and time.monotonic() < deadline:
            for record in source.poll(0.5, BATCH):
                seen.add((record.partition, record.offset))
                pending[(record.topic, record.partition)] = record.offset + 1
            if time.monotonic() - last_commit >= 1.0:
                source.commit(pending)
                last_commit = time.monotonic()
        source.commit(pending)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        source.close()
    if len(seen) != expected:
        raise RuntimeError(f"read {len(seen)} distinct records of {expected}")
    return measures(expected - len(first), wall, cpu)


def measures(n: int, wall_s: float, cpu_s: float) -> dict[str, float]:
    return {"messages": n, "wall_s": round(wall_s, 3), "cpu_s": round(cpu_s, 3),
            "msg_per_s": round(n / wall_s), "cpu_s_per_10k": round(cpu_s / n * 10_000, 4)}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for client in get_args(KafkaClient):
        mine = [r for r in runs if r["client"] == client]
        out[client] = {
            side: {measure: statistics.median(r[side][measure] for r in mine)
                   for measure in ("msg_per_s", "cpu_s_per_10k")}
            for side in ("produce", "consume")}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=350, help="bytes per message value")
    parser.add_argument("--repeats", type=int, default=3, help="runs per client, alternating")
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "benchmarks/results/kafka_clients.json")
    args = parser.parse_args()
    values = transaction_values(args.messages + 100, args.size)
    workdir = Path(tempfile.mkdtemp(prefix="kafka-clients-bench-"))
    kafka = start_kafka(workdir, partitions=PARTITIONS)
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    try:
        for repeat in range(args.repeats):
            for client in get_args(KafkaClient):
                settings = PlatformSettings(kafka_bootstrap_servers=kafka.address,
                                            service_name="bench", kafka_client=client)
                topic = f"bench-{client}-{repeat}"
                ensure_topics(kafka.address, [TopicSpec(topic, PARTITIONS)])
                produced = produce(settings, topic, values)
                consumed = consume(settings, topic, len(values))
                runs.append({"client": client, "repeat": repeat, "produce": produced,
                             "consume": consumed, "load": os.getloadavg()})
                print(f"{client:>12} #{repeat}: produce {produced['msg_per_s']:>8,} msg/s "
                      f"{produced['cpu_s_per_10k']:.3f} CPU s/10k | consume "
                      f"{consumed['msg_per_s']:>8,} msg/s "
                      f"{consumed['cpu_s_per_10k']:.3f} CPU s/10k", flush=True)
    finally:
        kafka.stop()
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "how": " ".join(["python benchmarks/kafka_clients.py", *sys.argv[1:]]),
        "machine": describe_machine(), "load_before": load_before,
        "versions": {"kafka-python": version("kafka-python"),
                     "confluent-kafka": version("confluent-kafka"),
                     "librdkafka": confluent_kafka.libversion()[0],
                     "broker": kafka_version()},
        "setup": {"messages": args.messages, "value_bytes": args.size, "partitions": PARTITIONS,
                  "acks": "all", "idempotence": True, "linger_ms": 2, "publish_chunk": CHUNK,
                  "poll_batch": BATCH, "commit_every_s": 1.0, "repeats": args.repeats},
        "median": summary(runs), "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["median"], indent=1))
    return 0


def kafka_version() -> str:
    pom = (REPO_ROOT / "infra/kafka/pom.xml").read_text()
    return pom.split("<kafka.version>", 1)[1].split("</kafka.version>", 1)[0]


if __name__ == "__main__":
    sys.exit(main())
