"""MLSD_REDIS_CLUSTER gives every service a RedisCluster client from the same factories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.cluster import RedisCluster

from services.common.features import (
    Entity,
    Feature,
    FeatureCatalog,
    FeatureType,
    FeatureView,
    FeatureWrite,
    RedisFeatureStore,
)
from services.common.redis_client import background_redis, request_path_redis
from services.common.redis_scripts import LuaScript, send_pipeline
from services.common.settings import PlatformSettings
from tests.harness import ServerProcess

pytestmark = pytest.mark.integration


def test_cluster_mode_builds_a_cluster_client_with_the_request_path_timeouts(
        redis_cluster_server: ServerProcess) -> None:
    settings = PlatformSettings(redis_url=redis_cluster_server.address, redis_cluster=True,
                                redis_timeout_s=0.03)
    client = request_path_redis(settings)
    try:
        assert isinstance(client, RedisCluster)
        node = client.get_default_node()
        kwargs = node.redis_connection.connection_pool.connection_kwargs  # type: ignore[union-attr]
        assert kwargs["socket_timeout"] == 0.03
        client.set("{k}a", "1")  # a cluster client on a slot of the one node
        assert client.get("{k}a") == b"1"
    finally:
        client.close()


def test_without_cluster_mode_the_same_url_gives_a_single_server_client(
        redis_cluster_server: ServerProcess) -> None:
    client = background_redis(PlatformSettings(redis_url=redis_cluster_server.address))
    try:
        assert not isinstance(client, RedisCluster)
    finally:
        client.close()


def test_script_calls_in_a_cluster_pipeline_ask_no_node_for_their_keys(
        redis_cluster_server: ServerProcess) -> None:
    # redis-py 8.1 asks the default node (COMMAND GETKEYS) for the keys of each script call it
    # routes itself: a round trip per call, and a dead default node fails them all (fault 2)
    script = LuaScript("return redis.call('INCR', KEYS[1])")
    client = request_path_redis(PlatformSettings(redis_url=redis_cluster_server.address,
                                                 redis_cluster=True, redis_timeout_s=0.5))
    node = redis.Redis.from_url(redis_cluster_server.address)
    try:
        calls = [script.call([f"{{k{n}}}n"]) for n in range(5)]
        send_pipeline(client, calls, [script])      # loads the script where it is missing
        node.config_resetstat()
        assert send_pipeline(client, calls, [script]) == [2] * 5
        stats = node.info("commandstats")
    finally:
        client.close()
        node.close()
    assert stats["cmdstat_evalsha"]["calls"] == 5
    assert "cmdstat_command|getkeys" not in stats


def test_the_feature_stores_guarded_writes_ask_no_node_for_their_keys(
        redis_cluster_server: ServerProcess) -> None:
    view = FeatureView("card_profile", Entity("card"),
                       (Feature("tx_count", FeatureType.INT64),), ttl=timedelta(days=1))
    client = request_path_redis(PlatformSettings(redis_url=redis_cluster_server.address,
                                                 redis_cluster=True, redis_timeout_s=0.5))
    node = redis.Redis.from_url(redis_cluster_server.address)
    store = RedisFeatureStore(client, FeatureCatalog([view]))
    writes = [FeatureWrite("card_profile", f"c{n}", {"tx_count": n}, datetime.now(UTC))
              for n in range(5)]
    try:
        store.write_batch(writes)                   # loads the script where it is missing
        node.config_resetstat()
        store.write_batch(writes)
        stats = node.info("commandstats")
    finally:
        client.close()
        node.close()
    assert stats["cmdstat_evalsha"]["calls"] == 5
    assert "cmdstat_command|getkeys" not in stats
