"""Redis clients built from settings: fail fast on request paths, ride out blips in consumers."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from services.common.settings import PlatformSettings


def request_path_redis(settings: PlatformSettings, timeout_s: float | None = None) -> redis.Redis:
    """One try, timeouts inside the latency budget (`timeout_s`, default the platform's): an
    outage becomes a fast error that the service turns into a degraded answer. (redis-py's
    default retries ten times with backoff, which turns an outage into a stall of seconds.)"""
    timeout = settings.redis_timeout_s if timeout_s is None else timeout_s
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


def background_redis(settings: PlatformSettings, timeout_s: float = 2.0) -> redis.Redis:
    """For consumers and jobs: a few quick retries; the consumer runner retries beyond that."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.01), 3),
        health_check_interval=30,
    )
