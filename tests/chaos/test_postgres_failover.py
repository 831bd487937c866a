"""PostgreSQL past one server (issue 17): kill -9 the primary while the records service writes
the decisions of a fraud load.

The cluster topology's PostgreSQL is a primary and a synchronous hot standby under
pg_auto_failover's monitor (docs/adr/0010-postgres-primary-and-standby.md). The primary is
killed whole (pg_autoctl and its PostgreSQL, as a lost machine); the monitor promotes the
standby; the records service, whose settings name both servers (MLSD_POSTGRES_HOSTS, libpq's
target_session_attrs=read-write), reconnects to it and goes on. Afterwards every decision on
fraud-decisions is in PostgreSQL exactly once, counted by transaction id; the old primary,
started again, rejoins as the standby.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from services.common.bus.topics import FRAUD_DECISIONS
from services.devstack.cluster import superuser_conninfo
from services.records.settings import RecordsSettings
from services.trainer.feedback import read_topic
from tests.chaos.load import open_loop, percentile, transaction, write_report
from tests.e2e.conftest import ServiceProcess, StartService
from tests.harness import ClusterTopology, PostgresFormation

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.chaos]

RATE = 40.0  # fraud scores a second, open loop: each a decision on fraud-decisions
DURATION_S = 45.0
KILL_AT_S, RESTART_AT_S = 10.0, 35.0
SAMPLE_EVERY_S = 0.25
GROUP = RecordsSettings().records_decisions_group


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic
    rows: int | None  # the run's decisions in PostgreSQL; None: no server took a connection
    port: int | None  # which server answered


class RecordWatch:
    """Every SAMPLE_EVERY_S, through the same multi-host settings as the services: which server
    takes writes, and how many of the run's decisions it holds."""

    def __init__(self, formation: PostgresFormation, run: str) -> None:
        self._conninfo = formation.settings.conninfo("chaos-watch")
        self._run = run
        self.samples: list[Sample] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="record-watch")

    def __enter__(self) -> RecordWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stopping.wait(SAMPLE_EVERY_S):
            self.samples.append(self.sample())

    def sample(self) -> Sample:
        try:
            with psycopg.connect(self._conninfo, connect_timeout=1, autocommit=True) as conn:
                row = conn.execute("SELECT count(*), inet_server_port() FROM fraud_decisions"
                                   " WHERE transaction_id LIKE %s", (f"{self._run}-%",)).fetchone()
        except psycopg.Error:
            return Sample(time.monotonic(), None, None)
        assert row is not None
        return Sample(time.monotonic(), int(row[0]), int(row[1]))

    def recovery(self, killed_at: float) -> dict[str, float | None]:
        """From the kill: the first write-taking connection again (the promotion, as a client
        sees it), and the first decision the records service wrote after it."""
        after = [s for s in self.samples if s.at > killed_at]
        promoted = next((s for s in after if s.rows is not None), None)
        if promoted is None:
            return {"kill_to_writable_s": None, "kill_to_records_writing_s": None}
        writing = next((s for s in after if s.at > promoted.at and s.rows is not None
                        and promoted.rows is not None and s.rows > promoted.rows), None)
        unreachable = [s for s in after if s.rows is None and s.at < promoted.at]
        return {"kill_to_writable_s": round(promoted.at - killed_at, 2),
                "kill_to_records_writing_s": round(writing.at - killed_at, 2)
                if writing else None,
                "samples_without_a_writable_server": len(unreachable)}


def decisions_in_postgres(formation: PostgresFormation, run: str) -> Counter[str]:
    """transaction id -> its rows in fraud_decisions, for the run's transactions."""
    with psycopg.connect(formation.settings.conninfo("chaos-count"), autocommit=True) as conn:
        rows = conn.execute("SELECT transaction_id, count(*) FROM fraud_decisions"
                            " WHERE transaction_id LIKE %s GROUP BY 1", (f"{run}-%",)).fetchall()
    return Counter({str(tid): int(n) for tid, n in rows})


def decisions_on_topic(topology: ClusterTopology, run: str) -> Counter[str]:
    """transaction id -> its records on fraud-decisions, for the run's transactions."""
    return Counter(str(d["transaction_id"]) for d in read_topic(topology.kafka_access,
                                                                FRAUD_DECISIONS)
                   if str(d.get("transaction_id", "")).startswith(f"{run}-"))


def metric(service: ServiceProcess, name: str, **labels: str) -> float:
    """A counter of the service's /metrics (0 when the series is not there)."""
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def standby_streaming(formation: PostgresFormation, name: str) -> bool:
    """`name` is the standby, streaming synchronously from the primary."""
    primary = formation.primary()
    if primary is None or formation.roles().get(name) != "standby":
        return False
    # the superuser: pg_stat_replication shows a role without pg_read_all_stats no state
    with psycopg.connect(superuser_conninfo(formation.address(primary),
                                            formation.settings.postgres_db),
                         autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                           " AND sync_state IN ('sync', 'quorum')").fetchone()
    return row is not None and row[0] >= 1


def await_recorded(formation: PostgresFormation, run: str, on_topic: Counter[str],
                   records: ServiceProcess, timeout_s: float = 90.0) -> float:
    """When (monotonic) every decision on the topic was in PostgreSQL, or the time ran out."""
    deadline = time.monotonic() + timeout_s
    while not on_topic.keys() <= decisions_in_postgres(formation, run).keys():
        assert records.process.poll() is None, f"records ended:\n{records.log_tail()}"
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return time.monotonic()


def await_standby(formation: PostgresFormation, name: str, timeout_s: float = 90.0
                  ) -> float | None:
    """When (monotonic) `name` streamed again as the synchronous standby; None if it did not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if standby_streaming(formation, name):
            return time.monotonic()
        time.sleep(0.5)
    return None


def test_the_primary_killed_under_fraud_load_loses_no_decision_of_record(
        on_cluster: StartService, cluster_topology: ClusterTopology,
        postgres_formation: PostgresFormation, report_dir: Path) -> None:
    formation = postgres_formation
    postgres = {"MLSD_POSTGRES_HOSTS": formation.settings.postgres_hosts}
    records = on_cluster("records", **postgres)
    fraud = on_cluster("fraud", **postgres)
    run = f"pg{uuid.uuid4().hex[:8]}"
    victim = formation.primary()
    assert victim is not None, formation.roles()
    survivor = next(name for name in formation.data_names if name != victim)

    async def send(client: httpx.AsyncClient, n: int) -> tuple[int, dict[str, Any]]:
        response = await client.post(f"{fraud.url}/v1/score", json=transaction(run, n))
        return response.status_code, {}

    marks: dict[str, float] = {}

    def kill() -> None:
        marks["killed"] = time.monotonic()
        formation.kill(victim)

    def restart() -> None:
        marks["restarting"] = time.monotonic()
        formation.restart(victim)

    started = datetime.now(UTC)
    load_start = time.monotonic()
    with RecordWatch(formation, run) as watch:
        answers = open_loop(send, RATE, DURATION_S, [(KILL_AT_S, kill), (RESTART_AT_S, restart)])
        on_topic = decisions_on_topic(cluster_topology, run)
        caught_up = await_recorded(formation, run, on_topic, records)
    rejoined = await_standby(formation, victim)
    time.sleep(2.0)  # a late double write would show now
    in_postgres = decisions_in_postgres(formation, run)

    statuses = Counter(a.status for a in answers)
    lost = on_topic.keys() - in_postgres.keys()
    handled = metric(records, "records_consumer_events_total", group=GROUP, outcome="handled")
    retries = metric(records, "records_consumer_retries_total", group=GROUP)
    warnings = len(re.findall("transient error, retrying", records.log_tail(100_000)))
    results = {
        "requests": len(answers),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "decisions_on_topic": len(on_topic),
        "decision_records_on_topic": sum(on_topic.values()),
        "decisions_in_postgres": len(in_postgres),
        "lost": len(lost),
        "rows_beyond_one_per_transaction": sum(in_postgres.values()) - len(in_postgres),
        "in_postgres_not_on_topic": len(in_postgres.keys() - on_topic.keys()),
        "records_events_handled": int(handled),
        "duplicates_absorbed": int(handled) - len(in_postgres),
        "records_consumer_retries": int(retries),
        "records_retry_warnings_logged": warnings,
        "records_process_alive": records.process.poll() is None,
        "victim": victim, "promoted": survivor,
        "roles_after": formation.roles(),
        "killed_at_s": round(marks["killed"] - load_start, 2),
        **watch.recovery(marks["killed"]),
        "load_end_to_all_in_postgres_s": round(caught_up - (load_start + DURATION_S), 2),
        "restart_to_streaming_standby_s": round(rejoined - marks["restarting"], 2)
        if rejoined else None,
        "fraud_latency_ms": {"p50": round(percentile([a.latency_ms for a in answers], 50), 1),
                             "p99": round(percentile([a.latency_ms for a in answers], 99), 1),
                             "max": round(max(a.latency_ms for a in answers), 1)},
    }
    write_report(report_dir, "postgres_failover",
                 "kill -9 the PostgreSQL primary (pg_autoctl and its server, as a lost machine) "
                 "while the records service writes the decisions of an open-loop fraud load; "
                 "pg_auto_failover promotes the synchronous standby; restart the old primary "
                 "later; count every decision on fraud-decisions in PostgreSQL by transaction id",
                 started, {"rate_requests_per_s": RATE, "duration_s": DURATION_S,
                           "kill_at_s": KILL_AT_S, "restart_at_s": RESTART_AT_S,
                           "postgres": "pg_auto_failover 2.0 (Debian), PostgreSQL "
                                       f"{formation.server_version()}: monitor + primary + "
                                       "synchronous hot standby, synchronous_commit=on",
                           "failover_timing": formation.failover_timing(),
                           "records_max_batch": RecordsSettings().records_max_batch,
                           "records_commit_interval_s":
                               RecordsSettings().records_commit_interval_s},
                 results, answers)

    assert not lost, f"{len(lost)} decisions on fraud-decisions are not in PostgreSQL"
    assert results["rows_beyond_one_per_transaction"] == 0
    assert len(on_topic) > 0 and statuses[200] > 0
    assert records.process.poll() is None, "the records service ended instead of reconnecting"
    assert results["kill_to_records_writing_s"] is not None, "records never wrote again"
    assert formation.primary() == survivor
    assert rejoined is not None, "the old primary never rejoined as a streaming standby"
