"""The consumers' deduplicator on real Redis, one server and a cluster: what it remembers, for how
long, and in how many round trips."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from services.common.bus.dedupe import RedisDeduplicator
from tests.harness import ServerProcess


@pytest.fixture(params=["redis", "redis_cluster"])
def client(request: pytest.FixtureRequest) -> Iterator[redis.Redis | RedisCluster]:
    if request.param == "redis":
        server: ServerProcess = request.getfixturevalue("redis_server")
        found: redis.Redis | RedisCluster = redis.Redis.from_url(server.address)
    else:
        server = request.getfixturevalue("redis_cluster_server")
        found = RedisCluster.from_url(server.address)
    found.flushall()
    yield found
    found.close()


def test_an_id_is_seen_only_once_marked(client: redis.Redis | RedisCluster) -> None:
    dedupe = RedisDeduplicator(client, "g")
    # Ids with braces and the field separator: each keeps its own key and slot.
    ids = [f"tx-{i}" for i in range(300)] + ["a{b}c", "a|b", "Zoë"]
    assert dedupe.seen(ids) == set()
    dedupe.mark(ids[::2])
    assert dedupe.seen(ids) == set(ids[::2])
    assert dedupe.seen([]) == set()
    dedupe.mark([])


def test_a_group_does_not_see_another_groups_ids(client: redis.Redis | RedisCluster) -> None:
    RedisDeduplicator(client, "one").mark(["e1"])
    assert RedisDeduplicator(client, "two").seen(["e1"]) == set()
    assert RedisDeduplicator(client, "one").seen(["e1"]) == {"e1"}


def test_a_marked_id_expires_after_the_window(client: redis.Redis | RedisCluster) -> None:
    dedupe = RedisDeduplicator(client, "g", window_s=600)
    dedupe.mark(["e1", "e2"])
    ttls = [client.ttl(dedupe._key(e)) for e in ("e1", "e2")]
    assert all(590 <= ttl <= 600 for ttl in ttls), ttls


def test_a_batch_is_one_round_trip_per_call_on_one_server(
        redis_client: redis.Redis, round_trips: list[int]) -> None:
    dedupe = RedisDeduplicator(redis_client, "g")
    ids = [f"tx-{i}" for i in range(500)]
    dedupe.mark(ids[:1])  # the script's first call loads it (EVALSHA, then EVAL)
    round_trips.clear()
    dedupe.seen(ids)
    dedupe.mark(ids)
    assert len(round_trips) == 2
    assert dedupe.seen(ids) == set(ids)
