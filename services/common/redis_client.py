"""Redis clients built from settings: fail fast on request paths, ride out blips in consumers.

With MLSD_REDIS_CLUSTER the same factories return a RedisCluster client (slot map, MOVED and
failover handled by redis-py); the password comes from MLSD_REDIS_PASSWORD, never the URL, so a
logged URL never carries it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, SlotNotCoveredError
from redis.retry import Retry

from services.common.breaker import BreakerSet
from services.common.settings import PlatformSettings

RedisClient = redis.Redis | RedisCluster
"""What every Redis adapter of the platform takes: one server or a cluster."""

AsyncRedisClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
"""The same, for a read made on the event loop (the recommender's cached answer)."""


def require_bytes_replies(client: RedisClient, adapter: str) -> None:
    """ValueError for a client that decodes replies to str: adapters that keep raw bytes (float32
    vectors, packed records) must read them back as bytes."""
    if client.get_connection_kwargs().get("decode_responses"):
        raise ValueError(f"{adapter} needs a client with decode_responses=False")


def route_by_key(client: RedisClient, key: str) -> dict[str, Any]:
    """The options of `pipe.execute_command` that send a pipelined script call (EVALSHA) to the
    node owning its key's slot: `target_nodes` on a cluster, none on one server or while the
    slot map has no node for the slot (redis-py then routes the call itself).

    Every script call of a cluster pipeline needs it. redis-py 8.1's ClusterPipeline asks the
    client's default node for the keys of a command it has no key table for (COMMAND GETKEYS
    for each EVALSHA: one round trip per call before the pipeline is sent), and a connection
    error there skips the slot map refresh that its node connections get. A failover that
    kills the default node then fails every later pipeline at that lookup, to the end of the
    process: the client never learns of the promoted replica (fault 2, docs/reliability.md).
    """
    if not isinstance(client, RedisCluster):
        return {}
    try:
        return {"target_nodes": client.get_node_from_key(key)}  # type: ignore[no-untyped-call]
    except SlotNotCoveredError:
        return {}


ONE_SERVER = "redis"
"""The one part of a single Redis server (node_of): one breaker for every key."""

UNCOVERED = "uncovered"
"""The part of a key whose slot no master holds in the client's map (mid-failover)."""


def node_of(client: RedisClient, key: str) -> str:
    """`host:port` of the master holding the key's slot in the client's slot map (no round
    trip); ONE_SERVER on a single server."""
    if not isinstance(client, RedisCluster):
        return ONE_SERVER
    try:
        return str(client.get_node_from_key(key).name)  # type: ignore[no-untyped-call]
    except SlotNotCoveredError:
        return UNCOVERED


def node_breakers(client: RedisClient, name: str, fail_max: int, reset_s: float,
                  refresh_s: float = 1.0,
                  key_of: Callable[[str], str] = lambda key: key) -> BreakerSet:
    """A breaker per master on a cluster, so a dead master degrades only the keys it holds; one
    breaker on a single server, as before. A failure that is not a refused or broken connection
    (refused) counts against every master's breaker. While a master's breaker is open the client
    re-reads the slot map every `refresh_s` (it learns of the promoted replica only from a
    failed call, and an open breaker makes none until its half-open trial, reset_s later).
    `key_of`: the Redis key that places what the breakers are asked about (a user id: one of
    its keys)."""
    if not isinstance(client, RedisCluster):
        return BreakerSet.single(name, fail_max, reset_s)
    return BreakerSet(name, lambda key: node_of(client, key_of(key)), fail_max, reset_s,
                      refresh=client.nodes_manager.initialize, refresh_s=refresh_s,
                      everywhere=lambda error: not refused(error))


def refused(error: BaseException) -> bool:
    """A refused or broken connection (a dead node answers so at once), or an error caused by
    one: a failure that belongs to the node called. A timeout, CLUSTERDOWN or a cluster
    without a quorum cannot be placed on one node without waiting on each (a whole slow
    cluster times out on every node alike)."""
    seen: BaseException | None = error
    for _ in range(4):  # the error, what caused it, what it was raised while handling, ...
        if seen is None or isinstance(seen, redis.TimeoutError):
            return False
        if isinstance(seen, redis.ConnectionError):
            return True
        # redis-py re-reads the slot map when a node refuses; while the dead master's slots
        # have no owner that raises RedisClusterException from inside the handler
        seen = seen.__cause__ or seen.__context__
    return False


def unreachable(client: RedisClient, nodes: Iterable[str]) -> set[str]:
    """Those of the nodes (node_of's names) that do not answer a PING now, or that the slot map
    no longer names: which node a failed pipeline to several could not reach. On a single server
    the one node answers or not."""
    down = set()
    for name in nodes:
        try:
            if isinstance(client, RedisCluster):
                node = client.get_node(node_name=name)  # type: ignore[no-untyped-call]
                if node is None:
                    down.add(name)
                    continue
                client.execute_command("PING", target_nodes=node)  # type: ignore[no-untyped-call]
            else:
                client.ping()
        except (redis.RedisError, RedisClusterException):
            down.add(name)
    return down


def redis_from_settings(settings: PlatformSettings, timeout_s: float, retry: Retry,
                        **options: Any) -> RedisClient:
    """A client on settings.redis_url: a RedisCluster when settings.redis_cluster."""
    common = _options(settings, timeout_s, retry, **options)
    if settings.redis_cluster:
        # A failover moves slots: the cluster client re-reads the slot map and retries there,
        # as often as `retry` allows (request_path_redis: not at all).
        return RedisCluster.from_url(settings.redis_url, **common)
    return redis.Redis.from_url(settings.redis_url, health_check_interval=30, **common)


def _options(settings: PlatformSettings, timeout_s: float, retry: object,
             **options: Any) -> dict[str, Any]:
    # an empty MLSD_REDIS_PASSWORD (compose's default) means none
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    return {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, "retry": retry,
            "password": password or None, **options}


def request_path_redis(settings: PlatformSettings, timeout_s: float | None = None) -> RedisClient:
    """Timeouts inside the latency budget (`timeout_s`, default the platform's): an outage
    becomes a fast error that the service turns into a degraded answer. (redis-py's default
    retries ten times with backoff, which turns an outage into a stall of seconds.)

    On one server a failed call is tried once more (a pooled connection cut by a restart). On a
    cluster it is not (request_path_retries): redis-py follows MOVED and ASK within one try, and
    after a failed call it re-reads the slot map, so the next call finds a promoted replica;
    a retry after a timeout waits out the deadline again, after a re-read of the map that asks
    the slow nodes too: a slow cluster's failures each cost the breakers' onset two deadlines
    and more (fault 4, docs/reliability.md). A cluster pipeline's own resends are bounded the
    same way (redis_scripts.send_pipeline)."""
    timeout = settings.redis_timeout_s if timeout_s is None else timeout_s
    return redis_from_settings(settings, timeout,
                               Retry(NoBackoff(), request_path_retries(settings)))


def request_path_retries(settings: PlatformSettings) -> int:
    """How many times the request path tries a failed Redis call again: once on one server,
    never on a cluster (request_path_redis)."""
    return 0 if settings.redis_cluster else 1


def background_redis(settings: PlatformSettings, timeout_s: float = 2.0) -> RedisClient:
    """For consumers and jobs: a few quick retries; the consumer runner retries beyond that."""
    return redis_from_settings(settings, timeout_s,
                               Retry(ExponentialBackoff(cap=0.5, base=0.01), 3))


def async_request_path_redis(settings: PlatformSettings,
                             timeout_s: float | None = None) -> AsyncRedisClient:
    """request_path_redis for the event loop (redis.asyncio): the same retries and timeouts, so
    a read made without the thread hop fails as fast as one made with it."""
    timeout = settings.redis_timeout_s if timeout_s is None else timeout_s
    common = _options(settings, timeout, redis.asyncio.retry.Retry(
        NoBackoff(), request_path_retries(settings)))
    if settings.redis_cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(settings.redis_url, **common)
    return redis.asyncio.Redis.from_url(settings.redis_url, health_check_interval=30, **common)
