"""The decision writer: decisions/s from fraud-decisions into PostgreSQL, and its lag.

    .venv/bin/python benchmarks/records_writer.py [--backlog 100000] [--rates 1000,3000]

Starts its own Kafka broker and PostgreSQL (as the tests do) and runs the records service's
writer as it runs there: a ConsumerRunner with DecisionWriter (one transaction a polled batch,
ON CONFLICT DO NOTHING, no Redis dedupe), in a thread of this process. Each decision event is
shaped as the fraud service publishes it (32 features, three reasons, ~1.6 kB).

- Throughput: `--backlog` decisions published first, then the writer drains them in a fresh
  group; decisions/s from the first row written to the last (the group join left out), once
  per batch size in `--batches`, alternating, `--repeats` times.
- Lag: the writer running, decisions published at each of `--rates` per second for
  `--seconds`, in 20-ms ticks; per decision, from its event time (set when it is published) to
  the commit of the transaction that wrote it. p50, p99 and max.

Writes benchmarks/results/records_writer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import confluent_kafka
from psycopg_pool import ConnectionPool

from services.common.bus.clients import kafka_publisher
from services.common.bus.consumer import ConsumerMetrics, RunnerConfig
from services.common.bus.dedupe import IdempotentWrites
from services.common.bus.envelope import Event, encode_event
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.ports import OutboundMessage, publish_or_raise
from services.common.bus.runtime import build_kafka_consumer
from services.common.bus.topics import FRAUD_DECISIONS, TopicSpec, platform_topics
from services.common.machine import describe as describe_machine
from services.common.records.pool import records_pool
from services.common.records.settings import PostgresSettings
from services.common.settings import PlatformSettings
from services.common.telemetry import Metrics
from services.designs.fraud.records import DecisionOfRecord, PostgresDecisionRecords
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.devstack.servers import REPO_ROOT, start_kafka, start_postgres
from services.records.writers import DecisionWriter

PARTITIONS = 3
CHUNK = 5_000


def decision_event(i: int, at: datetime, topic: str = FRAUD_DECISIONS) -> OutboundMessage:
    card = f"card-{i * 7919 % 20_000:05d}"
    data: dict[str, Any] = {
        "transaction_id": f"bench-{i:08d}", "card_id": card, "user_id": f"cust-{i % 9_000}",
        "transaction_time": at.isoformat(), "amount": 42.17 + i % 500, "path": "http",
        "risk_score": 0.41, "risk_level": "medium", "action": "review",
        "reason_codes": ["R_VELOCITY_10M", "ML_SCORE", "ML_TX_AMOUNT"],
        "rule_hits": ["R_VELOCITY_10M"], "ml_score": 0.22, "model_version": 3,
        "policy_version": "2026-11-30", "degraded": [],
        "features": [round(0.1 * ((i + k) % 37), 4) for k in range(len(FRAUD_FEATURE_NAMES))],
        "reasons": [
            {"code": "R_VELOCITY_10M", "text": "5 payments on the card in the last 10 minutes",
             "contribution": 0.25, "source": "rule"},
            {"code": "ML_SCORE", "text": "fraud probability 0.22 (x 0.7)",
             "contribution": 0.154, "source": "model"},
            {"code": "ML_TX_AMOUNT", "text": "the amount is high for this card",
             "contribution": 0.0, "source": "model"}],
        "confidence": 0.62}
    event = Event(id=f"decision:bench-{i:08d}", type="fraud_decision", source="bench", time=at,
                  data=data)
    return OutboundMessage(topic, card, encode_event(event))


class TimedWriter:
    """The records service's write, timed: when each batch's transaction committed."""

    def __init__(self, records: PostgresDecisionRecords) -> None:
        self._records = records
        self.lags_s: list[float] = []
        self.first_at: float | None = None
        self.last_at = 0.0
        self.rows = 0

    def write(self, batch: Sequence[DecisionOfRecord]) -> int:
        new = self._records.write(batch)
        done = time.time()
        self.first_at = self.first_at or time.perf_counter()
        self.last_at = time.perf_counter()
        self.rows += len(batch)
        self.lags_s += [done - d.decided_at.timestamp() for d in batch]
        return new


def run_writer(settings: PlatformSettings, pool: ConnectionPool, group: str, max_batch: int,
               topic: str = FRAUD_DECISIONS) -> tuple[TimedWriter, threading.Thread, Any]:
    timed = TimedWriter(PostgresDecisionRecords(pool))
    runner = build_kafka_consumer(
        settings, None, DecisionWriter(timed.write), ConsumerMetrics(Metrics(f"b{group[-6:]}")),
        RunnerConfig(group=group, topics=(topic,), max_batch=max_batch),
        deduplicator=IdempotentWrites())
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    return timed, thread, runner


def truncate(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        conn.execute("TRUNCATE fraud_decisions")


def throughput(settings: PlatformSettings, pool: ConnectionPool, backlog: int,
               max_batch: int, run: int) -> dict[str, Any]:
    truncate(pool)
    timed, thread, runner = run_writer(settings, pool, f"bench-drain-{run}", max_batch)
    deadline = time.monotonic() + 600
    while timed.rows < backlog and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.stop()
    thread.join(30)
    assert timed.first_at is not None and timed.rows >= backlog, timed.rows
    seconds = timed.last_at - timed.first_at
    return {"max_batch": max_batch, "decisions": timed.rows,
            "decisions_per_s": round(timed.rows / seconds), "seconds": round(seconds, 2),
            "load": os.getloadavg()}


def steady(settings: PlatformSettings, pool: ConnectionPool, rate: int, seconds: float,
           start_index: int) -> dict[str, Any]:
    truncate(pool)
    topic = f"bench-decisions-{rate}"  # a topic of its own: only this rate's decisions on it
    ensure_topics(settings.kafka_bootstrap_servers, [TopicSpec(topic, PARTITIONS)])
    timed, thread, runner = run_writer(settings, pool, f"bench-steady-{rate}", 1_000, topic)
    publisher = kafka_publisher(settings, client_id="bench-steady", linger_ms=2)
    time.sleep(3)  # the group joins before the clock starts
    timed.lags_s.clear()
    tick, sent, index = 0.02, 0, start_index
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(rate * elapsed) - sent
            if due > 0:
                now = datetime.now(UTC)
                publish_or_raise(publisher, [decision_event(index + k, now, topic)
                                             for k in range(due)])
                index, sent = index + due, sent + due
            time.sleep(tick)
        deadline = time.monotonic() + 60
        while timed.rows < sent and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        publisher.close()
        runner.stop()
        thread.join(30)
    lags = sorted(timed.lags_s)
    return {"rate_per_s": rate, "seconds": seconds, "decisions": len(lags),
            "lag_ms": {"p50": round(1000 * lags[len(lags) // 2], 1),
                       "p99": round(1000 * lags[int(len(lags) * 0.99)], 1),
                       "max": round(1000 * lags[-1], 1)},
            "load": os.getloadavg()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--batches", default="250,1000", help="writer max batch sizes")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rates", default="1000,3000", help="steady decisions/s")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path,
                        default=REPO_ROOT / "benchmarks/results/records_writer.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="records-writer-bench-"))
    kafka, postgres = start_kafka(workdir, partitions=PARTITIONS), start_postgres(workdir)
    load_before = os.getloadavg()
    settings = PlatformSettings(kafka_bootstrap_servers=kafka.address, service_name="bench")
    pg_settings = PostgresSettings(postgres_port=int(postgres.extra["port"]))
    pool = records_pool(pg_settings, "bench")
    try:
        ensure_topics(kafka.address, platform_topics(PARTITIONS))
        publisher = kafka_publisher(settings, client_id="bench-backlog", linger_ms=20,
                                    delivery_timeout_s=30)
        at = datetime.now(UTC) - timedelta(minutes=5)
        try:
            for start in range(0, args.backlog, CHUNK):
                publish_or_raise(publisher, [decision_event(i, at) for i in
                                             range(start, min(start + CHUNK, args.backlog))])
        finally:
            publisher.close()
        drains = []
        for repeat in range(args.repeats):
            for size in (int(b) for b in args.batches.split(",")):
                drains.append(throughput(settings, pool, args.backlog, size, len(drains)))
                print(f"drain batch {size:>5} #{repeat}: {drains[-1]['decisions_per_s']:>7,} "
                      "decisions/s", flush=True)
        rates = []
        for rate in (int(r) for r in args.rates.split(",")):
            rates.append(steady(settings, pool, rate, args.seconds, 10_000_000 * (len(rates) + 1)))
            print(f"steady {rate:>5}/s: lag {rates[-1]['lag_ms']}", flush=True)
        with pool.connection() as conn:
            server = conn.execute("SHOW server_version").fetchone()
    finally:
        pool.close()
        kafka.stop()
        postgres.stop()
        shutil.rmtree(postgres.extra["data_root"], ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    by_batch: dict[str, list[int]] = {}
    for drain in drains:
        by_batch.setdefault(str(drain["max_batch"]), []).append(drain["decisions_per_s"])
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "how": " ".join(["python benchmarks/records_writer.py", *sys.argv[1:]]),
        "machine": describe_machine(), "load_before": load_before,
        "versions": {"postgresql": None if server is None else str(server[0]),
                     "psycopg": version("psycopg"), "psycopg-pool": version("psycopg-pool"),
                     "confluent-kafka": version("confluent-kafka"),
                     "librdkafka": confluent_kafka.libversion()[0]},
        "setup": {"backlog": args.backlog, "partitions": PARTITIONS, "writer_threads": 1,
                  "event_bytes": len(decision_event(0, datetime.now(UTC)).value),
                  "postgres": "one local server, defaults + shared_buffers=128MB, fsync on",
                  "repeats": args.repeats, "steady_seconds": args.seconds},
        "throughput_median": {size: statistics.median(values)
                              for size, values in by_batch.items()},
        "throughput_runs": drains, "steady": rates,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("throughput_median", "steady")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
