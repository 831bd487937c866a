"""Request-path Redis clients fail fast; background clients retry a little."""

import socket

import pytest
import redis

from services.common.redis_client import (
    background_redis,
    request_path_redis,
    request_path_retries,
)
from services.common.settings import PlatformSettings


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_request_path_client_uses_the_settings_timeout_and_one_try() -> None:
    client = request_path_redis(PlatformSettings(redis_timeout_s=0.02))
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.02
    assert kwargs["socket_connect_timeout"] == 0.02
    assert client.get_retry().get_retries() == 1


def test_on_a_cluster_the_request_path_does_not_try_again() -> None:
    # a retry after a timeout waits out the deadline again (fault 4); redis-py follows MOVED
    # within one try, and the next call finds a promoted replica in the re-read slot map
    assert request_path_retries(PlatformSettings(redis_cluster=True)) == 0
    assert request_path_retries(PlatformSettings(redis_cluster=False)) == 1


def test_background_client_retries_a_few_times() -> None:
    assert background_redis(PlatformSettings()).get_retry().get_retries() == 3


def test_an_unreachable_redis_is_a_connection_error_not_a_hang() -> None:
    client = request_path_redis(
        PlatformSettings(redis_url=f"redis://127.0.0.1:{closed_port()}/0", redis_timeout_s=0.05))
    with pytest.raises(redis.ConnectionError):
        client.ping()


def test_the_password_is_sent_but_never_shown() -> None:
    settings = PlatformSettings(redis_password="s3cret-pw")
    client = request_path_redis(settings)
    assert client.connection_pool.connection_kwargs["password"] == "s3cret-pw"
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in str(settings.model_dump())


def test_an_empty_password_means_none() -> None:
    client = background_redis(PlatformSettings(redis_password=""))
    assert client.connection_pool.connection_kwargs["password"] is None
