"""Fraud's store on a 3+3 Redis Cluster whose master is killed: its calls reach the promoted
replica as soon as the cluster names it (fault 2 of docs/reliability.md)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from redis.cluster import RedisCluster

from services.common.redis_client import request_path_redis
from services.fraud.settings import FraudSettings
from services.fraud.state_store import FraudStoreUnavailable, RedisFraudStore
from tests.harness import ClusterTopology
from tests.support.fraud_state import Txn
from tests.support.redis_cluster import await_promotion, await_replicas_in_sync

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def test_the_store_answers_from_the_promoted_replica_once_the_cluster_names_it(
        redis_cluster_nodes: ClusterTopology) -> None:
    topology = redis_cluster_nodes
    await_replicas_in_sync(topology)
    settings = FraudSettings(redis_url=topology.redis_url, redis_cluster=True,
                             redis_password=topology.redis_password)
    client = request_path_redis(settings, settings.fraud_redis_timeout_s)
    assert isinstance(client, RedisCluster)
    store = RedisFraudStore(client)
    # The worst case: the dead master is also the client's default node, the one redis-py 8.1's
    # cluster pipeline asks for the keys of each script call (COMMAND GETKEYS). Unrouted, every
    # call fails at that question to the end of the process, never refreshing the slot map.
    victim = client.get_default_node().name
    card = next(f"card{n}" for n in range(10_000)
                if client.get_node_from_key(f"{{card{n}}}").name == victim)
    slot = client.keyslot(f"{{{card}}}")
    first = Txn(transaction_id="tx1", card_id=card)
    try:
        store.record_and_read([first])
        topology.kill(next(name for name in topology.redis_names
                           if topology.nodes[name].address == victim))
        with pytest.raises(FraudStoreUnavailable, match="ConnectionError"):
            store.record_and_read([replace(first, transaction_id="tx2")])

        await_promotion(topology, victim, slot)
        read = store.record_and_read([replace(first, transaction_id="tx3")])
    finally:
        client.close()
    assert read.earlier_decisions == [None]
    assert client.get_node_from_key(f"{{{card}}}").name != victim
