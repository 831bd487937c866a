"""Session fixtures: the real servers integration tests run against, started once and on demand."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from psycopg_pool import ConnectionPool
from redis.connection import AbstractConnection

from services.common.records.pool import records_pool
from services.common.records.settings import PostgresSettings
from tests.harness import (
    ClusterTopology,
    PostgresFormation,
    ServerProcess,
    start_cluster_topology,
    start_kafka,
    start_postgres,
    start_postgres_formation,
    start_redis,
    start_redis_cluster,
)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_redis(Path(tmp_path_factory.mktemp("redis")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_kafka(Path(tmp_path_factory.mktemp("kafka")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_redis_cluster(Path(tmp_path_factory.mktemp("redis-cluster")))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster_topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTopology]:
    """`make run-cluster`'s topology: 3 KRaft nodes, a 3+3 Redis Cluster with a password. Per
    module: three idle JVMs and six Redis nodes would otherwise take CPU from every later test."""
    topology = start_cluster_topology(Path(tmp_path_factory.mktemp("cluster")),
                                      redis_password=secrets.token_urlsafe(16))
    yield topology
    topology.stop()


@pytest.fixture(scope="module")
def redis_cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTopology]:
    """The cluster topology's 3+3 Redis Cluster alone (no Kafka), for tests that kill a node:
    per module, as each such test leaves a node dead or restarted."""
    topology = start_cluster_topology(Path(tmp_path_factory.mktemp("redis-nodes")),
                                      redis_password=secrets.token_urlsafe(16), kafka_nodes=0)
    yield topology
    topology.stop()


@pytest.fixture(scope="module")
def postgres_formation(tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[PostgresFormation]:
    """The cluster topology's PostgreSQL: a primary and its synchronous standby under
    pg_auto_failover's monitor. Per module, as a test that kills a node leaves the roles changed."""
    formation = start_postgres_formation(Path(tmp_path_factory.mktemp("postgres-ha")))
    yield formation
    formation.stop()
    shutil.rmtree(formation.data_root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real PostgreSQL; missing binaries fail the run (ServerDidNotStart), never skip it."""
    server = start_postgres(Path(tmp_path_factory.mktemp("postgres")))
    yield server
    server.stop()
    shutil.rmtree(server.extra["data_root"], ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_settings(postgres_server: ServerProcess) -> PostgresSettings:
    return PostgresSettings(postgres_port=int(postgres_server.extra["port"]))


@pytest.fixture(scope="session")
def _records_pool(postgres_settings: PostgresSettings) -> Iterator[ConnectionPool]:
    pool = records_pool(postgres_settings, "tests")
    yield pool
    pool.close()


@pytest.fixture
def records(_records_pool: ConnectionPool) -> ConnectionPool:
    """The migrated record with every table emptied: each test starts from an empty record."""
    with _records_pool.connection() as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'schema_migrations'").fetchall()]
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE".encode())
    return _records_pool


@pytest.fixture
def redis_client(redis_server: ServerProcess) -> Iterator[redis.Redis]:
    """A client on a freshly flushed database: every test starts from an empty Redis."""
    client = redis.Redis.from_url(redis_server.address)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts what Redis clients send to a socket: a pipeline is one send, whatever its length."""
    sends: list[int] = []
    original: Callable[..., None] = AbstractConnection.send_packed_command

    def counting(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sends.append(1)
        original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    yield sends
