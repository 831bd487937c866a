"""Session fixtures: the real servers integration tests run against, started once and on demand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.harness import ServerProcess, start_kafka, start_redis, start_redis_cluster


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


@pytest.fixture
def redis_client(redis_server: ServerProcess) -> Iterator[redis.Redis]:
    """A client on a freshly flushed database: every test starts from an empty Redis."""
    client = redis.Redis.from_url(redis_server.address)
    client.flushdb()
    yield client
    client.close()
