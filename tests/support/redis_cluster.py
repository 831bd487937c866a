"""Waiting on a 3+3 Redis Cluster whose master is killed: replicas in sync, a slot's owner, its
promotion (read from every surviving node, as the cluster tests need)."""

from __future__ import annotations

import time

import redis

from tests.harness import ClusterTopology


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
