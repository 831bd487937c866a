"""Lake sink throughput and lag on a real broker: events published, time until all are in Parquet.

    .venv/bin/python benchmarks/lake_sink.py [--backlog 200000] [--rate 2000] [--seconds 30]

Starts its own Kafka broker (as the tests do) and runs the sink's own loop (services/lake: the
same validation, buffering, fsync + rename and commit as `python -m services.lake`) in this
process, on a lake in a temporary directory. Two measures, one run:

- backlog: `--backlog` events (watches and transactions, 3:1, ~300 bytes) already on the topics;
  the clock runs from the sink's start until every event is in a durable Parquet file and its
  offset committed: rows per second of one sink process.
- steady: `--rate` events/s published for `--seconds` while the sink runs with its flush
  interval at `--flush-interval-s`; each row's lag is the time from its publication (its event
  time, stamped just before publishing) to the end of the flush that made it durable.

Writes benchmarks/results/lake_sink.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from services.common.bus import topics
from services.common.bus.clients import kafka_publisher, kafka_record_source
from services.common.bus.envelope import Event
from services.common.bus.kafka_bus import ensure_topics, group_lags, start_group_at_end
from services.common.bus.ports import OutboundMessage, Record, publish_or_raise
from services.common.bus.topics import TopicSpec, dlq_topic
from services.common.lake.files import live_files
from services.common.machine import describe as describe_machine
from services.common.telemetry import Metrics
from services.devstack.servers import REPO_ROOT, start_kafka
from services.lake.events import LAKE_TOPICS
from services.lake.loop import LakeMetrics, LoopConfig, SinkLoop
from services.lake.settings import LakeSettings
from services.lake.sink import FlushResult, LakeSink

PARTITIONS = 3
CHUNK = 5_000


class TimedSink(LakeSink):
    """The sink, noting when each flush finished and the event times of the rows it made
    durable (read back from the files: the measure is what a reader could see)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lags_ms: list[int] = []
        self.files = 0
        self.first_record: float | None = None  # perf_counter at the first record taken

    def add(self, record: Record, event: Event) -> bool:
        if self.first_record is None:
            self.first_record = time.perf_counter()
        return super().add(record, event)

    def flush(self) -> FlushResult:
        result = super().flush()
        done_ms = time.time() * 1000
        for written in result.files:
            times = pq.read_table(written.path, columns=["time_ms"])["time_ms"].to_pylist()
            self.lags_ms += [int(done_ms - t) for t in times]
        self.files += len(result.files)
        return result


def event_message(i: int, at: datetime) -> OutboundMessage:
    if i % 4 == 3:
        card = f"card-{i % 5_000:05d}"
        data: dict[str, Any] = {
            "transaction_id": f"tx-{i:08d}", "user_id": f"cust-{i % 9_000:05d}", "card_id": card,
            "amount": 10.0 + i % 500, "currency": "EUR", "transaction_type": "purchase",
            "merchant_id": f"m-{i % 2_000:04d}", "merchant_category": "grocery",
            "terminal_id": f"k-{i % 3_000:04d}", "latitude": 45.76, "longitude": 4.83,
            "timestamp": at.isoformat(), "ip_address": "10.1.2.3", "device_id": f"d-{i % 7_000}"}
        return OutboundMessage.of(topics.TRANSACTIONS, card, Event(
            id=f"bench-{i}", type="transaction", source="bench", time=at, data=data))
    user = f"user-{i % 20_000:05d}"
    return OutboundMessage.of(topics.WATCH_EVENTS, user, Event(
        id=f"bench-{i}", type="watch", source="bench", time=at,
        data={"user_id": user, "content_id": f"title-{i % 3_000:04d}",
              "watch_seconds": i % 7_200, "completed": i % 3 == 0}))


def sink_loop(settings: LakeSettings, group: str, sink: LakeSink) -> SinkLoop:
    return SinkLoop(
        source=kafka_record_source(settings, group, LAKE_TOPICS, client_id=f"bench-{group}"),
        sink=sink, dlq=kafka_publisher(settings, client_id=f"bench-{group}-dlq"),
        metrics=LakeMetrics(Metrics(f"bench_{group.replace('-', '_')}"), group, LAKE_TOPICS),
        config=LoopConfig(group=group, max_batch=settings.lake_max_batch))


def lake_rows(root: Path) -> int:
    return sum(pq.read_metadata(f).num_rows for t in LAKE_TOPICS for f in live_files(root, t))


def caught_up(bootstrap: str, group: str) -> bool:
    try:
        return group_lags(bootstrap, {group: LAKE_TOPICS})[group] == 0
    except Exception:  # the group's coordinator is not known yet on a fresh broker
        return False


def backlog(settings: LakeSettings, n: int, workdir: Path) -> dict[str, Any]:
    publisher = kafka_publisher(settings, "bench-producer", delivery_timeout_s=30.0)
    now = datetime.now(UTC)
    messages = [event_message(i, now) for i in range(n)]
    for start in range(0, n, CHUNK):
        publish_or_raise(publisher, messages[start:start + CHUNK])
    publisher.close()
    root = workdir / "lake-backlog"
    sink = TimedSink(root, settings.lake_flush_rows, 1.0)
    loop = sink_loop(LakeSettings(**{**settings.model_dump(), "lake_root": root}), "backlog",
                     sink)
    cpu = time.process_time()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    while not caught_up(settings.kafka_bootstrap_servers, "backlog"):
        time.sleep(0.05)
    # from the first record polled (the group join left out) to the last offset committed
    assert sink.first_record is not None
    wall, cpu = time.perf_counter() - sink.first_record, time.process_time() - cpu
    loop.stop()
    thread.join(30)
    rows = lake_rows(root)
    if rows != n:
        raise RuntimeError(f"{rows} rows in the lake, {n} published")
    return {"events": n, "wall_s": round(wall, 2), "rows_per_s": round(n / wall),
            "cpu_s_per_10k": round(cpu / n * 10_000, 3), "files": sink.files,
            "flush_rows": settings.lake_flush_rows,
            "clock": "first record polled to last offset committed (group join left out); "
                     "CPU is this process's, broker excluded"}


def steady(settings: LakeSettings, rate: int, seconds: int, flush_interval_s: float,
           workdir: Path) -> dict[str, Any]:
    root = workdir / f"lake-steady-{flush_interval_s}"
    group = f"steady-{flush_interval_s}"
    start_group_at_end(settings.kafka_bootstrap_servers, group, LAKE_TOPICS)
    sink = TimedSink(root, settings.lake_flush_rows, flush_interval_s)
    loop = sink_loop(LakeSettings(**{**settings.model_dump(), "lake_root": root}),
                     group, sink)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    publisher = kafka_publisher(settings, "bench-steady", delivery_timeout_s=30.0)
    sent, tick = 0, 0.1
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        due = int((time.monotonic() - started) * rate)
        if due > sent:
            now = datetime.now(UTC)
            publish_or_raise(publisher, [event_message(10_000_000 + i, now)
                                         for i in range(sent, due)])
            sent = due
        time.sleep(tick)
    publisher.close()
    deadline = time.monotonic() + 120
    while len(sink.lags_ms) < sent and time.monotonic() < deadline:
        time.sleep(0.2)
    loop.stop()
    thread.join(30)
    lags = sorted(sink.lags_ms)
    return {"rate_per_s": rate, "seconds": seconds, "events": sent,
            "flush_interval_s": flush_interval_s, "rows_durable": len(lags),
            "files": sink.files,
            "lag_ms": {"p50": _pct(lags, 50), "p99": _pct(lags, 99), "max": lags[-1],
                       "mean": round(statistics.fmean(lags))}}


def _pct(values: list[int], q: int) -> int:
    return values[min(len(values) - 1, len(values) * q // 100)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=2_000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--flush-interval-s", type=float, nargs="+", default=[2.0, 10.0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/lake_sink.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lake-bench-"))
    kafka = start_kafka(workdir, partitions=PARTITIONS)
    load_before = os.getloadavg()
    try:
        ensure_topics(kafka.address, [*(TopicSpec(t, PARTITIONS) for t in LAKE_TOPICS),
                                      *(TopicSpec(dlq_topic(t), 1) for t in LAKE_TOPICS)])
        settings = LakeSettings(kafka_bootstrap_servers=kafka.address, service_name="bench")
        backlog_result = backlog(settings, args.backlog, workdir)
        print(f"backlog: {backlog_result}", flush=True)
        steady_results = []
        for interval in args.flush_interval_s:
            result = steady(settings, args.rate, args.seconds, interval, workdir)
            print(f"steady: {result}", flush=True)
            steady_results.append(result)
    finally:
        kafka.stop()
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "how": " ".join(["python benchmarks/lake_sink.py", *sys.argv[1:]]),
        "machine": describe_machine(), "load_before": load_before, "load_after": os.getloadavg(),
        "versions": {name: version(name) for name in ("pyarrow", "confluent-kafka", "duckdb")},
        "setup": {"partitions": PARTITIONS, "topics": "watch-events, transactions (3:1)",
                  "max_batch": settings.lake_max_batch, "compression": "zstd",
                  "fsync": "file and directory, per file"},
        "backlog": backlog_result, "steady": steady_results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
