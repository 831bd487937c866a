"""Fraud stream scorer: sustained transactions/s (1 and 2 processes), event -> decision latency.

    .venv/bin/python benchmarks/fraud_stream.py [--customers 10000] [--backlog 300000]
        [--drain-scorers 1 2] [--rates 2000 5000] [--scorers 2] [--seconds 60]
        [--variant NAME[:KEY=VALUE,...] ...]   # settings side by side, in turns: a KEY is
                                               # MLSD_<scorer setting>, redis.<parameter>, or
                                               # stream.concerns=A+B: a stream processor
                                               # beside the scorers running those concerns

The aim (the issue): >= 10,000 tx/s sustained on this 2-core machine with p99 event -> decision
< 50 ms. Starts its own redis-server and Kafka broker (12 partitions on transactions) and real
`python -m services.fraud.stream` processes in consumer group fraud-scorer.

The world: a transaction world of the default shape with --customers customers (generated
here, seed 0), long enough for the backlog behind 38 days of history. The backlog is the world's
last --backlog transactions in their own order and spacing (so each card's velocity is the
world's), shifted so the last is now; the history, the 38 days before them (terminal and merchant
windows end 7 days back and span 30), goes into Redis through RedisFraudState.record as the
seeder would send it, each fraud report once it has arrived. That state is DUMPed once and
RESTOREd before every phase, so no phase reads what an earlier one appended; with Redis's AOF on
(infra/redis/redis.conf, as `make run` has it) the log is then rewritten to that state, so a
run does not inherit the restore's writes. Each run reports Redis's forks while it ran (AOF
rewrites: count, seconds, when), since a rewrite's child takes a core for seconds.

Throughput: with the scorers stopped, the backlog is published (max age raised to 60 days, so
none is skipped); an unrecorded drain of its first 100,000 transactions warms the broker up
(--no-warm-up-drain to skip it); then each --drain-scorers count of scorer processes starts
and the time from the first decision to the group's lag reaching 0 (group_lags) gives tx/s.
The decisions' own Kafka timestamps give the same rate without the lag probe's second of commit
granularity.
The floor, in the same run after the scorers' drains (--floor-processes): the same backlog
drained by benchmarks/stream_floor.py processes in the group, the scorer's consumer, validation,
encoder and publisher with a fixed decision instead of scoring: what the plumbing alone allows.
Latency: an open-loop publisher sends transaction i of a run at start + i / rate; a listener
process on fraud-decisions (librdkafka, the id found by a byte search: it must not take the
cores it measures) records each decision's (receive time - due time), so a publisher or scorer
that falls behind shows as latency (no coordinated omission). The publisher sends every
millisecond what is due, without waiting for acknowledgements (it checks them all at the end);
an unrecorded run at the first rate comes first (--no-warm-up-run to skip it). With several
--variant, each drain and latency run is made once per variant, in turns, on the same stack.
--mix replay (the default) sends the backlog's own transactions in their order with their own
times, as the drain does: the world's velocity and decision mix. --mix reshuffled sends them
shuffled and cycled, each stamped with its due time: a card's transactions come far closer
together than in the world, so most decisions are reviews or declines (each explained): a
harder, unrealistic mix.
Report: reports/bench/fraud_stream.{json,md,png}.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any, Protocol

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import redis
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka import TopicPartition as ConfluentPartition
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from tqdm import tqdm

from services.common.bus.confluent_bus import ConfluentPublisher
from services.common.bus.envelope import Event, decode_event
from services.common.bus.kafka_bus import ensure_topics, group_lags
from services.common.bus.ports import OutboundMessage, publish_or_raise
from services.common.bus.topics import FRAUD_DECISIONS, TRANSACTIONS, platform_topics
from services.common.loopback import free_port
from services.common.machine import describe
from services.common.models.errors import ModelError, ModelNotFound
from services.common.models.repository import ModelRepository
from services.common.probe import http_ready
from services.designs.fraud.redis_state import RedisFraudState
from services.designs.fraud.state import FraudReport
from services.designs.payloads import FraudLabelData, TransactionData, payload_of
from services.devstack.probes import RedisCommands, RedisForks
from services.devstack.servers import REPO_ROOT, ServerProcess, start_kafka, start_redis
from services.devstack.worktrees import commit
from services.fraud.metrics import STAGES
from services.fraud.settings import FraudSettings
from services.seeder.history import transaction_messages
from services.stream.concerns import select as select_concerns
from services.trainer.worlds.transactions import TransactionWorldConfig, generate_transactions

GROUP = FraudSettings.model_fields["fraud_stream_group"].default
HISTORY_DAYS = 38
WARM_UP = 600  # transactions a latency run sends first (200/s for 3 s): joins the group, warms up
WARM_UP_DRAIN = 100_000  # transactions of the unrecorded drain before the recorded ones
AIM_TX_PER_S = 10_000
BUDGET_MS = 50.0
PERCENTILES = (50, 95, 99, 99.9)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (name, labels) -> value


# --- the world: history in Redis, live transactions --------------------------------------------

@dataclass(frozen=True)
class Timeline:
    """The world in time: the backlog is its last transactions, in their own order and spacing;
    the history, the HISTORY_DAYS before them. Both are shifted so the backlog ends now."""

    history: pd.DataFrame
    backlog: pd.DataFrame
    shift: timedelta
    now: datetime

    @classmethod
    def of(cls, frame: pd.DataFrame, backlog: int) -> Timeline:
        rows = frame.sort_values("tx_datetime", kind="stable")
        tail = rows.iloc[-backlog:]
        start = tail.tx_datetime.iloc[0]
        before = rows[(rows.tx_datetime < start)
                      & (rows.tx_datetime >= start - pd.Timedelta(days=HISTORY_DAYS))]
        now = datetime.now(UTC)
        shift = now - tail.tx_datetime.iloc[-1].tz_localize(UTC).to_pydatetime()  # naive: UTC
        return cls(before, tail, shift, now)

    @property
    def backlog_days(self) -> float:
        span = self.backlog.tx_datetime.iloc[-1] - self.backlog.tx_datetime.iloc[0]
        return float(span / pd.Timedelta(days=1))

    def backlog_messages(self, run: str, rows: slice = slice(None)) -> list[OutboundMessage]:
        """The backlog's transactions (or the `rows` of it) with fresh ids `{run}-{i}`, i from 0
        (one run's decisions apart from another's)."""
        messages = []
        for i, message in enumerate(transaction_messages(
                self.backlog.iloc[rows].assign(is_fraud=0), self.shift, self.now)):
            event = decode_event(message.value)
            data = {**event.data, "transaction_id": f"{run}-{i}"}
            messages.append(OutboundMessage.of(TRANSACTIONS, data["card_id"], Event(
                id=f"bench-{run}-{i}", type="transaction", source="bench", time=event.time,
                data=data)))
        return messages


def history(timeline: Timeline, batch: int = 50_000
            ) -> Iterator[tuple[list[TransactionData], list[FraudReport]]]:
    """The seeder's events for the timeline's history, as the writer's inputs (a report's time
    is its label's arrival, as FraudLabelHandler has it; those arrived by now)."""
    transactions: list[TransactionData] = []
    frauds: list[FraudReport] = []
    for message in transaction_messages(timeline.history, timeline.shift, timeline.now):
        event = decode_event(message.value)
        payload = payload_of(event.type, event.data)
        if isinstance(payload, TransactionData):
            transactions.append(payload)
        elif isinstance(payload, FraudLabelData):
            frauds.append(FraudReport(payload.transaction_id, payload.terminal_id,
                                      payload.merchant_id, payload.transaction_time, event.time))
        if len(transactions) >= batch:  # big batches: a key's members share one ZADD
            yield transactions, frauds
            transactions, frauds = [], []
    yield transactions, frauds


def load_history(client: redis.Redis, timeline: Timeline) -> dict[bytes, bytes]:
    """Writes the history and returns every key's DUMP: restoring takes seconds, a reload
    minutes."""
    writer = RedisFraudState(client)
    with tqdm(total=len(timeline.history), desc="history -> Redis", unit="tx") as bar:
        for transactions, frauds in history(timeline):
            writer.record(transactions, frauds)
            bar.update(len(transactions))
    keys = list(client.scan_iter(count=10_000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
    return dict(zip(keys, pipe.execute(), strict=True))


def restore(client: redis.Redis, state: dict[bytes, bytes]) -> None:
    """The history as loaded, and with AOF on, the log compacted to it: a run must not inherit
    the restore's own writes (the whole state again), which would set off Redis's automatic
    rewrite, a fork that takes a core for seconds, early in the run."""
    client.flushdb()
    pipe = client.pipeline(transaction=False)
    for key, value in state.items():
        pipe.restore(key, 0, value)  # no TTL: the retention windows are weeks, phases minutes
    pipe.execute()
    if client.info("persistence")["aof_enabled"]:
        while client.info("persistence")["aof_rewrite_in_progress"]:
            time.sleep(0.1)  # one the restore set off: the explicit one waits behind it anyway
        client.bgrewriteaof()
        while any(client.info("persistence")[k]
                  for k in ("aof_rewrite_in_progress", "aof_rewrite_scheduled")):
            time.sleep(0.1)


def bench_world(customers: int, backlog: int) -> pd.DataFrame:
    """A world of the default shape with `customers` customers (two terminals each), long
    enough for HISTORY_DAYS of history before a backlog of `backlog` transactions."""
    default = TransactionWorldConfig()
    per_day = 2.0 * customers  # about two transactions a customer a day in these worlds
    days = HISTORY_DAYS + int(np.ceil(backlog / per_day)) + 2
    config = TransactionWorldConfig(n_customers=customers, n_terminals=2 * customers,
                                    n_days=max(days, default.n_days))
    frame = generate_transactions(config).transactions
    if len(frame) < backlog * 1.5:
        raise ValueError(f"a world of {len(frame):,} transactions is too small for a backlog "
                         f"of {backlog:,} behind {HISTORY_DAYS} days of history")
    return frame


class Traffic(Protocol):
    """What the latency runs publish: transaction i of a run, due at `at`."""

    def prepare(self, run: str, count: int, warm_up: bool) -> None: ...

    def message(self, run: str, i: int, at: datetime) -> OutboundMessage: ...


class ReplayedTransactions:
    """The world's realistic mix (--mix replay): the backlog's transactions in their own order,
    with their own (shifted) times, as the drain has them: each card's velocity is the world's.
    A warm-up takes the first WARM_UP rows, a measured run the rows after them; messages are
    built before the clock starts, so the publisher only sends."""

    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline
        self._messages: list[OutboundMessage] = []

    def prepare(self, run: str, count: int, warm_up: bool) -> None:
        first = 0 if warm_up else WARM_UP
        if first + count > len(self._timeline.backlog):
            raise ValueError(f"a replay of {count:,} transactions after {first:,} needs a "
                             f"backlog of {first + count:,}: raise --backlog")
        self._messages = self._timeline.backlog_messages(run, slice(first, first + count))

    def message(self, run: str, i: int, at: datetime) -> OutboundMessage:
        return self._messages[i]


class ReshuffledTransactions:
    """The given transactions, shuffled and cycled (--mix reshuffled): the same cards,
    customers, terminals and devices going on, each with a fresh id and the time it is due (so
    a card's transactions come much closer together than in the world: velocity rules fire
    more often, and most decisions are reviews or declines, each explained)."""

    def __init__(self, frame: pd.DataFrame, seed: int = 0) -> None:
        rows = frame.assign(is_fraud=0)
        now = datetime.now(UTC)
        self._templates = [decode_event(m.value).data
                           for m in transaction_messages(rows, timedelta(0), now)]
        random.Random(seed).shuffle(self._templates)
        self._offset = 0

    def prepare(self, run: str, count: int, warm_up: bool) -> None:
        self._offset += count  # each run goes on where the last one stopped

    def message(self, run: str, i: int, at: datetime) -> OutboundMessage:
        data = {**self._templates[(self._offset + i) % len(self._templates)],
                "transaction_id": f"{run}-{i}", "timestamp": at.isoformat()}
        event = Event(id=f"bench-{run}-{i}", type="transaction", source="bench", time=at,
                      data=data)
        return OutboundMessage.of(TRANSACTIONS, data["card_id"], event)


# --- the scorer processes ----------------------------------------------------------------------

@dataclass
class Stack:
    redis: ServerProcess
    kafka: ServerProcess
    env: dict[str, str]
    workdir: Path


@dataclass
class Scorer:
    process: subprocess.Popen[bytes]
    port: int

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"a scorer (or the stream processor) exited with "
                               f"{self.process.returncode}: see its log")


SCORER = ("-m", "services.fraud.stream")


@dataclass(frozen=True)
class Variant:
    """Settings a run gets on top of the stack's: the scorers' (`MLSD_*`, their environment) and
    Redis's (`redis.<parameter>`, CONFIG SET before the run and put back after). Several variants
    of one run are measured in turns on the same stack and state (side by side, not across
    runs)."""

    name: str
    env: dict[str, str]
    redis: dict[str, str] = field(default_factory=dict)
    # a stream processor (`python -m services.stream`) beside the scorers, running these concerns
    # ("+"-separated): the full stack's other consumer of `transactions`, or none
    concerns: str | None = None
    # role (scorer, redis, kafka) -> the cores its processes' threads may run on for the run
    # (`cpus.redis=1`, `cpus.scorer=0+1`); unnamed roles run anywhere
    cpus: dict[str, set[int]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Variant:
        """`NAME` or `NAME:KEY=VALUE[,KEY=VALUE...]`, e.g.
        `wait5:MLSD_FRAUD_STREAM_FETCH_WAIT_MS=5`, `norewrite:redis.auto-aof-rewrite-percentage=0`
        or `twowriters:stream.concerns=transaction-features`."""
        name, _, settings = text.partition(":")
        pairs = [pair.split("=", 1) for pair in settings.split(",") if pair]
        if not name or any(len(pair) != 2 or not (pair[0].startswith(("MLSD_", "redis."))
                                                  or pair[0] == "stream.concerns"
                                                  or pair[0] in PINNABLE)
                           for pair in pairs):
            raise argparse.ArgumentTypeError(
                f"{text!r}: a variant is NAME or NAME:KEY=VALUE[,KEY=VALUE...], each KEY "
                "MLSD_<setting>, redis.<parameter>, stream.concerns or cpus.<scorer|redis|kafka>"
                " (cores joined by +)")
        concerns = dict(pairs).get("stream.concerns")
        return cls(name, {k: v for k, v in pairs if k.startswith("MLSD_")},
                   {k.removeprefix("redis."): v for k, v in pairs if k.startswith("redis.")},
                   concerns.replace("+", ",") if concerns else None,
                   {k.removeprefix("cpus."): {int(c) for c in v.split("+")}
                    for k, v in pairs if k in PINNABLE})

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "env": self.env, "redis": self.redis,
                "stream_concerns": self.concerns,
                **({"cpus": {role: sorted(c) for role, c in self.cpus.items()}}
                   if self.cpus else {})}

    @contextmanager
    def pinned(self, roles: dict[str, list[int]]) -> Iterator[None]:
        """Each named role's processes (every thread) kept to its cores for the block, then
        free to run anywhere again (Redis and the broker outlive a variant's run)."""
        anywhere = os.sched_getaffinity(0)
        pids = [(pid, cores) for role, cores in self.cpus.items() for pid in roles.get(role, ())]
        try:
            for pid, cores in pids:
                set_affinity(pid, cores)
            yield
        finally:
            for pid, _ in pids:
                with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                    set_affinity(pid, anywhere)

    def groups(self) -> dict[str, list[str]]:
        """The processor's consumer groups and their topics (none without a processor)."""
        return ({} if self.concerns is None
                else {c.group: list(c.topics) for c in select_concerns(self.concerns)})

    @contextmanager
    def applied(self, address: str) -> Iterator[None]:
        """Redis's parameters set for the run, and put back as they were after it."""
        client = redis.Redis.from_url(address, decode_responses=True)
        before = {key: str(client.config_get(key)[key]) for key in self.redis}
        try:
            for key, value in self.redis.items():
                client.config_set(key, value)
            yield
        finally:
            for key, value in before.items():
                client.config_set(key, value)
            client.close()


PINNABLE = ("cpus.scorer", "cpus.redis", "cpus.kafka")


def set_affinity(pid: int, cores: set[int]) -> None:
    """Every thread of `pid` on `cores` (threads it starts later inherit their starter's)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), cores)


DEFAULT_VARIANT = Variant("default", {})
# The floor in the same run: the scorer's consumer, validation, encoder and publisher with a fixed
# decision in place of scoring (benchmarks/stream_floor.py).
FLOOR = (str(REPO_ROOT / "benchmarks" / "stream_floor.py"),)


@contextmanager
def scorers(stack: Stack, count: int, command: Sequence[str] = SCORER,
            variant: Variant = DEFAULT_VARIANT, *, name: str = "scorer",
            port_variable: str = "MLSD_FRAUD_STREAM_METRICS_PORT") -> Iterator[list[Scorer]]:
    """`count` scorer processes in the group (or other processes, by `name`), each with its
    metrics port and the variant's settings; all stopped after."""
    started: list[Scorer] = []
    try:
        for k in range(count):
            port = free_port()
            with (stack.workdir / f"{name}-{k}.log").open("ab") as log:
                started.append(Scorer(subprocess.Popen(
                    [sys.executable, *command], cwd=REPO_ROOT,
                    env={**os.environ, **stack.env, **variant.env, port_variable: str(port),
                         "PYTHONPATH": str(REPO_ROOT)},
                    stdout=log, stderr=subprocess.STDOUT), port))
        deadline = time.monotonic() + 120
        for scorer in started:
            while not http_ready(f"http://127.0.0.1:{scorer.port}/readyz"):
                scorer.check()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready: see {stack.workdir}/{name}-*.log")
                time.sleep(0.25)
        yield started
    finally:
        for scorer in started:
            scorer.process.terminate()
        for scorer in started:
            try:
                scorer.process.wait(60)
            except subprocess.TimeoutExpired:
                scorer.process.kill()
                scorer.process.wait()


@contextmanager
def processor(stack: Stack, variant: Variant) -> Iterator[list[Scorer]]:
    """The variant's stream processor beside the scorers (none without `stream.concerns`)."""
    if variant.concerns is None:
        yield []
        return
    with scorers(stack, 1, ("-m", "services.stream"),
                 Variant(variant.name, {"MLSD_STREAM_CONCERNS": variant.concerns}),
                 name="stream", port_variable="MLSD_STREAM_PORT") as started:
        yield started


def scrape(ports: Sequence[int]) -> Samples:
    """Every sample of every scorer's /metrics, summed over the processes."""
    total: Samples = defaultdict(float)
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                total[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
    return total


def stage_costs(samples: Samples) -> dict[str, Any]:
    """Mean ms per batch and per transaction of each scoring stage, and of the whole batch
    (the consumer's: decode, dedupe, score, publish the decisions)."""
    def value(name: str, **labels: str) -> float:
        return samples.get((f"fraud_stream_{name}", tuple(sorted(labels.items()))), 0.0)

    batches = value("batch_size_transactions_count", path="stream")
    transactions = value("batch_size_transactions_sum", path="stream")
    spent = {stage: value("stage_duration_seconds_sum", stage=stage, path="stream")
             for stage in STAGES}
    spent["whole batch"] = value("consumer_batch_duration_seconds_sum", group=GROUP)
    spent["outside the stages"] = spent["whole batch"] - sum(spent[s] for s in STAGES)
    return {
        "batches": int(batches), "transactions": int(transactions),
        "mean_batch": transactions / batches if batches else 0.0,
        "ms": {k: {"per_batch": 1000 * s / batches if batches else 0.0,
                   "per_tx": 1000 * s / transactions if transactions else 0.0}
               for k, s in spent.items()},
        "actions": {a: int(value("decisions_total", action=a, path="stream"))
                    for a in ("approve", "review", "decline")},
        "degraded": {d: int(value("degraded_decisions_total", dependency=d))
                     for d in ("features", "model")},
        "stale": int(value("stale_transactions_total")),
        "within_budget": (value("event_to_decision_seconds_bucket", le=str(BUDGET_MS / 1000))
                          / max(value("event_to_decision_seconds_count"), 1.0)),
    }


class Busy:
    """The share of a run's wall time the scorers spent handling batches (the consumer's batch
    histogram, summed over processes, over processes x the run): how close they ran to
    saturation, which is what a latency tail follows (a queue's wait grows as 1 / (1 - busy))."""

    def __init__(self, ports: Sequence[int]) -> None:
        self._ports = ports
        self._before = self._spent()

    def _spent(self) -> tuple[float, float, float]:
        samples = scrape(self._ports)

        def value(name: str, **labels: str) -> float:
            return samples.get((f"fraud_stream_{name}", tuple(sorted(labels.items()))), 0.0)

        return (value("consumer_batch_duration_seconds_sum", group=GROUP),
                value("batch_size_transactions_count", path="stream"),
                value("batch_size_transactions_sum", path="stream"))

    def stop(self, seconds: float) -> dict[str, float]:
        after = self._spent()
        spent, batches, transactions = (a - b for a, b in zip(after, self._before, strict=True))
        return {"share": round(spent / (len(self._ports) * seconds), 3),
                "mean_batch": round(transactions / batches, 1) if batches else 0.0}


TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system seconds of one process so far, with those of its children it has reaped
    (/proc/<pid>/stat, fields 14-17): Redis's rewrite forks are Redis's work, not "other"."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) * TICK_S


def machine_cpu_s() -> tuple[float, float]:
    """(busy, stolen) seconds of all cores so far (/proc/stat; guest time is inside user)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq) * TICK_S, steal * TICK_S


def run_queue_wait_s(pid: int) -> float:
    """Seconds the process's threads have spent runnable but waiting for a core so far
    (/proc/<pid>/task/*/schedstat, field 2): on two shared cores, how long each part waited
    for the others rather than for its input."""
    waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            waited += int((task / "schedstat").read_text().split()[1])
    return waited / 1e9


class CpuMeter:
    """Cores each role used over a phase, and what the rest of the machine used meanwhile."""

    def __init__(self, roles: dict[str, list[int]]) -> None:
        self._roles = roles
        self._start = self._read()
        self._waits = self._read_waits()

    def _read_waits(self) -> dict[str, float]:
        return {role: sum(run_queue_wait_s(pid) for pid in pids)
                for role, pids in self._roles.items()}

    def waits(self, seconds: float) -> dict[str, float]:
        """Each role's threads' time runnable but without a core, a second of the phase (call
        right after stop)."""
        end = self._read_waits()
        return {role: round((end[role] - self._waits[role]) / seconds, 2) for role in end}

    def _read(self) -> dict[str, float]:
        used = {role: sum(process_cpu_s(pid) for pid in pids) for role, pids in self._roles.items()}
        used["machine"], used["steal"] = machine_cpu_s()
        return used

    def stop(self, seconds: float) -> dict[str, float]:
        """Mean cores used by each role (the whole machine is `nproc`); steal is the
        hypervisor's: time this VM wanted a core and had none."""
        end = self._read()
        cores = {role: (end[role] - self._start[role]) / seconds for role in end}
        cores["other work"] = cores["machine"] - sum(cores[role] for role in self._roles)
        return {role: round(v, 2) for role, v in cores.items()}


def stack_roles(stack: Stack, running: Sequence[Scorer],
                listener: int | None = None, beside: Sequence[Scorer] = ()
                ) -> dict[str, list[int]]:
    roles = {"scorer": [s.process.pid for s in running], "redis": [stack.redis.process.pid],
             "kafka": [stack.kafka.process.pid], "benchmark": [os.getpid()]}
    return (roles | ({"listener": [listener]} if listener else {})
            | ({"stream processor": [p.process.pid for p in beside]} if beside else {}))


# --- throughput: drain a backlog -----------------------------------------------------------------

def decision_ends(consumer: KafkaConsumer) -> dict[TopicPartition, int]:
    partitions = [TopicPartition(FRAUD_DECISIONS, p)
                  for p in sorted(consumer.partitions_for_topic(FRAUD_DECISIONS) or ())]
    return dict(consumer.end_offsets(partitions))


def decision_times(consumer: KafkaConsumer, since: dict[TopicPartition, int]
                   ) -> dict[int, list[int]]:
    """The Kafka timestamps (ms, set when the scorer sent them) of the decisions after `since`,
    per partition (a transaction's partition: both topics are keyed by card)."""
    ends = decision_ends(consumer)
    consumer.assign(list(since))
    for tp, offset in since.items():
        consumer.seek(tp, offset)
    times: dict[int, list[int]] = defaultdict(list)
    while any(consumer.position(tp) < ends[tp] for tp in since):
        for tp, records in consumer.poll(timeout_ms=1000, max_records=10_000).items():
            times[tp.partition] += [r.timestamp for r in records if r.offset < ends[tp]]
    return times


def drain(stack: Stack, state: dict[bytes, bytes], timeline: Timeline,
          processes: int, command: Sequence[str] = SCORER,
          variant: Variant = DEFAULT_VARIANT, rows: slice = slice(None)) -> dict[str, Any]:
    """`rows`: the part of the backlog to drain (all of it but in the warm-up drain)."""
    client = redis.Redis.from_url(stack.redis.address)
    restore(client, state)
    client.close()
    bootstrap = stack.kafka.address
    publisher = ConfluentPublisher(bootstrap, client_id="bench", delivery_timeout_s=30)
    run = f"drain{processes}-{datetime.now(UTC):%H%M%S}"
    messages = timeline.backlog_messages(run, rows)
    backlog = len(messages)
    with tqdm(total=backlog, desc="publish backlog", unit="tx") as bar:
        for start in range(0, backlog, 5000):
            publish_or_raise(publisher, messages[start:start + 5000])
            bar.update(len(messages[start:start + 5000]))
    publisher.close()
    probe = KafkaConsumer(bootstrap_servers=bootstrap, client_id="bench-probe",
                          enable_auto_commit=False)
    before = decision_ends(probe)
    load_before = os.getloadavg()
    forks = RedisForks(stack.redis.address)
    commands = RedisCommands(stack.redis.address)
    groups = {GROUP: [TRANSACTIONS], **variant.groups()}
    decided_s: float | None = None
    with variant.applied(stack.redis.address), processor(stack, variant) as beside, \
            scorers(stack, processes, command, variant) as running, \
            variant.pinned(stack_roles(stack, running)):
        first = last_lag_probe = 0.0
        with tqdm(total=backlog, desc=f"drain with {processes} scorer(s)", unit="tx") as bar:
            while True:
                time.sleep(0.25)
                for scorer in (*running, *beside):
                    scorer.check()
                now = time.perf_counter()
                bar.n = sum(decision_ends(probe).values()) - sum(before.values())
                bar.refresh()
                if not first:
                    if bar.n:
                        first = now
                        meter = CpuMeter(stack_roles(stack, running, beside=beside))
                    continue
                if now - last_lag_probe >= 1.0:  # two clients per probe: not every tick
                    last_lag_probe = now
                    lags = group_lags(bootstrap, groups)
                    if decided_s is None and lags[GROUP] == 0:
                        decided_s = now - first
                    if not any(lags.values()):  # decided, and the processor's work done too
                        break
        lag_s = now - first
        cores = meter.stop(lag_s)
        waits = meter.waits(lag_s)
        costs = stage_costs(scrape([s.port for s in running]))
    times = decision_times(probe, before)
    probe.close()
    start_ms = min(min(t) for t in times.values())
    decided = sum(len(t) for t in times.values())
    kafka_s = (max(max(t) for t in times.values()) - start_ms) / 1000
    return {
        "processes": processes, "variant": variant.describe(), "backlog": backlog,
        "decisions": decided,
        "lag_probe": {"seconds": round(lag_s, 2), "tx_per_s": round(backlog / lag_s)},
        # with a processor beside: when the scorers' group had decided all (the processor may
        # finish later; lag_probe waits for both)
        "decided_lag_probe": ({"seconds": round(decided_s, 2),
                               "tx_per_s": round(backlog / decided_s)}
                              if decided_s and variant.concerns else None),
        "decision_timestamps": {"seconds": round(kafka_s, 2),
                                "tx_per_s": round((decided - 1) / kafka_s)},
        "partition_done_s": {p: round((max(t) - start_ms) / 1000, 2)
                             for p, t in sorted(times.items())},
        "cores": cores, "run_queue_wait": waits, "redis_forks": forks.stop(),
        "load_avg": [load_before, os.getloadavg()], "metrics": costs,
        # Redis's commands a transaction over the drain (the processor's too, when one runs)
        "redis_commands": commands.stop(backlog),
    }


# --- latency at a fixed offered rate -------------------------------------------------------------

def listen(bootstrap: str, run: str, expected: int, ready: ProcessEvent, done: ProcessEvent,
           give_up_s: float, results: Queue[dict[str, list[float]]]) -> None:
    """In its own process, so the publisher's work never delays a receive time: each of the
    run's decisions as (its transaction's index in the run, receive time, the decision's Kafka
    timestamp). librdkafka and a byte search for the id, not a JSON parse: at 5,000 decisions a
    second the listener must not take the cores the scorers are measured on (kafka-python with
    json.loads took 0.7 of a core at 2,000/s)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-listener-{run}",
                         "enable.auto.commit": False, "client.id": "bench-listener"})
    metadata = consumer.list_topics(FRAUD_DECISIONS, timeout=30).topics[FRAUD_DECISIONS]
    partitions = []
    for p in sorted(metadata.partitions):
        _, high = consumer.get_watermark_offsets(ConfluentPartition(FRAUD_DECISIONS, p),
                                                 timeout=30)
        partitions.append(ConfluentPartition(FRAUD_DECISIONS, p, high))  # from the end, now
    consumer.assign(partitions)
    gc.disable()  # a collection would stall receives, read as latency; nothing here makes cycles
    ready.set()
    seen: dict[str, list[float]] = {"index": [], "received_s": [], "stored_ms": []}
    pattern = re.compile(rb'"transaction_id":\s*"' + re.escape(f"{run}-".encode()) + rb'(\d+)"')
    give_up_at = float("inf")
    try:
        while len(seen["index"]) < expected and time.time() < give_up_at:
            if done.is_set() and give_up_at == float("inf"):
                give_up_at = time.time() + give_up_s
            # consume() waits out its whole timeout unless the batch fills: poll() returns on
            # the first decision, consume(timeout=0) adds what is already fetched.
            first = consumer.poll(0.1)
            records = [first, *consumer.consume(num_messages=2000, timeout=0)] if first else []
            received = time.time()
            for record in records:
                found = pattern.search(record.value() or b"") if not record.error() else None
                if found is None:
                    continue
                seen["index"].append(int(found.group(1)))
                seen["received_s"].append(received)
                seen["stored_ms"].append(record.timestamp()[1])
    finally:
        consumer.close()
        results.put(seen)


SEND_TICK_S = 0.001


class OpenLoopProducer:
    """The latency runs' load generator. An open-loop client does not wait on the broker between
    sends, and on these shared cores the generator's own cost is taken from the system it
    measures: it sends without waiting for each batch's acknowledgements and without a Python
    callback per message (librdkafka reports failures only). The same producer settings as the
    platform's publisher (acks=all, idempotent, the Java key hash); every failure is kept and
    raised by finish(), and finish() waits until every message is acknowledged."""

    def __init__(self, bootstrap: str) -> None:
        self.failures: list[str] = []
        self._producer = Producer({
            "bootstrap.servers": bootstrap, "client.id": "bench-load", "acks": "all",
            "enable.idempotence": True, "linger.ms": 2, "partitioner": "murmur2_random",
            "delivery.report.only.error": True, "on_delivery": self._failed})

    def _failed(self, error: KafkaError | None, _message: object) -> None:
        if error is not None:
            self.failures.append(str(error))

    def send(self, messages: Sequence[OutboundMessage]) -> None:
        for message in messages:
            while True:
                try:
                    self._producer.produce(message.topic, value=message.value, key=message.key,
                                           headers=list(message.headers))
                    break
                except BufferError:  # librdkafka's queue is full: let it drain
                    self._producer.poll(0.005)
        self._producer.poll(0)

    def finish(self, timeout_s: float = 60.0) -> None:
        left = self._producer.flush(timeout_s)
        if left or self.failures:
            raise RuntimeError(f"load not delivered: {left} unacknowledged, "
                               f"{len(self.failures)} failed (first: {self.failures[:1]})")


def publish_at(publisher: OpenLoopProducer, traffic: Traffic, run: str, rate: float,
               seconds: float, warm_up: bool = False, prepared: bool = False) -> float:
    """Open loop: transaction i is due at start + i / rate, however late it is actually sent
    (the reshuffled mix stamps that time on it; the replay keeps the world's). Returns the
    start (epoch seconds): latency is measured from each one's due time."""
    total, sent = int(rate * seconds), 0
    if not prepared:
        traffic.prepare(run, total, warm_up)
    # No collection while sending: a full one over the world's and the run's objects would
    # delay sends, read as latency. (It was not what slowed the stack's first run: main()'s
    # warm-up run is for that.)
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        start = time.time()
        with tqdm(total=total, desc=f"publish at {rate:.0f}/s", unit="tx") as bar:
            while sent < total:
                due = min(total, int((time.time() - start) * rate) + 1)
                batch = [traffic.message(run, i, datetime.fromtimestamp(start + i / rate, UTC))
                         for i in range(sent, due)]
                if batch:
                    publisher.send(batch)
                    sent = due
                    bar.update(len(batch))
                # At least a millisecond between sends: one pass of the loop (tqdm, a poll) a
                # millisecond, not one a transaction; a transaction sent up to 1 ms late
                # counts that in its latency.
                time.sleep(max(SEND_TICK_S, start + sent / rate - time.time()))
    finally:
        gc.enable()
        gc.unfreeze()
    publisher.finish()
    return start


def caught_up(bootstrap: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while group_lags(bootstrap, {GROUP: [TRANSACTIONS]})[GROUP] > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the scorer did not catch up with the warm-up")
        time.sleep(0.5)


def steady(stack: Stack, state: dict[bytes, bytes], traffic: Traffic, rate: float,
           seconds: float, processes: int, variant: Variant = DEFAULT_VARIANT
           ) -> dict[str, Any]:
    client = redis.Redis.from_url(stack.redis.address)
    restore(client, state)
    client.close()
    bootstrap = stack.kafka.address
    publisher = OpenLoopProducer(bootstrap)
    run = f"rate{rate:.0f}-{datetime.now(UTC):%H%M%S}"
    expected = int(rate * seconds)
    context = multiprocessing.get_context("spawn")  # no fork of a process with Kafka threads
    ready, done, results = context.Event(), context.Event(), context.Queue()
    listener = context.Process(target=listen, args=(bootstrap, run, expected, ready, done,
                                                    60.0, results), daemon=True)
    with variant.applied(stack.redis.address), processor(stack, variant) as beside, \
            scorers(stack, processes, variant=variant) as running, \
            variant.pinned(stack_roles(stack, running)):
        publish_at(publisher, traffic, f"warmup-{run}", 200, WARM_UP / 200, warm_up=True)
        caught_up(bootstrap)
        listener.start()
        try:
            if not ready.wait(60):
                raise RuntimeError("the decision listener did not start")
            # built before the meter starts: encoding a run's messages is not its load
            traffic.prepare(run, expected, False)
            load_before = os.getloadavg()
            ports = [s.port for s in running]
            meter = CpuMeter(stack_roles(stack, running, listener.pid, beside))
            busy = Busy(ports)
            forks = RedisForks(stack.redis.address)
            start = publish_at(publisher, traffic, run, rate, seconds, prepared=True)
            done.set()
            seen = results.get(timeout=120)
            run_s = max(seen["received_s"], default=time.time()) - start
            cores, scorer_busy, redis_forks = meter.stop(run_s), busy.stop(run_s), forks.stop()
            listener.join(10)
        finally:
            if listener.is_alive():
                listener.kill()
        costs = stage_costs(scrape([s.port for s in running]))
    return latency_summary(rate, seconds, start, seen) | {
        "processes": processes, "variant": variant.describe(), "cores": cores,
        "scorers_busy": scorer_busy, "redis_forks": redis_forks,
        "load_avg": [load_before, os.getloadavg()],
        "metrics": costs}


def latency_summary(rate: float, seconds: float, start: float,
                    seen: dict[str, list[float]]) -> dict[str, Any]:
    expected = int(rate * seconds)
    due_s = start + np.asarray(seen["index"]) / rate
    at = np.asarray(seen["received_s"])
    received = (at - due_s) * 1000
    if not len(received):
        raise RuntimeError(f"no decision arrived for the {rate:.0f} tx/s run")
    distinct = len(set(seen["index"]))
    second = np.asarray(seen["index"]) // rate
    order = np.argsort(at)  # by receive time: does latency grow over the run?
    quarter = max(len(order) // 4, 1)

    def stats(values: np.ndarray) -> dict[str, float]:
        found = {f"p{q:g}": float(np.percentile(values, q)) for q in PERCENTILES}
        return {k: round(v, 2) for k, v in (found | {"max": float(values.max())}).items()}

    return {
        "rate": rate, "seconds": seconds, "expected": expected, "decided": distinct,
        "decisions": len(received),
        "decisions_per_s": round(len(received) / (at.max() - start), 1),
        "latency_ms": stats(received),
        "at_scorer_ms": stats(np.asarray(seen["stored_ms"]) - due_s * 1000),
        "p50_first_quarter_ms": round(float(np.median(received[order[:quarter]])), 2),
        "p50_last_quarter_ms": round(float(np.median(received[order[-quarter:]])), 2),
        # by the second each transaction was due: where in the run the tail sits (beside
        # redis_forks' windows, seconds from the same start)
        "p99_by_second_ms": [round(float(np.percentile(received[second == k], 99)), 1)
                             if np.any(second == k) else None
                             for k in range(int(np.ceil(seconds)))],
        "samples_ms": [round(float(v), 3) for v in received],
    }


# --- report --------------------------------------------------------------------------------------

def missing_model(repository: Path, name: str = "fraud") -> str | None:
    """Why the scorers would decide without their model (None: they would not). Without one,
    every decision is made on the rules alone (degraded): a cheaper pipeline than the one the
    benchmark claims to measure, as two of session 17's committed runs were."""
    try:
        version = ModelRepository(repository).production_version(name)
    except ModelNotFound:
        version = None
    except (OSError, ValueError, ModelError) as exc:
        return f"the model repository {repository} cannot be read ({exc})"
    if version is None:
        return f"no production {name!r} model in {repository}: run `make models` first"
    return None


def degraded_runs(summary: dict[str, Any]) -> list[str]:
    """Each drain or latency run in which a decision was made without its features or model:
    such a run measured a cheaper pipeline than the whole one (each named with its counts)."""
    found = []
    for section in ("throughput", "latency"):
        for run in summary[section]:
            degraded = run.get("metrics", {}).get("degraded", {})
            if any(degraded.values()):
                name = (run.get("variant") or {}).get("name", "default")
                where = (f"{run['processes']} scorers" if section == "throughput"
                         else f"{run.get('rate')} tx/s")
                found.append(f"{section} {where} ({name}): degraded decisions {degraded}")
    return found


def report(summary: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "fraud_stream.json").write_text(json.dumps(summary, indent=1))
    (out / "fraud_stream.md").write_text(markdown(summary))
    plot(summary, out / "fraud_stream.png")
    if any("p99_by_second_ms" in r for r in summary["latency"]):
        plot_timeline(summary, out / "fraud_stream_timeline.png")


def plot_timeline(s: dict[str, Any], path: Path) -> None:
    """Each latency run's p99 second by second, with the seconds Redis was forking shaded: where
    in a run its tail sits."""
    runs = [r for r in s["latency"] if "p99_by_second_ms" in r]
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 2.4 * len(runs)), sharex=True,
                             squeeze=False)
    for ax, r in zip(axes[:, 0], runs, strict=True):
        p99 = [np.nan if v is None else v for v in r["p99_by_second_ms"]]
        ax.plot(np.arange(len(p99)) + 0.5, p99, marker=".", label="p99 of the second")
        for k, (start, end) in enumerate(r.get("redis_forks", {}).get("windows_s", [])):
            ax.axvspan(start, max(end, start + 0.1), color="tab:orange", alpha=0.3,
                       label="Redis forking (AOF rewrite)" if k == 0 else None)
        ax.axhline(BUDGET_MS, color="red", linestyle="--", label=f"budget {BUDGET_MS:.0f} ms")
        ax.set_yscale("log")
        ax.set_ylabel("ms")
        ax.set_title(f"{r['rate']:.0f} tx/s offered{tag(r)}: p99 {r['latency_ms']['p99']:.0f} ms, "
                     f"scorers {r['scorers_busy']['share']:.0%} busy", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("second of the run (by each transaction's scheduled send time)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tag(run: dict[str, Any]) -> str:
    """A run's variant, as its rows and lines are labelled (nothing for the default)."""
    name = run.get("variant", {}).get("name", "default")
    return "" if name == "default" else f" [{name}]"


def drain_row(label: str, d: dict[str, Any]) -> str:
    c = d["cores"]
    scorer = (f"{c['scorer']} + {c['stream processor']} (processor)"
              if "stream processor" in c else f"{c['scorer']}")
    return (f"| {label} | {d['backlog']:,} | {d['lag_probe']['tx_per_s']:,} | "
            f"{d['decision_timestamps']['tx_per_s']:,} | {scorer} / {c['redis']} / "
            f"{c['kafka']} / {c['other work']} / {c['steal']} |")


def markdown(s: dict[str, Any]) -> str:
    m = s["machine"]
    # results before services.common.machine.describe() named two of its keys differently
    os_name = m.get("os", m.get("platform"))
    load_after = m.get("load_average", m.get("load_avg_after"))
    lines = [
        "# Fraud stream scorer: throughput and event -> decision latency", "",
        f"{s['date']}; `nproc` {m['nproc']}, Python {m['python']}, {os_name}; load "
        f"average {m['load_avg_before'][0]:.2f} before, {load_after[0]:.2f} after. "
        "Made by `benchmarks/fraud_stream.py` (its docstring says how). Aim: >= "
        f"{AIM_TX_PER_S:,} tx/s sustained, p99 < {BUDGET_MS:.0f} ms.", "",
        "## Sustained throughput (drain a backlog)", "",
        "| scorers | backlog | tx/s (lag probe) | tx/s (decision timestamps) "
        "| cores: scorer / redis / kafka / other work / steal |", "|---|---|---|---|---|",
    ]
    lines += [drain_row(f"{d['processes']}{tag(d)}", d) for d in s["throughput"]]
    lines += [drain_row(f"floor: {d['processes']} processes, no scoring", d)
              for d in s.get("floor", [])]
    scorers_n = s["latency"][0]["processes"] if s["latency"] else 0
    w = s["world"]
    lines += ["", f"The backlog is the last {w['backlog_days']} days of a world of "
              f"{w['customers']:,} customers ({w['backlog_cards']:,} distinct cards in it, fraud "
              f"rate {w['backlog_fraud_rate']:.2%}), in its own order and spacing, shifted to end "
              f"now, behind {w['history_transactions']:,} transactions of history. Decisions: "
              + "; ".join(f"{d['processes']} scorer(s): " + ", ".join(
                  f"{a} {n:,}" for a, n in d["metrics"]["actions"].items())
                  for d in s["throughput"]) + "."]
    lines += ["", f"## Latency at fixed offered rates ({scorers_n} scorer(s), open loop)", "",
              "| offered tx/s | decided / sent | decisions/s | p50 ms | p95 ms | p99 ms "
              "| p99.9 ms | max ms | p50 first -> last quarter | scorers busy (batch) "
              "| Redis forks (s) |",
              "|---" * 11 + "|"]
    for r in s["latency"]:
        q = r["latency_ms"]
        lines.append(f"| {r['rate']:.0f}{tag(r)} | {r['decided']:,} / {r['expected']:,} | "
                     f"{r['decisions_per_s']} | {q['p50']} | {q['p95']} | {q['p99']} | "
                     f"{q['p99.9']} | {q['max']} | "
                     f"{r['p50_first_quarter_ms']} -> {r['p50_last_quarter_ms']} | "
                     f"{busy_cell(r)} | {forks_cell(r)} |")
    mix = s["args"].get("mix", "reshuffled")
    lines += ["", "Latency: receive time at a listener on fraud-decisions minus the transaction's "
              f"scheduled send time. Mix: {mix} (the module's docstring says what each is).", ""]
    return "\n".join(lines + stage_table(s))


def forks_cell(r: dict[str, Any]) -> str:
    forks = r.get("redis_forks")  # not in results before session 12
    return "" if forks is None else f"{forks['forks']} ({forks['seconds']:.1f})"


def busy_cell(r: dict[str, Any]) -> str:
    busy = r.get("scorers_busy")  # not in results before session 11
    return "" if busy is None else f"{busy['share']:.0%} ({busy['mean_batch']:.0f})"


def stage_table(s: dict[str, Any]) -> list[str]:
    runs = [*s["throughput"], *s["latency"]]
    if not runs:
        return []
    names = [f"drain, {d['processes']} scorer(s){tag(d)}" for d in s["throughput"]]
    names += [f"{r['rate']:.0f} tx/s{tag(r)}" for r in s["latency"]]
    lines = ["## Where the time goes", "",
             "Mean ms per batch / per transaction, from the scorers' histograms; `whole batch` is "
             "the consumer's (decode, dedupe, score, publish the decisions).", "",
             "| stage | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
             "| transactions per batch | "
             + " | ".join(f"{r['metrics']['mean_batch']:.0f}" for r in runs) + " |"]
    for stage in runs[0]["metrics"]["ms"]:
        cells = [r["metrics"]["ms"][stage] for r in runs]
        lines.append(f"| {stage} | " + " | ".join(
            f"{c['per_batch']:.2f} / {c['per_tx']:.3f}" for c in cells) + " |")
    return [*lines, ""]


def plot(s: dict[str, Any], path: Path) -> None:
    fig, (cdf, bars) = plt.subplots(1, 2, figsize=(11, 4), width_ratios=(3, 2))
    for r in s["latency"]:
        ordered = np.sort(np.asarray(r["samples_ms"]))
        if len(ordered):
            cdf.plot(ordered, np.linspace(0, 1, len(ordered)),
                     label=f"{r['rate']:.0f} tx/s offered{tag(r)} "
                           f"(p99 {r['latency_ms']['p99']:.0f} ms)")
    cdf.axvline(BUDGET_MS, color="red", linestyle="--", label=f"budget: p99 < {BUDGET_MS:.0f} ms")
    cdf.axhline(0.99, color="grey", linewidth=0.5)
    cdf.set_xscale("log")
    cdf.set_xlabel("event -> decision (ms, from the scheduled send time)")
    cdf.set_ylabel("share of transactions")
    scorers_n = s["latency"][0]["processes"] if s["latency"] else 0
    cdf.set_title(f"Latency, {scorers_n} scorer process(es)")
    cdf.legend(fontsize=8)
    names = [f"{d['processes']} process{'es' if d['processes'] > 1 else ''}{tag(d)}"
             for d in s["throughput"]]
    rates = [d["decision_timestamps"]["tx_per_s"] for d in s["throughput"]]
    bars.bar(names, rates, color="tab:blue")
    for x, value in enumerate(rates):
        bars.text(x, value, f"{value:,}", ha="center", va="bottom")
    bars.axhline(AIM_TX_PER_S, color="red", linestyle="--", label=f"aim: {AIM_TX_PER_S:,} tx/s")
    bars.set_ylim(0, AIM_TX_PER_S * 1.1)
    bars.set_ylabel("tx/s draining a backlog")
    bars.set_title(f"Sustained throughput ({s['machine']['nproc']} cores)")
    bars.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# --- main ----------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=300_600,
                        help="transactions to drain; the replayed latency runs take theirs from "
                             "it (warm-up and 60 s at 5,000 tx/s: 300,600)")
    parser.add_argument("--drain-scorers", type=int, nargs="*", default=[1, 2],
                        help="scorer processes of each drain run (none: latency runs only)")
    parser.add_argument("--rates", type=float, nargs="*", default=[2000.0, 5000.0],
                        help="offered tx/s of the latency runs")
    parser.add_argument("--floor-processes", type=int, nargs="*", default=[2],
                        help="processes of each floor drain (benchmarks/stream_floor.py: a fixed "
                             "decision, no scoring) after the scorers' (none: no floor)")
    parser.add_argument("--scorers", type=int, default=2,
                        help="scorer processes of the latency runs")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each latency run")
    parser.add_argument("--mix", choices=("replay", "reshuffled"), default="replay",
                        help="the latency runs' transactions: the backlog replayed in its own "
                             "order and times (the world's mix), or shuffled and cycled with "
                             "due times (velocity far above the world's: most decisions review "
                             "or decline)")
    parser.add_argument("--customers", type=int, default=10_000,
                        help="the world's customers (one card each); terminals: twice as many")
    parser.add_argument("--variant", type=Variant.parse, action="append", dest="variants",
                        help="NAME[:MLSD_KEY=VALUE,...]: scorer settings to measure; given "
                             "several times, every drain and latency run is made once per "
                             "variant, in turns (side by side in one run)")
    parser.add_argument("--warm-up-drain", action=argparse.BooleanOptionalAction, default=True,
                        help=f"an unrecorded drain of the backlog's first {WARM_UP_DRAIN:,} "
                             "transactions before the recorded drains (the broker's JIT "
                             "compiler is busy through a cold broker's first drain)")
    parser.add_argument("--warm-up-run", action=argparse.BooleanOptionalAction, default=True,
                        help="an unrecorded latency run (20 s at the first rate) before the "
                             "recorded ones")
    parser.add_argument("--model-repository", type=Path, default=REPO_ROOT / ".state/models")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports/bench")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    matplotlib.use("Agg")
    if (why := missing_model(args.model_repository)) is not None:
        print(f"refused: {why}", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    world = bench_world(args.customers, args.backlog)
    timeline = Timeline.of(world, args.backlog)
    traffic: Traffic = (ReplayedTransactions(timeline) if args.mix == "replay"
                        else ReshuffledTransactions(timeline.backlog))
    workdir = Path(tempfile.mkdtemp(prefix="fraud-stream-bench-"))
    redis_server = start_redis(workdir)
    try:
        kafka = start_kafka(workdir)
    except BaseException:
        redis_server.stop()
        raise
    try:
        ensure_topics(kafka.address, platform_topics(3))  # transactions: MIN_PARTITIONS (12)
        stack = Stack(redis_server, kafka, {
            "MLSD_REDIS_URL": redis_server.address, "MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka.address,
            "MLSD_MODEL_REPOSITORY": str(args.model_repository),
            "MLSD_FRAUD_POLICY_PATH": str(REPO_ROOT / "config/fraud/policy.toml"),
            # the backlog spans days of the world: none of it is too old to decide here
            "MLSD_FRAUD_STREAM_MAX_AGE_S": str(60 * 86_400), "MLSD_LOG_LEVEL": "WARNING"},
            workdir)
        client = redis.Redis.from_url(redis_server.address)
        state = load_history(client, timeline)
        memory = client.info("memory")["used_memory"]
        client.close()
        variants = args.variants or [DEFAULT_VARIANT]
        if args.drain_scorers and args.warm_up_drain:
            # Unrecorded: the broker starts cold, and its JIT compiler took 8 % of the machine
            # through the first drain of a run (perf, 2026-12-07), whose broker used 0.18 of a
            # core against 0.09-0.10 in the drains after it: the first drain or variant paid it.
            drain(stack, state, timeline, args.drain_scorers[0], variant=variants[0],
                  rows=slice(WARM_UP_DRAIN))
        throughput = [drain(stack, state, timeline, n, variant=v)
                      for n in args.drain_scorers for v in variants]
        floor = [drain(stack, state, timeline, n, FLOOR) for n in args.floor_processes]
        if args.rates and args.warm_up_run:
            # Unrecorded: the stack's first run at rate was slower through its first quarter
            # in every run made (p50 0.2-1.2 s, then 20-30 ms), whichever variant went first;
            # the later runs were not.
            steady(stack, state, traffic, args.rates[0], min(args.seconds, 20.0), args.scorers,
                   variants[0])
        latency = [steady(stack, state, traffic, rate, args.seconds, args.scorers, v)
                   for rate in args.rates for v in variants]
    finally:
        kafka.stop()
        redis_server.stop()
        # The servers' data (2-4 GB of Kafka log a run) goes; their logs and the scorers' stay.
        for data in ("kafka", "redis"):
            shutil.rmtree(workdir / data, ignore_errors=True)
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": {**describe(), "load_avg_before": load_before},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                 if k != "variants"} | {"variants": [v.describe() for v in variants]},
        "state": {"history_days": HISTORY_DAYS, "keys": len(state), "used_memory": memory},
        "world": {"customers": args.customers, "transactions": len(world),
                  "history_transactions": len(timeline.history),
                  "backlog_days": round(timeline.backlog_days, 2),
                  "backlog_cards": int(timeline.backlog.card_id.nunique()),
                  "backlog_fraud_rate": round(float(timeline.backlog.is_fraud.mean()), 5)},
        "throughput": throughput, "floor": floor, "latency": latency,
    }
    report(summary, args.out)
    print(json.dumps({k: v for k, v in summary.items() if k != "latency"}
                     | {"latency": [{k: v for k, v in r.items() if k != "samples_ms"}
                                    for r in latency]}, indent=1))
    print(f"logs: {workdir}; report: {args.out}/fraud_stream.md")
    if degraded := degraded_runs(summary):
        print("FAILED: runs decided without their features or model measured less than the "
              "whole pipeline:\n  " + "\n  ".join(degraded), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
