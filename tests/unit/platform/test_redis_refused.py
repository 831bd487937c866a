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


def test_a_slot_map_refresh_that_fails_while_handling_a_refusal_is_still_a_refusal() -> None:
    """After a refused connection redis-py re-reads the slot map; mid-failover (the dead
    master's slots without an owner) that raises RedisClusterException from the handler."""
    def refresh_after(error: Exception) -> RedisClusterException:
        try:
            try:
                raise error
            except redis.RedisError:
                raise RedisClusterException("All slots are not covered") from None
        except RedisClusterException as raised:
            raised.__context__ = error
            return raised

    assert refused(caused_by(refresh_after(redis.ConnectionError("Error 111 connecting"))))
    assert not refused(caused_by(refresh_after(redis.TimeoutError("Timeout connecting"))))
