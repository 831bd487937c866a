"""Online fraud features on real Redis: one transaction's read + vector, and the writer's rate.

    .venv/bin/python benchmarks/fraud_features_online.py [--redis-url redis://127.0.0.1:6379/0]

Fills Redis the way production does: the seeder's events for the default-size transaction world
(5,000 customers, 10,000 terminals, 58 days, every fraud label) through
TransactionFeaturesHandler and FraudLabelHandler in event-time order, flushing every 500 events;
that replay is the writer's throughput. Then it
scores --samples transactions drawn from the world's last week: one pipelined record-and-read
of the state (RedisFraudState.record_and_read, as the scorer does) and the batch feature
function, each timed. Without --redis-url it starts its own redis-server the way the tests
do. Raw samples go to reports/fraud-features-online/<UTC time>.json, a summary for
docs/fraud-features-online.md to the log.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis
from redis.utils import HIREDIS_AVAILABLE
from tqdm import tqdm

from services.common.bus.envelope import Event, decode_event
from services.designs.fraud.features import batch_features
from services.designs.fraud.redis_state import RedisFraudState
from services.designs.payloads import TransactionData
from services.devstack.servers import redis_url
from services.seeder.history import transaction_messages
from services.stream.fraud_labels import FraudLabelHandler
from services.stream.transactions import TransactionFeaturesHandler
from services.trainer.worlds.transactions import TransactionWorldConfig, generate_transactions

logger = logging.getLogger("fraud_features_online")
REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"  # never collides with the stack's "fs" keys when pointed at a shared Redis
FLUSH_EVERY = 500     # the consumer runner's default max_batch
PERCENTILES = (50, 90, 99, 99.9)




@dataclass
class WriteTimes:
    events: int = 0
    handle_s: float = 0.0  # parse and validate each event, buffer it
    flush_s: float = 0.0   # plan the commands, one pipeline round trip

    @property
    def per_second(self) -> float:
        return self.events / (self.handle_s + self.flush_s)


@dataclass
class Fill:
    transactions: WriteTimes = field(default_factory=WriteTimes)
    labels: WriteTimes = field(default_factory=WriteTimes)
    server_s: float = 0.0  # Redis's own time executing the fill's commands (commandstats)


def _apply(handler: TransactionFeaturesHandler | FraudLabelHandler, events: Sequence[Event],
           times: WriteTimes) -> None:
    start = time.perf_counter()
    for event in events:
        handler.handle(event)
    flushing = time.perf_counter()
    handler.flush()
    times.handle_s += flushing - start
    times.flush_s += time.perf_counter() - flushing
    times.events += len(events)


def world_events(transactions: pd.DataFrame) -> tuple[list[Event], list[Event]]:
    """The seeder's events for the world, unshifted, every label arrived: (transactions, labels)."""
    every_label = datetime(2100, 1, 1, tzinfo=UTC)
    events = [decode_event(m.value)
              for m in transaction_messages(transactions, timedelta(0), now=every_label)]
    return ([e for e in events if e.type == "transaction"],
            [e for e in events if e.type == "fraud_label"])


def fill(client: redis.Redis, tx_events: Sequence[Event], label_events: Sequence[Event]) -> Fill:
    """Both topics through their handlers in batches of FLUSH_EVERY, batches in event-time order
    (as two consumer groups keeping up with their topics would apply them)."""
    tx_handler = TransactionFeaturesHandler(client, NAMESPACE)
    label_handler = FraudLabelHandler(client, NAMESPACE)
    result = Fill()
    batches = [(events[i].time, handler, events[i:i + FLUSH_EVERY], times)
               for events, handler, times in ((tx_events, tx_handler, result.transactions),
                                              (label_events, label_handler, result.labels))
               for i in range(0, len(events), FLUSH_EVERY)]
    batches.sort(key=lambda batch: batch[0])
    for _, handler, batch, times in tqdm(batches, desc="replaying", unit="batch"):
        _apply(handler, batch, times)
    return result


@dataclass
class Reads:
    total_us: list[float] = field(default_factory=list)
    read_us: list[float] = field(default_factory=list)      # pipeline + decode into StateBatch
    features_us: list[float] = field(default_factory=list)  # the pure function
    members: list[int] = field(default_factory=list)        # customer + card records fetched


def score(client: redis.Redis, sample: Sequence[TransactionData], warmup: int) -> Reads:
    store = RedisFraudState(client, NAMESPACE)
    for txn in sample[:warmup]:
        batch_features([txn], store.record_and_read([txn])[1])
    # As a service should after start-up: full collections then skip the start-up heap.
    gc.collect()
    gc.freeze()
    reads = Reads()
    for txn in tqdm(sample[warmup:], desc="scoring", unit="tx"):
        t0 = time.perf_counter_ns()
        _, state = store.record_and_read([txn])
        t1 = time.perf_counter_ns()
        batch_features([txn], state)
        t2 = time.perf_counter_ns()
        reads.total_us.append((t2 - t0) / 1000)
        reads.read_us.append((t1 - t0) / 1000)
        reads.features_us.append((t2 - t1) / 1000)
        reads.members.append(len(state.customer) + len(state.card))
    return reads


def summary(samples_us: Sequence[float]) -> dict[str, float]:
    values = np.percentile(np.asarray(samples_us), PERCENTILES)
    stats = {f"p{p:g}_ms": round(float(v) / 1000, 3)
             for p, v in zip(PERCENTILES, values, strict=True)}
    stats["mean_ms"] = round(float(np.mean(samples_us)) / 1000, 3)
    stats["max_ms"] = round(float(np.max(samples_us)) / 1000, 3)
    return stats


def run(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    world = generate_transactions(TransactionWorldConfig(seed=args.seed))
    tx = world.transactions
    logger.info("world: %d transactions over %d days, generated in %.1f s", len(tx),
                world.config.n_days, time.perf_counter() - started)
    tx_events, label_events = world_events(tx)
    last_week = [e for e in tx_events if e.time >= tx_events[-1].time - timedelta(days=7)]
    rng = np.random.default_rng(args.seed)
    picked = rng.choice(len(last_week), size=min(args.samples + args.warmup, len(last_week)),
                        replace=False)
    sample = [TransactionData.model_validate(last_week[i].data) for i in picked]
    with redis_url(args.redis_url) as url:
        client = redis.Redis.from_url(url, socket_timeout=5.0)
        client.config_resetstat()
        filled = fill(client, tx_events, label_events)
        filled.server_s = sum(s["usec"] for s in client.info("commandstats").values()) / 1e6
        memory = client.info("memory")["used_memory"]
        keys = sum(1 for _ in client.scan_iter(match=f"{NAMESPACE}:*", count=5000))
        reads = score(client, sample, args.warmup)
        meta = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "redis": f"Redis {client.info('server')['redis_version']}",
            "redis_py": redis.__version__,
            "parser": "hiredis" if HIREDIS_AVAILABLE else "pure Python",
            "protocol": str(client.get_connection_kwargs().get("protocol") or "default (RESP3)"),
            "python": platform.python_version(),
            "machine": platform.platform(),
            "cpus": str(os.cpu_count()),
            "load_avg_1m": f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
            "how": "time.perf_counter_ns around RedisFraudState.record_and_read([txn]) and "
                   "batch_features([txn], state) in one client thread (a batch of one, as the "
                   "HTTP path); warm-up excluded; gc.freeze() after warm-up",
        }
        client.delete(*client.scan_iter(match=f"{NAMESPACE}:*", count=5000))
        client.close()
    report(meta, filled, reads, {"transactions": len(tx), "keys": keys, "used_memory": memory,
                                 "days": world.config.n_days}, args)


def report(meta: dict[str, str], filled: Fill, reads: Reads, store: dict[str, int],
           args: argparse.Namespace) -> None:
    stats = {"total": summary(reads.total_us), "read": summary(reads.read_us),
             "features": summary(reads.features_us)}
    logger.info("%s", json.dumps(meta, indent=1))
    logger.info("| step | samples | p50 ms | p90 ms | p99 ms | p99.9 ms | mean ms | max ms |")
    logger.info("|---|---|---|---|---|---|---|---|")
    for step, s in stats.items():
        logger.info("| %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |", step,
                    len(reads.total_us), s["p50_ms"], s["p90_ms"], s["p99_ms"], s["p99.9_ms"],
                    s["mean_ms"], s["max_ms"])
    members = np.asarray(reads.members)
    logger.info("customer + card members per read: median %d, p99 %d, max %d",
                np.median(members), np.percentile(members, 99), members.max())
    writes: dict[str, Any] = {}
    for name, times in (("transactions", filled.transactions), ("labels", filled.labels)):
        writes[name] = {"events": times.events, "handle_s": round(times.handle_s, 2),
                        "flush_s": round(times.flush_s, 2),
                        "per_second": round(times.per_second)}
        logger.info("%s: %d events, %.0f/s (handle %.1f s, flush %.1f s, batches of %d)", name,
                    times.events, times.per_second, times.handle_s, times.flush_s, FLUSH_EVERY)
    logger.info("Redis executed the fill's commands in %.1f s of its own time", filled.server_s)
    writes["redis_server_s"] = round(filled.server_s, 2)
    logger.info("store: %d keys, %.0f MB used_memory after %d transactions over %d days",
                store["keys"], store["used_memory"] / 1e6, store["transactions"], store["days"])
    args.reports.mkdir(parents=True, exist_ok=True)
    raw = args.reports / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    raw.write_text(json.dumps({"meta": meta, "reads": stats, "writes": writes, "store": store,
                               "samples_us": {"total": reads.total_us, "read": reads.read_us,
                                              "features": reads.features_us},
                               "members": reads.members}, indent=1))
    logger.info("raw samples: %s", raw)
    members = np.asarray(reads.members)
    result = {"meta": meta, "reads": stats, "writes": writes, "store": store,
              "samples": len(reads.total_us),
              "records_per_read": {"median": float(np.median(members)),
                                   "p99": float(np.percentile(members, 99)),
                                   "max": int(members.max())}}
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=1) + "\n")
    logger.info("summary: %s", args.result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument("--samples", type=int, default=5000, help="transactions scored")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reports", type=Path, default=REPO_ROOT / "reports/fraud-features-online")
    parser.add_argument("--result", type=Path,
                        default=REPO_ROOT / "benchmarks/results/fraud_features_online.json",
                        help="the summary the docs cite (committed)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
