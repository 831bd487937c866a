"""The cluster topology's PostgreSQL on real servers: a primary and a synchronous hot standby
under pg_auto_failover (docs/adr/0010-postgres-primary-and-standby.md).

A commit returned is on the standby too; a client naming both servers reaches the primary in
either order; after the primary is lost, the same pool writes to the promoted standby.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from services.common.records.pool import records_pool
from services.common.records.settings import PostgresSettings
from services.designs.fraud.records import DecisionOfRecord, PostgresDecisionRecords
from services.designs.payloads import FraudDecisionData
from services.devstack.cluster import superuser_conninfo
from tests.harness import PostgresFormation

pytestmark = pytest.mark.integration


def decision(transaction_id: str) -> DecisionOfRecord:
    at = datetime.now(UTC)
    data = FraudDecisionData.model_validate({
        "transaction_id": transaction_id, "card_id": "card1", "user_id": "cust1",
        "transaction_time": at.isoformat(), "amount": 12.5, "path": "http",
        "risk_score": 0.1, "risk_level": "low", "action": "approve", "reason_codes": [],
        "rule_hits": [], "ml_score": 0.1, "model_version": 1, "policy_version": "p1",
        "degraded": [], "features": [1.0]})
    return DecisionOfRecord(f"e-{transaction_id}", at, data)


@pytest.fixture(scope="module")
def pool(postgres_formation: PostgresFormation) -> Iterator[ConnectionPool]:
    opened = records_pool(postgres_formation.settings, "formation-test")
    yield opened
    opened.close()


def on_standby(formation: PostgresFormation, query: str, *args: object) -> object:
    standby = next(n for n, role in formation.roles().items() if role == "standby")
    with psycopg.connect(superuser_conninfo(formation.address(standby),
                                            formation.settings.postgres_db),
                         autocommit=True) as conn:
        row = conn.execute(query, args).fetchone()
    return None if row is None else row[0]


def test_a_commit_returned_is_on_the_synchronous_standby(
        postgres_formation: PostgresFormation, pool: ConnectionPool) -> None:
    primary = postgres_formation.primary()
    assert primary is not None
    # the superuser: pg_stat_replication shows a role without pg_read_all_stats no state
    with psycopg.connect(superuser_conninfo(postgres_formation.address(primary),
                                            postgres_formation.settings.postgres_db),
                         autocommit=True) as conn:
        names = conn.execute("SHOW synchronous_standby_names").fetchone()
        commit = conn.execute("SHOW synchronous_commit").fetchone()
        states = conn.execute("SELECT sync_state FROM pg_stat_replication").fetchall()
    assert names is not None and names[0].startswith("ANY 1 (pgautofailover_standby_")
    assert commit == ("on",)
    assert states == [("quorum",)]  # ANY 1 of one standby: it must confirm every commit
    PostgresDecisionRecords(pool).write([decision("sync-1")])
    # flushed on the standby before the commit returned; applied there a moment later
    deadline = time.monotonic() + 5
    while on_standby(postgres_formation, "SELECT count(*) FROM fraud_decisions"
                     " WHERE transaction_id = %s", "sync-1") != 1:
        assert time.monotonic() < deadline, "the committed row never showed on the standby"
        time.sleep(0.1)


def test_both_servers_named_in_either_order_reach_the_primary(
        postgres_formation: PostgresFormation) -> None:
    primary = postgres_formation.primary()
    assert primary is not None
    hosts = postgres_formation.settings.postgres_hosts.split(",")
    for order in (hosts, hosts[::-1]):
        settings = PostgresSettings(postgres_hosts=",".join(order))
        with psycopg.connect(settings.conninfo("order-test"), autocommit=True) as conn:
            row = conn.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone()
        assert row == (int(postgres_formation.address(primary).split(":")[1]), False)


def test_after_the_primary_is_lost_the_same_pool_writes_to_the_promoted_standby(
        postgres_formation: PostgresFormation, pool: ConnectionPool) -> None:
    records = PostgresDecisionRecords(pool)
    records.write([decision("before-failover")])  # returned: on both servers
    victim = postgres_formation.primary()
    assert victim is not None
    postgres_formation.kill(victim)
    killed = time.monotonic()
    while True:
        try:
            records.write([decision("after-failover")])
            break
        except psycopg.OperationalError:
            assert time.monotonic() - killed < 60, "no server took writes within 60 s"
            time.sleep(0.5)
    survivor = next(n for n in postgres_formation.data_names if n != victim)
    # seen once: the write taken before the promoted node read as the primary to a new session
    # (pg_auto_failover opens it for writes in steps); the roles are awaited, not assumed
    while postgres_formation.roles() != {victim: "down", survivor: "primary"}:
        assert time.monotonic() - killed < 60, postgres_formation.roles()
        time.sleep(0.5)
    found = records.find("before-failover")  # committed on the old primary before the kill
    assert found is not None and found.data.transaction_id == "before-failover"
