"""refused(): which Redis failures belong to the node called (the breakers per master)."""

from __future__ import annotations

import redis
from redis.exceptions import ClusterDownError, RedisClusterException

from services.common.features import FeatureStoreUnavailable
from services.common.redis_client import refused


def caused_by(error: Exception) -> FeatureStoreUnavailable:
    try:
        raise FeatureStoreUnavailable(str(error)) from error
    except FeatureStoreUnavailable as raised:
        return raised


def test_a_refused_connection_belongs_to_its_node_and_a_timeout_or_a_down_cluster_does_not(
        ) -> None:
    assert refused(caused_by(redis.ConnectionError("Error 111 connecting to 127.0.0.1:7001")))
    assert refused(redis.ConnectionError("Connection closed by server."))
    assert not refused(caused_by(redis.TimeoutError("Timeout reading from socket")))
    assert not refused(caused_by(ClusterDownError("The cluster is down")))
    assert not refused(caused_by(RedisClusterException("Redis Cluster cannot be connected")))
