"""The request path's cluster client on a slow master (fault 4 of docs/reliability.md): a
pipeline whose node times out fails after one deadline, not one per command; a MOVED is still
followed (fault 2's stale slot map after a failover)."""

from __future__ import annotations

import time

import pytest
from redis.cluster import RedisCluster

from services.common.redis_client import request_path_redis
from services.common.redis_scripts import LuaScript, send_pipeline
from services.common.settings import PlatformSettings
from tests.harness import ClusterTopology
from tests.support.redis_cluster import node

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

INCR = LuaScript("return redis.call('INCR', KEYS[1])")
TIMEOUT_S = 0.1


def cluster_client(topology: ClusterTopology) -> RedisCluster:
    client = request_path_redis(PlatformSettings(
        redis_url=topology.redis_url, redis_cluster=True, redis_password=topology.redis_password,
        redis_timeout_s=TIMEOUT_S))
    assert isinstance(client, RedisCluster)
    return client


def keys_on(client: RedisCluster, master: str, count: int, prefix: str) -> list[str]:
    return [key for key in (f"{{{prefix}{n}}}k" for n in range(10_000))
            if client.get_node_from_key(key).name == master][:count]


def test_a_pipeline_to_a_paused_master_fails_after_one_deadline(
        redis_cluster_nodes: ClusterTopology) -> None:
    client = cluster_client(redis_cluster_nodes)
    master = client.get_default_node().name
    calls = [INCR.call([key]) for key in keys_on(client, master, 12, "slow")]
    try:
        send_pipeline(client, calls, [INCR])        # connections open, the script loaded
        with node(master, redis_cluster_nodes.redis_password) as paused:
            paused.execute_command("CLIENT", "PAUSE", 2000, "ALL")
        start = time.perf_counter()
        with pytest.raises(Exception, match="Timeout"):
            send_pipeline(client, calls, [INCR])
        elapsed = time.perf_counter() - start
        time.sleep(2.0)                              # the pause ends
        after = send_pipeline(client, calls, [INCR])
    finally:
        client.close()
    # redis-py's cluster pipeline sends each of the twelve again alone, each waiting out the
    # deadline and re-reading the slot map: over a second here
    assert elapsed < 4 * TIMEOUT_S, elapsed
    assert all(isinstance(count, int) for count in after)  # the client answers again


def test_a_call_sent_by_a_stale_slot_map_follows_the_moved_reply(
        redis_cluster_nodes: ClusterTopology) -> None:
    client = cluster_client(redis_cluster_nodes)
    master = client.get_default_node().name
    [key] = keys_on(client, master, 1, "moved")
    try:
        send_pipeline(client, [INCR.call([key])], [INCR])
        # as after a failover: the client's map names another master for the key's slot
        other = next(n for n in client.get_primaries() if n.name != master)
        client.nodes_manager.slots_cache[client.keyslot(key)] = [other]
        replies = send_pipeline(client, [INCR.call([key])], [INCR])
        owner = client.get_node_from_key(key).name
    finally:
        client.close()
    assert replies == [2]
    assert owner == master
