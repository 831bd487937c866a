"""Stream processor: event -> feature freshness at a steady rate, and the maximum sustained rate.

    .venv/bin/python benchmarks/stream_freshness.py [--rate 2000] [--seconds 30] [--backlog 60000]

Starts its own redis-server and Kafka broker (as the tests do) and a real `python -m
services.stream` process for the transaction and watch concerns; the item embeddings come from
the model repository (`make models` first). Events are the synthetic worlds' (`make models`
writes them), re-keyed with fresh ids and shifted to now.

Freshness: an open-loop publisher sends at a fixed rate; for every tenth event a listener waits
for Redis's keyspace notification of the consumer group's dedupe key, which the runner writes
right after the event's features are flushed, and records (seen - scheduled send time).
Measuring from the schedule, not from the actual send, keeps a slow publisher from hiding
latency (no coordinated omission).
Throughput: with the processor stopped, a backlog is published; then the processor starts and
the time to drain each concern's backlog gives its sustained events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import redis
from tqdm import tqdm

from services.common.bus.confluent_bus import ConfluentPublisher
from services.common.bus.envelope import decode_event, encode_event
from services.common.bus.kafka_bus import ensure_topics, group_lags
from services.common.bus.ports import OutboundMessage, publish_or_raise
from services.common.bus.topics import TRANSACTIONS, WATCH_EVENTS, platform_topics
from services.common.loopback import free_port
from services.common.probe import process_ready
from services.devstack.servers import REPO_ROOT, start_kafka, start_redis
from services.seeder.history import transaction_messages, watch_messages
from services.stream.concerns import CONCERNS

GROUPS = {c.topics[0]: c.group for c in CONCERNS if c.topics[0] in (TRANSACTIONS, WATCH_EVENTS)}
SAMPLE_EVERY = 10


def world_messages(world_dir: Path, run: str) -> Iterator[OutboundMessage]:
    """Transactions and watches alternately, forever, with fresh ids and times of now."""
    now = datetime.now(UTC)
    transactions = pd.read_parquet(world_dir / "transactions" / "transactions.parquet").tail(50_000)
    watches = pd.read_parquet(world_dir / "viewing" / "interactions.parquet").tail(50_000)
    tx = [m for m in transaction_messages(transactions.assign(is_fraud=0), timedelta(0), now)]
    wa = list(watch_messages(watches, timedelta(0)))
    i = 0
    while True:
        for pair in zip(tx, wa, strict=False):
            for message in pair:
                event = decode_event(message.value)
                fresh = event.model_copy(update={"id": f"bench-{run}-{i}",
                                                 "time": datetime.now(UTC)})
                i += 1
                yield OutboundMessage(message.topic, message.key, encode_event(fresh))


@dataclass
class Freshness:
    samples_ms: list[float] = field(default_factory=list)
    pending: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> (topic, due)
    lock: threading.Lock = field(default_factory=threading.Lock)
    give_up_at: float = float("inf")  # after publishing stops, wait this long for stragglers


def dedupe_key(topic: str, event_id: str) -> str:
    return f"fs:dedupe:{GROUPS[topic]}:{{{event_id}}}"


def checker(client: redis.Redis, state: Freshness, stop: threading.Event) -> None:
    """Timestamps each sampled event when Redis announces its dedupe key (keyspace events):
    push, not polling, so the measurement costs the machine almost nothing."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("__keyspace@0__:fs:dedupe:*")
    prefix = len("__keyspace@0__:")
    while not (stop.is_set() and (not state.pending or time.perf_counter() > state.give_up_at)):
        message = pubsub.get_message(timeout=0.05)
        if message is None:
            continue
        seen_at = time.perf_counter()
        key = message["channel"].decode()[prefix:]
        with state.lock:
            entry = state.pending.pop(key, None)
        if entry is not None:
            state.samples_ms.append((seen_at - entry[1]) * 1000)
    pubsub.close()


def steady_rate(publisher: ConfluentPublisher, client: redis.Redis,
                messages: Iterator[OutboundMessage], rate: float, seconds: float) -> Freshness:
    state = Freshness()
    stop = threading.Event()
    thread = threading.Thread(target=checker, args=(client, state, stop), daemon=True)
    thread.start()
    tick_s = 0.01
    per_tick = rate * tick_s
    start = time.perf_counter()
    sent = 0
    with tqdm(total=int(rate * seconds), desc=f"publish at {rate:.0f}/s", unit="ev") as bar:
        while (elapsed := time.perf_counter() - start) < seconds:
            due_count = int(elapsed / tick_s) * per_tick + per_tick
            batch = []
            while sent < due_count:
                message = next(messages)
                due = start + (sent / rate)
                if sent % SAMPLE_EVERY == 0:
                    event_id = decode_event(message.value).id
                    with state.lock:
                        state.pending[dedupe_key(message.topic, event_id)] = (message.topic, due)
                batch.append(message)
                sent += 1
            publish_or_raise(publisher, batch)
            bar.update(len(batch))
            time.sleep(max(0.0, start + (int(elapsed / tick_s) + 1) * tick_s
                           - time.perf_counter()))
    state.give_up_at = time.perf_counter() + 30
    stop.set()
    thread.join(35)
    return state


def start_stream(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "services.stream"], cwd=REPO_ROOT,
                               env={**os.environ, **env}, stdout=log.open("ab"),
                               stderr=subprocess.STDOUT)
    if not process_ready(f"http://127.0.0.1:{port}/readyz", process, 60, interval_s=0.5):
        raise RuntimeError(f"stream did not start: see {log}")
    return process


def drain(bootstrap: str, backlog: dict[str, int], env: dict[str, str], port: int,
          log: Path) -> dict[str, float]:
    process = start_stream(env, port, log)
    started = time.perf_counter()
    rates: dict[str, float] = {}
    with tqdm(total=sum(backlog.values()), desc="draining backlog", unit="ev") as bar:
        while len(rates) < len(backlog):
            time.sleep(0.5)
            left = 0
            lags = group_lags(bootstrap, {GROUPS[topic]: [topic] for topic in backlog})
            for topic, total in backlog.items():
                lag = lags[GROUPS[topic]]
                left += lag
                if lag == 0 and topic not in rates:
                    rates[topic] = total / (time.perf_counter() - started)
            bar.n = sum(backlog.values()) - left
            bar.refresh()
    process.terminate()
    process.wait(60)
    return rates


def report(args: argparse.Namespace, fresh: Freshness, rates: dict[str, float]) -> None:
    samples = np.asarray(fresh.samples_ms)
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "rate": args.rate,
        "seconds": args.seconds, "samples": len(samples), "unseen": len(fresh.pending),
        "freshness_ms": {f"p{q}": float(np.percentile(samples, q)) for q in (50, 90, 99, 99.9)},
        "max_events_per_s": rates, "cpus": os.cpu_count(), "load": os.getloadavg(),
    }
    out = REPO_ROOT / "reports/stream" / f"{str(summary['date']).replace(':', '')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary | {"samples_ms": samples.tolist()}, indent=1))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ordered = np.sort(samples)
    ax.plot(ordered, np.linspace(0, 1, len(ordered)))
    ax.axvline(1000, color="red", linestyle="--", label="aim: p99 < 1 s")
    ax.set_xscale("log")
    ax.set_xlabel("event -> feature written (ms), from the scheduled send time")
    ax.set_ylabel("share of events")
    ax.set_title(f"Freshness at a steady {args.rate:.0f} events/s ({len(samples)} samples)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(json.dumps(summary, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--backlog", type=int, default=60_000, help="events per concern")
    parser.add_argument("--world-dir", type=Path, default=REPO_ROOT / ".state/worlds")
    parser.add_argument("--model-repository", type=Path, default=REPO_ROOT / ".state/models")
    parser.add_argument("--plot", type=Path, default=REPO_ROOT / "docs/img/streaming-freshness.png")
    args = parser.parse_args()
    matplotlib.use("Agg")
    workdir = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    redis_server, kafka = start_redis(workdir), start_kafka(workdir)
    try:
        ensure_topics(kafka.address, platform_topics(3))
        port = free_port()
        env = {"MLSD_REDIS_URL": redis_server.address,
               "MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka.address, "MLSD_STREAM_PORT": str(port),
               "MLSD_STREAM_CONCERNS": "transaction-features,watch-features",
               "MLSD_MODEL_REPOSITORY": str(args.model_repository), "MLSD_LOG_LEVEL": "WARNING"}
        client = redis.Redis.from_url(redis_server.address)
        client.config_set("notify-keyspace-events", "K$")  # announce SETs of string keys
        publisher = ConfluentPublisher(kafka.address, client_id="bench", delivery_timeout_s=30)
        messages = world_messages(args.world_dir, datetime.now(UTC).strftime("%H%M%S"))
        log = workdir / "stream.log"

        process = start_stream(env, port, log)
        steady_rate(publisher, client, messages, rate=200, seconds=3)  # warm up
        fresh = steady_rate(publisher, client, messages, args.rate, args.seconds)
        process.terminate()
        process.wait(60)

        backlog = {TRANSACTIONS: 0, WATCH_EVENTS: 0}
        with tqdm(total=2 * args.backlog, desc="publish backlog", unit="ev") as bar:
            while min(backlog.values()) < args.backlog:
                batch = [next(messages) for _ in range(5000)]
                publish_or_raise(publisher, batch)
                for message in batch:
                    backlog[message.topic] += 1
                bar.update(len(batch))
        rates = drain(kafka.address, backlog, env, port, log)
        publisher.close()
    finally:
        kafka.stop()
        redis_server.stop()

    report(args, fresh, rates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
