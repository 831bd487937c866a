"""A Kafka broker's CPU in its first seconds, and its steady cost, under JVM settings side by side.

    PYTHONPATH=. .venv/bin/python benchmarks/broker_start.py [--turns 2]
        [--variants default,appcds,c1,appcds+c1] [--messages 100000] [--warm-s 0]
        [--no-restart] [--out benchmarks/results/broker_start.json]

`make run-cluster`'s three KRaft nodes (infra/kafka/cluster-node.sh, SASL/SCRAM, the
authorizer) on free loopback ports, no Redis, started once a variant a turn, the variants in
turns (A B C, A B C). For each start:

1. cold start: the three nodes launched at once (a fresh cluster, as the soak's harness
   starts one): each server JVM's CPU seconds in its first 10, 20 and 30 s (cumulative
   /proc/<pid>/stat since the process began, sampled every 0.25 s) and when it answered an
   authenticated client;
2. steady cost: --messages records of 200 bytes produced with acks=all to a topic of 3
   partitions, replication factor 3 (min.insync.replicas 2), twice (the first pass warms, the
   second is measured), then consumed once: the brokers' CPU microseconds a record and the
   records a second (producer and consumer are one librdkafka client each in this process, on
   the same two cores). With --warm-s, warming passes go on until that long after the cluster
   was ready (the C2 compiler goes on compiling for minutes), and the measured pass goes to a
   topic of its own, consumed alone;
3. restart into the running cluster: one node killed (-9), started again and measured as in 1,
   as the soak's broker kills do (it catches up the replicated records too).

Variants (KAFKA_NODE_CDS_ARCHIVE and KAFKA_NODE_TIERED_STOP_AT_LEVEL of cluster-node.sh; the
runs committed before ADR 0011 set C1 through KAFKA_NODE_JVM_OPTS, the same option):
    default   no archive, tiered compilation (C1 then C2): the nodes as before ADR 0011
    appcds    the AppCDS archive of a node's start (services/devstack/kafka_cds.py), made once
              by this run into its own folder before the first turn
    c1        -XX:TieredStopAtLevel=1: the C1 compiler only, no C2
    appcds+c1 both

Writes the JSON (date, machine, versions, load average, every sample's summary) and prints a
table of the medians. Heavy: run it under the machine's lock (flock /work/heavy.lock).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka import version as confluent_version

from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import TopicSpec
from services.common.machine import describe as describe_machine
from services.devstack.kafka_cds import archive_path, kafka_version, make_archive
from services.devstack.servers import ClusterTopology, start_cluster_topology

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT = REPO_ROOT / "benchmarks/results/broker_start.json"
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
MARKS_S = (10, 20, 30)
RECORD = b"x" * 200


def variant_env(name: str, archive: Path) -> dict[str, str]:
    return {"KAFKA_NODE_CDS_ARCHIVE": str(archive) if "appcds" in name else "",
            "KAFKA_NODE_TIERED_STOP_AT_LEVEL": "1" if "c1" in name else "",
            "KAFKA_NODE_JVM_OPTS": ""}


def process_cpu_s(pid: int) -> float:
    """User + system seconds of one process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


@dataclass
class StartWatch:
    """Every server JVM (cmdline with kafka.Kafka and `marker`) found while it runs: its CPU,
    sampled every 0.25 s, against the seconds since the script exec'd the server (found within
    0.25 s of it; the script's own steps before, such as a first start's storage format in a
    JVM of its own, are not counted)."""

    marker: str
    samples: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)
    _cpu0: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> StartWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                pid = int(entry.name)
                try:
                    if pid not in self.started:
                        cmdline = (entry / "cmdline").read_bytes()
                        if b"kafka.Kafka" not in cmdline or self.marker.encode() not in cmdline:
                            continue
                        self.started[pid] = time.time()
                        self._cpu0[pid] = process_cpu_s(pid)
                        self.samples[pid] = []
                    cpu = process_cpu_s(pid) - self._cpu0[pid]
                    self.samples[pid].append((time.time() - self.started[pid], cpu))
                except (FileNotFoundError, ProcessLookupError):
                    continue
            self._stop.wait(0.25)

    def cpu_at(self, pid: int, mark_s: float) -> float | None:
        """CPU seconds in the server's first mark_s seconds (the last sample at or before it;
        None when it was not sampled until then)."""
        before = [cpu for age, cpu in self.samples.get(pid, []) if age <= mark_s]
        after = [age for age, _ in self.samples.get(pid, []) if age >= mark_s]
        return round(before[-1], 2) if before and after else None

def wait_until_age(started_at: float, age_s: float) -> None:
    time.sleep(max(0.0, started_at + age_s - time.time()))


def start_profile(watch: StartWatch, pid: int, ready_at: float) -> dict[str, Any]:
    began = watch.started.get(pid)
    return {"ready_s": round(ready_at - began, 2) if began else None,
            **{f"cpu_first_{mark}s": watch.cpu_at(pid, mark) for mark in MARKS_S}}


def brokers_cpu(topology: ClusterTopology) -> float:
    return sum(process_cpu_s(server.process.pid) for name, server in topology.servers.items()
               if name.startswith("kafka-"))


def produce(config: dict[str, str], topic: str, count: int) -> float:
    producer = Producer({**config, "acks": "all", "linger.ms": "5", "enable.idempotence": "true",
                         "compression.type": "none"})
    began = time.perf_counter()
    for n in range(count):
        while True:
            try:
                producer.produce(topic, RECORD, key=str(n % 1000).encode())
                break
            except BufferError:
                producer.poll(0.05)
        if n % 1000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("records left unacknowledged after 120 s")
    return time.perf_counter() - began


def consume(config: dict[str, str], topic: str, count: int) -> float:
    consumer = Consumer({**config, "group.id": "mlsd-broker-start", "auto.offset.reset":
                         "earliest", "enable.auto.commit": "false"})
    consumer.subscribe([topic])
    seen, began = 0, time.perf_counter()
    deadline = began + 180
    while seen < count and time.perf_counter() < deadline:
        for message in consumer.consume(1000, 1.0):
            if message.error() is None:
                seen += 1
    consumer.close()
    if seen < count:
        raise RuntimeError(f"consumed {seen} of {count} records in 180 s")
    return time.perf_counter() - began


def steady(topology: ClusterTopology, messages: int, warm_until: float | None
           ) -> dict[str, Any]:
    """One warming pass and one measured (then everything consumed); or, given `warm_until`
    (a Unix time), warming passes to a topic of their own until then, and the measured pass to
    another, consumed alone: the compilers have had that long to finish."""
    access = topology.kafka_admin_access
    config = access.librdkafka_config()
    warm_topic = "bench-broker-start"
    topic = warm_topic if warm_until is None else "bench-broker-start-measured"
    ensure_topics(access, [TopicSpec(warm_topic, 3, 3), TopicSpec(topic, 3, 3)])  # min ISR 2
    phases: dict[str, Any] = {}
    for phase in ("produce_warm", "produce", "consume"):
        cpu_before, load = brokers_cpu(topology), os.getloadavg()[0]
        records = messages
        if phase == "produce_warm":
            seconds = produce(config, warm_topic, messages)
            while warm_until is not None and time.time() < warm_until:
                seconds += produce(config, warm_topic, messages)
                records += messages
        elif phase == "produce":
            seconds = produce(config, topic, messages)
        else:
            records = messages * (2 if warm_until is None else 1)
            seconds = consume(config, topic, records)
        cpu = brokers_cpu(topology) - cpu_before
        phases[phase] = {"records": records, "seconds": round(seconds, 2),
                         "records_per_s": round(records / seconds),
                         "brokers_cpu_s": round(cpu, 2),
                         "brokers_cpu_us_per_record": round(cpu / records * 1e6, 1),
                         "load_average_before": load}
        print(f"    {phase}: {records / seconds:,.0f} records/s, brokers "
              f"{cpu / records * 1e6:.1f} us a record", flush=True)
    return phases


def one_start(variant: str, archive: Path, messages: int, turn: int, warm_s: float,
              restart_one: bool) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"broker-start-{variant}-"))
    load_before = list(os.getloadavg())
    with StartWatch(str(workdir)) as watch:
        topology = start_cluster_topology(workdir, "", redis_masters=0,
                                          kafka_env=variant_env(variant, archive))
        ready_at = time.time()
        try:
            pids = {name: topology.servers[name].process.pid for name in topology.kafka_names}
            last_start = max(watch.started.get(pid, ready_at) for pid in pids.values())
            wait_until_age(last_start, max(MARKS_S) + 0.5)
            cold = {name: start_profile(watch, pid, ready_at) for name, pid in pids.items()}
            print(f"  turn {turn} {variant}: cold start "
                  + ", ".join(f"{n} {p['cpu_first_10s']}/{p['cpu_first_20s']} s"
                              for n, p in cold.items()), flush=True)
            phases = steady(topology, messages, ready_at + warm_s if warm_s else None)
            restart: dict[str, Any] = {}
            if not restart_one:
                return {"variant": variant, "turn": turn, "env": variant_env(variant, archive),
                        "load_average_before": load_before,
                        "load_average_after": list(os.getloadavg()), "cold_start": cold,
                        "steady": phases, "restart": restart, "workdir": str(workdir)}
            victim = topology.kafka_names[1]
            topology.kill(victim)
            time.sleep(2.0)
            topology.restart(victim)
            restarted_at = time.time()
            pid = topology.servers[victim].process.pid
            wait_until_age(watch.started.get(pid, restarted_at), max(MARKS_S) + 0.5)
            restart[victim] = start_profile(watch, pid, restarted_at)
            print(f"  turn {turn} {variant}: restart {restart[victim]}", flush=True)
        finally:
            topology.stop()
    return {"variant": variant, "turn": turn, "env": variant_env(variant, archive),
            "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
            "cold_start": cold, "steady": phases, "restart": restart, "workdir": str(workdir)}


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def summarize(runs: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant]
        cold = [p for r in mine for p in r["cold_start"].values()]
        restart = [p for r in mine for p in r["restart"].values()]
        summary[variant] = {
            "starts": len(mine), "broker_starts_cold": len(cold),
            "broker_starts_restart": len(restart),
            **{f"cold_cpu_first_{m}s": median([p[f"cpu_first_{m}s"] for p in cold])
               for m in MARKS_S},
            "cold_ready_s": median([p["ready_s"] for p in cold]),
            **{f"restart_cpu_first_{m}s": median([p[f"cpu_first_{m}s"] for p in restart])
               for m in MARKS_S},
            "restart_ready_s": median([p["ready_s"] for p in restart]),
            **{f"{phase}_records_per_s": median([r["steady"][phase]["records_per_s"]
                                                 for r in mine])
               for phase in ("produce", "consume")},
            **{f"{phase}_brokers_cpu_us_per_record":
               median([r["steady"][phase]["brokers_cpu_us_per_record"] for r in mine])
               for phase in ("produce", "consume")},
        }
    return summary


def java_version() -> str:
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=True)
    return out.stderr.splitlines()[1].strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--variants", default="default,appcds,c1,appcds+c1")
    parser.add_argument("--messages", type=int, default=150_000)
    parser.add_argument("--warm-s", type=float, default=0.0,
                        help="produce to a warming topic until this long after the cluster was "
                             "ready, then measure on a topic of its own (0: one warming pass)")
    parser.add_argument("--no-restart", action="store_true",
                        help="skip step 3 (the restart into the running cluster)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    variants = args.variants.split(",")
    machine = describe_machine()
    started = datetime.now(UTC)
    # the checkout's archive, as the nodes use it; made first (timed) when missing, before any
    # turn: start_cluster_topology would otherwise make it inside the first turn's measurement
    archive = archive_path()
    archive_s = None if archive.exists() else make_archive(archive)
    if archive_s is not None:
        print(f"archive: {archive.stat().st_size / 1e6:.1f} MB in {archive_s:.1f} s", flush=True)
    runs = []
    for turn in range(1, args.turns + 1):
        for variant in variants:
            runs.append(one_start(variant, archive, args.messages, turn, args.warm_s,
                                  not args.no_restart))
    summary = summarize(runs, variants)
    result = {
        "what": "a Kafka node's CPU in its first 10/20/30 s (a fresh 3-node cluster's cold "
                "start, and one node restarted into the running cluster) and the brokers' "
                "steady cost a record, per JVM setting, the settings in turns",
        "date": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine, "load_average_after": list(os.getloadavg()),
        "versions": {"kafka": kafka_version(), "java": java_version(),
                     "confluent_kafka": confluent_version()},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "archive": {"bytes": archive.stat().st_size if archive.exists() else None,
                    "made_in_s": round(archive_s, 1) if archive_s else None},
        "order": [f"{r['turn']}:{r['variant']}" for r in runs],
        "summary": summary, "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"result: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
