"""The stream scorer's cost per event outside scoring: poll, decode, dedupe, encode, publish.

    PYTHONPATH=. .venv/bin/python benchmarks/stream_io.py [--events 20000] [--repeats 3]
        [--before REF]      # also measure the code at git REF, side by side (default: none)

Starts its own redis-server and Kafka broker (as the tests do). The records are the seeder's
`transactions` events for the world's last day (`make models` writes .state/worlds), with fresh
ids and timestamps of now. Each stage is timed over all N events, in batches of 500 (the stream
scorer's max batch), and reported as µs per event:

- poll: the confluent consumer reading the records back (librdkafka Message -> Record);
- decode: the envelope (`decode_event`); validate: the payload (`parse_payload`, TransactionData);
- dedupe: RedisDeduplicator's `seen` then `mark` per batch, on the real Redis;
- runner: `ConsumerRunner.run_once` over the polled batches with a handler whose "scoring" is
  only `parse_payload` and a buffer, Redis dedupe, metrics: decode + validate + dedupe + the
  runner's own bookkeeping (retry wrapper, per-event metrics, offsets);
- encode: `decision_message` on realistic decisions (the policy file's rules and reasons, the
  model's score and top factors, the 32 features);
- publish: the decisions through ConfluentPublisher (acks=all, idempotent), 500 at a time, each
  call returning once all are acknowledged (wall time); publish_cpu: this process's CPU time
  meanwhile (every thread: librdkafka's and the delivery-report poller's too).

With --before, the code at REF is extracted (git archive) and the same stages run against it in
a subprocess, alternating with the working tree's, `--repeats` times each, so machine noise hits
both alike; the medians go to benchmarks/results/stream_io.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from services.common.bus.confluent_bus import ConfluentPublisher, ConfluentRecordSource
from services.common.bus.consumer import ConsumerMetrics, ConsumerRunner, RunnerConfig
from services.common.bus.dedupe import RedisDeduplicator
from services.common.bus.envelope import Event, decode_event, encode_event
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.bus.ports import OutboundMessage, publish_or_raise
from services.common.bus.topics import FRAUD_DECISIONS, TRANSACTIONS, TopicSpec
from services.common.telemetry import Metrics
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.designs.parsing import parse_payload
from services.designs.payloads import TransactionData
from services.devstack.servers import start_kafka, start_redis
from services.fraud.decide import decide
from services.fraud.decision_events import decision_message
from services.fraud.explain import Factor, ModelVerdict
from services.fraud.policy_file import load_engine
from services.fraud.rules import RuleHit
from services.fraud.scorer import Scored
from services.seeder.history import recent, transaction_messages

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
BATCH = 500
STAGES = ("poll", "decode", "validate", "dedupe", "runner", "encode", "publish", "publish_cpu")


# --- the worker: runs every stage against whichever `services` is on its path -----------------

def _timed(fn: Callable[[], object], events: int) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / events * 1e6


def _batches(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i:i + BATCH] for i in range(0, len(items), BATCH)]


def _decisions(transactions: Sequence[Any]) -> list[Any]:
    """Realistic Scored values: the policy's rules as hits, the model's score and top factors,
    the 32 features; four in five approved with no rule hit, as the world's mix has it."""

    engine = load_engine(REPO / "config/fraud/policy.toml")
    policy = engine.policy
    rules = [r for r in policy.rules if r.enabled]
    rng = np.random.default_rng(0)
    names = list(FRAUD_FEATURE_NAMES)
    scored = []
    for i, txn in enumerate(transactions):
        features = rng.random(len(names), dtype=np.float32)
        hits = [] if i % 5 else [
            RuleHit(rule.id, f"{rule.id.lower()}: {features[k]:.2f} over its limit", rule.score,
                    rule.action) for k, rule in enumerate(rules[i % 7:i % 7 + 1 + i % 3])]
        factors = tuple(Factor(names[j], float(features[j]), float(features[j] / 2),
                               float(rng.random() / 10)) for j in rng.permutation(len(names))[:3])
        model = ModelVerdict(float(rng.random() ** 3), 3, factors)
        decision = decide(policy, listed=None, hits=hits, model=model, degraded=[],
                          amount=txn.amount)
        scored.append(Scored(txn, decision, features, False))
    return scored


class _ListSource:
    """A RecordSource over records already polled: the runner's cost without the broker's."""

    def __init__(self, records: Sequence[Any]) -> None:
        self._batches = _batches(records)

    def poll(self, timeout_s: float, max_records: int) -> list[Any]:
        return list(self._batches.pop(0)) if self._batches else []

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        pass

    def lag(self) -> dict[tuple[str, int], int]:
        return {}

    def on_revoke(self, handler: Callable[..., None]) -> None:
        pass

    def close(self) -> None:
        pass


class _Buffering:
    """A handler whose scoring is a stand-in: validate the payload, buffer it, drop it on flush."""

    def __init__(self) -> None:
        self.pending: list[Any] = []
        self.handled = 0

    def handle(self, event: Any) -> None:
        self.pending.append(parse_payload(event, "transaction", TransactionData))

    def flush(self) -> None:
        self.handled += len(self.pending)
        self.pending.clear()


def _poll(bootstrap: str, topic: str, events: int) -> tuple[list[Any], float]:
    source = ConfluentRecordSource(bootstrap, f"bench-{uuid.uuid4().hex}", [topic], "bench")
    try:
        records = source.poll(30.0, BATCH)  # the group join, untimed
        start = time.perf_counter()
        while len(records) < events:
            records += source.poll(5.0, BATCH)
        spent = time.perf_counter() - start
    finally:
        source.close()
    return records[:events], spent / max(events - BATCH, 1) * 1e6


def run_worker(redis_url: str, bootstrap: str, topic: str, events: int) -> dict[str, float]:
    """Every stage once over `events` records; µs per event by stage."""

    cost: dict[str, float] = {}
    records, cost["poll"] = _poll(bootstrap, topic, events)
    decoded = [decode_event(r.value) for r in records]
    cost["decode"] = _timed(lambda: [decode_event(r.value) for r in records], events)
    cost["validate"] = _timed(
        lambda: [parse_payload(e, "transaction", TransactionData) for e in decoded], events)
    client = redis.Redis.from_url(redis_url)
    ids = [e.id for e in decoded]
    dedupe = RedisDeduplicator(client, f"bench-{uuid.uuid4().hex}")

    def check_and_mark() -> None:
        for batch in _batches(ids):
            dedupe.seen(batch)
            dedupe.mark(batch)

    cost["dedupe"] = _timed(check_and_mark, events)
    handler = _Buffering()
    group = f"bench-{uuid.uuid4().hex}"
    runner = ConsumerRunner(
        _ListSource(records), handler, RedisDeduplicator(client, group),
        InMemoryPublisher(InMemoryBroker()), RunnerConfig(group=group, topics=(TRANSACTIONS,)),
        ConsumerMetrics(Metrics(f"bench_{uuid.uuid4().hex[:8]}")))

    def run() -> None:
        for _ in _batches(records):
            runner.run_once()

    cost["runner"] = _timed(run, events)
    if handler.handled != events:
        raise RuntimeError(f"the runner handled {handler.handled} of {events} events")
    scored = _decisions([parse_payload(e, "transaction", TransactionData) for e in decoded])
    messages: list[Any] = []
    cost["encode"] = _timed(lambda: messages.extend(
        decision_message(s, "stream", FRAUD_DECISIONS) for s in scored), events)
    publisher = ConfluentPublisher(bootstrap, "bench-decisions", warm_topics=[FRAUD_DECISIONS])
    try:
        publish_or_raise(publisher, messages[:BATCH])  # connection and producer id, untimed
        cpu = time.process_time()
        cost["publish"] = _timed(
            lambda: [publish_or_raise(publisher, b) for b in _batches(messages)], events)
        cost["publish_cpu"] = (time.process_time() - cpu) / events * 1e6
    finally:
        publisher.close()
    client.close()
    return cost


# --- the driver: servers, records, both sides alternating -------------------------------------

def _records(world_dir: Path, events: int) -> list[tuple[str, bytes]]:
    """The seeder's transaction events for the world's last day, cycled to `events`, each with a
    fresh id and a timestamp of now (key, value)."""

    frame = pd.read_parquet(world_dir / "transactions" / "transactions.parquet")
    rows = recent(frame, "tx_datetime", 1).assign(is_fraud=0)
    now = datetime.now(UTC)
    templates = [decode_event(m.value).data
                 for m in transaction_messages(rows, timedelta(0), now)]
    run = uuid.uuid4().hex[:8]
    pairs = []
    for i in range(events):
        data = {**templates[i % len(templates)], "transaction_id": f"{run}-{i}",
                "timestamp": now.isoformat()}
        event = Event(id=f"bench-{run}-{i}", type="transaction", source="bench", time=now,
                      data=data)
        pairs.append((data["card_id"], encode_event(event)))
    return pairs


def _side(tree: Path, args: argparse.Namespace, redis_url: str, bootstrap: str,
          topic: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(HERE), "--worker", redis_url, bootstrap, topic, str(args.events)],
        env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, check=True,
        capture_output=True, text=True)
    cost: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", help="a git ref to measure beside the working tree")
    parser.add_argument("--world-dir", type=Path, default=REPO / ".state/worlds")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/stream_io.json")
    parser.add_argument("--worker", nargs=4, metavar=("REDIS", "KAFKA", "TOPIC", "EVENTS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        redis_url, bootstrap, topic, events = args.worker
        print(json.dumps(run_worker(redis_url, bootstrap, topic, int(events))))
        return

    # imported here: the worker above runs this file against an older commit's modules
    from services.devstack.worktrees import checkout_commit, exported  # noqa: PLC0415

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="stream-io-") as tmp:
        workdir = Path(tmp)
        trees = {"after": REPO}
        commits = {"after": checkout_commit()}
        if args.before:
            commits["before"] = exported(args.before, workdir / "before", ("services", "config"))
            trees = {"before": workdir / "before", **trees}
        servers = [start_redis(workdir), start_kafka(workdir)]
        try:
            redis_url, bootstrap = servers[0].address, servers[1].address
            topic = "bench-transactions"
            ensure_topics(bootstrap, [TopicSpec(topic, 3), TopicSpec(FRAUD_DECISIONS, 3)])
            publisher = ConfluentPublisher(bootstrap, "bench-seed")
            records = _records(args.world_dir, args.events)
            try:
                for i in range(0, args.events, 5_000):
                    publish_or_raise(publisher, [OutboundMessage(topic, key, value)
                                                 for key, value in records[i:i + 5_000]])
            finally:
                publisher.close()
            runs: dict[str, list[dict[str, float]]] = {side: [] for side in trees}
            for repeat in range(args.repeats):
                for side, tree in trees.items():
                    runs[side].append(_side(tree, args, redis_url, bootstrap, topic))
                    print(f"repeat {repeat + 1} {side}: " + ", ".join(
                        f"{k} {v:.1f}" for k, v in runs[side][-1].items()), file=sys.stderr)
        finally:
            for server in servers:
                server.stop()
    median = {side: {stage: round(statistics.median(r[stage] for r in found), 2)
                     for stage in STAGES} for side, found in runs.items()}
    for found in median.values():
        found["total outside scoring"] = round(
            found["poll"] + found["runner"] + found["encode"] + found["publish"], 2)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "how": "PYTHONPATH=. .venv/bin/python benchmarks/stream_io.py " + " ".join(sys.argv[1:]),
        "unit": "microseconds per event (median of the repeats)",
        "machine": {"cpus": os.cpu_count(), "os": platform.platform(),
                    "python": platform.python_version()},
        "load_before": load_before, "load_after": os.getloadavg(),
        "versions": {name: version(name) for name in (
            "pydantic", "pydantic-core", "redis", "hiredis", "confluent-kafka", "orjson")
            if _installed(name)},
        "setup": {"events": args.events, "batch": BATCH, "repeats": args.repeats,
                  "partitions": 3, "world": "the seeder's transactions, the world's last day"},
        "commits": commits,
        "median": median,
        "runs": runs,
    }
    if "before" in median:
        result["after_over_before"] = {
            stage: round(median["after"][stage] / median["before"][stage], 3)
            for stage in median["after"] if median["before"][stage]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(median, indent=1))


def _installed(name: str) -> bool:
    try:
        version(name)
    except Exception:
        return False
    return True


if __name__ == "__main__":
    main()
