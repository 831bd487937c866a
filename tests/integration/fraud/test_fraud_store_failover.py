"""Fraud's store on a 3+3 Redis Cluster whose master is killed: its calls reach the promoted
replica as soon as the cluster names it (fault 2 of docs/reliability.md)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import redis
from redis.cluster import RedisCluster

from services.common.redis_client import request_path_redis
from services.fraud.settings import FraudSettings
from services.fraud.state_store import FraudStoreUnavailable, RedisFraudStore
from tests.harness import ClusterTopology
from tests.support.fraud_state import Txn

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def node(address: str, password: str) -> redis.Redis:
    host, port = address.split(":")
    return redis.Redis(host=host, port=int(port), password=password, socket_timeout=0.5)


def await_replicas_in_sync(topology: ClusterTopology, timeout_s: float = 60.0) -> None:
    """A replica that has not synced with its master is never promoted."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        in_sync = 0
        for address in topology.redis_addresses:
            with node(address, topology.redis_password) as client:
                info = client.info("replication")
            in_sync += sum(1 for key, value in info.items()
                           if key.startswith("slave") and isinstance(value, dict)
                           and value.get("state") == "online")
        if in_sync == len(topology.redis_addresses) // 2:
            return
        time.sleep(0.25)
    raise AssertionError("the replicas did not sync with their masters")


def slot_owner(address: str, password: str, slot: int) -> str | None:
    """host:port of the master that this node says owns the slot (none while it names no live
    one: a master marked as failed is left out of CLUSTER SLOTS)."""
    with node(address, password) as client:
        ranges = client.execute_command("CLUSTER SLOTS")
    masters = [r[2] for r in ranges if r[0] <= slot <= r[1]]
    return f"{masters[0][0].decode()}:{masters[0][1]}" if masters else None


def await_promotion(topology: ClusterTopology, dead: str, slot: int,
                    timeout_s: float = 30.0) -> None:
    """Until every surviving node names another master for the slot."""
    survivors = [a for a in topology.redis_addresses if a != dead]
    deadline = time.monotonic() + timeout_s
    while any(slot_owner(a, topology.redis_password, slot) in (dead, None) for a in survivors):
        assert time.monotonic() < deadline, "no replica took over the killed master's slots"
        time.sleep(0.05)


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
