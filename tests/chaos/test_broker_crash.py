"""Fault 1 of issue 17: kill -9 one Kafka broker while ingest takes load.

Every event ingest acknowledged (202, or listed as accepted in a 503; with the spool, a 202 may
be for events held in ingest's spool and forwarded later) must be on the topic afterwards and
counted once in the online features; refused ones are 503 with Retry-After.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from redis.cluster import RedisCluster

from services.common.bus.envelope import MalformedEvent, decode_event
from services.common.bus.topics import WATCH_EVENTS
from services.common.kafka_access import KafkaAccess
from services.ingest.settings import IngestSettings
from tests.chaos.elections import active_controller, election_after_kill, session_settings
from tests.chaos.load import Answer, open_loop, percentile, write_report
from tests.e2e.conftest import StartService
from tests.harness import ClusterTopology

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.chaos]

RATE = 40.0  # requests a second, open loop
EVENTS_PER_REQUEST = 10  # 400 events a second: modest, the machine has two shared cores
DURATION_S = 30.0
KILL_AT_S, RESTART_AT_S = 8.0, 18.0
TITLES = 20
# a client waits this long: requests queued behind ones blocked on the election take seconds
CLIENT_TIMEOUT_S = 30.0
BUDGET_MS = 100.0  # ingest's latency budget (the soak's)
# ingest's shedding bound (MLSD_INGEST_SHED_AFTER_S; set it past the delivery timeout to run
# without shedding, for a comparison in one session)
SHED_AFTER_S = float(os.environ.get("MLSD_INGEST_SHED_AFTER_S",
                                    IngestSettings.model_fields["ingest_shed_after_s"].default))
# ingest's spool (MLSD_INGEST_SPOOL_ENABLED=false runs without it, for a comparison)
SPOOL = os.environ.get("MLSD_INGEST_SPOOL_ENABLED", str(
    IngestSettings.model_fields["ingest_spool_enabled"].default)).lower() in ("1", "true")
# Whom to kill: the leader of watch-events partition 0 (by default, whichever node that is), or
# the active controller, so the controller's own election is measured in every run
# (benchmarks/controller_election_runs.sh) instead of in the runs that happen to pick it.
VICTIM = os.environ.get("MLSD_CHAOS_BROKER_VICTIM", "partition-leader")


def leader_of(kafka: KafkaAccess, topic: str, partition: int = 0) -> int:
    admin = KafkaAdminClient(**kafka.python_config())
    try:
        [described] = admin.describe_topics([topic])
    finally:
        admin.close()
    return int(next(p["leader_id"] for p in described["partitions"]
                    if p["partition_index"] == partition))


def choose_victim(topology: ClusterTopology) -> str:
    """The node VICTIM names: the active controller, or watch-events partition 0's leader."""
    if VICTIM == "controller":
        controller = active_controller({name: topology.servers[name].log_path
                                        for name in topology.kafka_names})
        assert controller is not None, "no node logged a win of the controller quorum"
        return controller
    return f"kafka-{leader_of(topology.kafka_access, WATCH_EVENTS)}"


def in_sync_everywhere(kafka: KafkaAccess, topic: str) -> bool:
    admin = KafkaAdminClient(**kafka.python_config())
    try:
        [described] = admin.describe_topics([topic])
    finally:
        admin.close()
    return all(len(p["isr_nodes"]) == 3 for p in described["partitions"])


def await_in_sync(kafka: KafkaAccess, topic: str, timeout_s: float = 90.0) -> float:
    """When (monotonic) every partition of `topic` had all three replicas in sync again."""
    deadline = time.monotonic() + timeout_s
    while not in_sync_everywhere(kafka, topic):
        assert time.monotonic() < deadline, "the restarted broker never caught up"
        time.sleep(0.5)
    return time.monotonic()


def kill_to_first_202_s(answers: list[Answer], killed_at: float) -> float | None:
    """Fault 1's gap: from the kill to the first 202 answered to a request sent after it. Each
    request carries ten events over the three partitions, so it needs the dead broker's
    partition led again (and the in-sync sets shrunk to the live brokers) to be acknowledged."""
    done = [a.sent_s + a.latency_ms / 1000 for a in answers
            if a.status == 202 and a.sent_s >= killed_at]
    return round(min(done) - killed_at, 2) if done else None


def late_answers(answers: list[Answer], killed_at: float, restarted_at: float
                 ) -> dict[str, Any]:
    """Answers past ingest's budget, by status: a late 202 is what shedding is meant to turn
    into a fast 503; the 503s' own latency says whether they came fast (shed) or after the
    delivery timeout (sent, not acknowledged). The share of the busy machine's own noise shows
    in the late answers sent outside the broker's outage."""
    late = [a for a in answers if a.latency_ms > BUDGET_MS]
    refused = [a.latency_ms for a in answers if a.status == 503]
    outage = [a for a in late if killed_at - 1 <= a.sent_s < restarted_at]
    return {"budget_ms": BUDGET_MS, "over_budget": len(late),
            "over_budget_sent_in_the_outage": len(outage),
            "over_budget_by_status": {str(k): v for k, v in
                                      sorted(Counter(a.status for a in late).items())},
            "over_1s": sum(a.latency_ms > 1000 for a in answers),
            "refused_503_latency_ms": {"p50": round(percentile(refused, 50), 1),
                                       "max": round(max(refused), 1)} if refused else None}


def await_spool_drained(ingest_url: str, timeout_s: float = 90.0) -> float:
    """Seconds until ingest's spool was empty (every spooled event acknowledged by the broker);
    0.0 at once without a spool (the gauge reads 0)."""
    started = time.monotonic()
    while True:
        text = httpx.get(f"{ingest_url}/metrics", timeout=5).text
        depth = next((float(line.split()[-1]) for line in text.splitlines()
                      if line.startswith("ingest_spool_depth_events ")), 0.0)
        if depth == 0.0:
            return round(time.monotonic() - started, 2)
        assert time.monotonic() - started < timeout_s, f"{depth:.0f} events still spooled"
        time.sleep(0.5)


class Told:
    """What ingest's answers said: the ids it acknowledged (202, or accepted inside a 503),
    those of them in its spool, and the refusals without a Retry-After."""

    def __init__(self) -> None:
        self.acknowledged: set[str] = set()
        self.spooled: set[str] = set()
        self.spooled_202s = 0
        self.refused_without_retry_after = 0

    def note(self, response: httpx.Response) -> None:
        if response.status_code in (202, 503):
            self.acknowledged.update(response.json()["accepted"])
            held = response.json().get("spooled", [])
            self.spooled.update(held)
            self.spooled_202s += bool(held) and response.status_code == 202
        if response.status_code == 503 and "retry-after" not in response.headers:
            self.refused_without_retry_after += 1


def ids_on_topic(kafka: KafkaAccess, topic: str, prefix: str) -> Counter[str]:
    """Every event id on the topic that starts with `prefix`, with how many records carry it."""
    consumer = KafkaConsumer(**kafka.python_config(), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        end = consumer.end_offsets(partitions)
        found: Counter[str] = Counter()
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    try:
                        event_id = decode_event(record.value).id
                    except MalformedEvent:
                        continue
                    if event_id.startswith(prefix):
                        found[event_id] += 1
        return found
    finally:
        consumer.close()


def test_a_broker_killed_under_ingest_load_loses_no_acknowledged_event(
        on_cluster: StartService, cluster_topology: ClusterTopology,
        cluster_client: RedisCluster, report_dir: Path) -> None:
    on_cluster("stream", MLSD_STREAM_CONCERNS="watch-features")
    ingest = on_cluster("ingest")
    run = f"bc{uuid.uuid4().hex[:8]}"
    at = datetime.now(UTC)
    told = Told()

    async def send(client: httpx.AsyncClient, n: int) -> tuple[int, dict[str, Any]]:
        events = [{"id": f"{run}-{n}-{k}", "type": "watch", "source": "chaos",
                   "time": at.isoformat(),
                   "data": {"user_id": f"u{(n * EVENTS_PER_REQUEST + k) % 500}",
                            "content_id": f"c{run}-{k % TITLES}", "watch_seconds": 60,
                            "completed": False}} for k in range(EVENTS_PER_REQUEST)]
        response = await client.post(f"{ingest.url}/v1/events", json={"events": events})
        told.note(response)
        return response.status_code, {}

    victim = choose_victim(cluster_topology)
    marks: dict[str, float] = {}
    walls: dict[str, datetime] = {}  # the brokers' logs are read on the wall clock

    def mark(what: str) -> None:
        marks[what], walls[what] = time.monotonic(), datetime.now(UTC)

    def kill() -> None:
        mark("killed")
        cluster_topology.kill(victim)

    def restart() -> None:
        mark("restarting")
        cluster_topology.restart(victim)
        marks["restarted"] = time.monotonic()

    started = datetime.now(UTC)
    load_start = time.monotonic()
    answers = open_loop(send, RATE, DURATION_S, [(KILL_AT_S, kill), (RESTART_AT_S, restart)],
                        timeout_s=CLIENT_TIMEOUT_S)
    drained_after_s = await_spool_drained(ingest.url)
    back_in_sync = await_in_sync(cluster_topology.kafka_access, WATCH_EVENTS)

    found = ids_on_topic(cluster_topology.kafka_access, WATCH_EVENTS, f"{run}-")
    acknowledged = told.acknowledged
    lost = acknowledged - found.keys()
    day_key = f"fs:title_watches:{{global}}:{at:%Y-%m-%d}"
    titles = [f"c{run}-{k}" for k in range(TITLES)]

    def applied() -> int:
        return sum(int(v or 0) for v in cluster_client.hmget(day_key, titles))

    deadline = time.monotonic() + 90
    while applied() < len(found) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)  # a double count would show now

    statuses = Counter(a.status for a in answers)
    killed_at = marks["killed"] - load_start
    not_accepted = [a.sent_s for a in answers if a.status != 202]
    election = election_after_kill(
        [cluster_topology.servers[name].log_path
         for name in cluster_topology.kafka_names if name != victim],
        int(victim.removeprefix("kafka-")), walls["killed"], walls["restarting"])
    results = {
        "requests": len(answers), "events_sent": len(answers) * EVENTS_PER_REQUEST,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "events_acknowledged": len(acknowledged),
        "answers_202_spooled": told.spooled_202s,
        "events_spooled": len(told.spooled),
        "spool_drained_after_load_s": drained_after_s,
        "events_on_topic": len(found),
        "events_on_topic_not_acknowledged": len(found.keys() - acknowledged),
        "lost": len(lost),
        "duplicate_records_on_topic": sum(found.values()) - len(found),
        "applied_to_online_features": applied(),
        "refused_503_without_retry_after": told.refused_without_retry_after,
        "victim": victim,
        "killed_at_s": round(killed_at, 2),
        "first_not_202_after_kill_s": round(min(not_accepted) - killed_at, 2)
        if not_accepted else None,
        "last_not_202_after_kill_s": round(max(not_accepted) - killed_at, 2)
        if not_accepted else None,
        "kill_to_first_202_s": kill_to_first_202_s(answers, killed_at),
        **election,
        "restart_to_in_sync_s": round(back_in_sync - marks["restarting"], 2),
        "late_answers": late_answers(answers, killed_at, marks["restarting"] - load_start),
        "latency_ms": {"p50": round(percentile([a.latency_ms for a in answers], 50), 1),
                       "p99": round(percentile([a.latency_ms for a in answers], 99), 1),
                       "max": round(max(a.latency_ms for a in answers), 1)},
    }
    write_report(report_dir, "broker_crash",
                 "kill -9 the leader broker of watch-events partition 0 while ingest takes an "
                 "open-loop load; restart it later; count acknowledged events on the topic and "
                 "in the online features",
                 started, {"rate_requests_per_s": RATE, "events_per_request": EVENTS_PER_REQUEST,
                           "duration_s": DURATION_S, "kill_at_s": KILL_AT_S,
                           "restart_at_s": RESTART_AT_S, "ingest_delivery_timeout_s": 5.0,
                           "ingest_shed_after_s": SHED_AFTER_S, "ingest_spool": SPOOL,
                           "ingest_spool_after_s": IngestSettings().ingest_spool_after_s,
                           "victim_chosen_as": VICTIM,
                           "client_timeout_s": CLIENT_TIMEOUT_S,
                           "producer_retry_backoff_max_ms": IngestSettings()
                           .kafka_retry_backoff_max_ms,
                           **session_settings(cluster_topology.servers["kafka-1"].log_path)},
                 results, answers)

    assert set(statuses) <= {202, 503}, statuses
    assert told.refused_without_retry_after == 0
    assert not lost, f"{len(lost)} acknowledged events are not on the topic"
    assert applied() == len(found), "each stored event counted exactly once in the features"
    assert statuses[202] > 0 and answers[-1].status == 202, "ingest never recovered"
