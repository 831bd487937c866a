"""Session fixtures: the real servers integration tests run against, started once and on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.connection import AbstractConnection

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
