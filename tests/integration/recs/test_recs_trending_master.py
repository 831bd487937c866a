"""The recommender on a 3+3 Redis Cluster whose master holding the trending list is killed: every
read includes the list's head, yet users whose own keys live on the other masters get whole
answers (their trending titles in the catalog snapshot's order) from the kill to the promotion,
and the head is read in the request again once the promoted replica serves it (fault 2 of
docs/reliability.md)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from redis.cluster import RedisCluster

from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.redis_client import node_of
from services.designs.recs.keys import history_key, trending_key
from services.recommender.app import create_app
from services.recommender.schemas import RecommendationsResponse
from services.recommender.settings import RecommenderSettings
from tests import recommender_world as world
from tests.harness import ClusterTopology
from tests.support.recs import FakeModel
from tests.support.redis_cluster import await_replicas_in_sync, slot_owner

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

FAIL_MAX = 3
UNCACHED = {"Cache-Control": "no-cache, no-store"}


def a_user_on(client: RedisCluster, master: str, namespace: str, skip: int = 0) -> str:
    """A user id whose keys live on the master (the skip-th such id)."""
    found = (user for n in range(100_000)
             if node_of(client, history_key(user := f"u{n}", namespace)) == master)
    for _ in range(skip):
        next(found)
    return next(found)


def heads_read(http: TestClient, source: str) -> float:
    metrics = http.get("/metrics").text
    line = f'recommender_trending_heads_total{{source="{source}"}} '
    return float(next(row for row in metrics.splitlines() if row.startswith(line)).split()[-1])


def test_a_dead_trending_master_leaves_the_users_on_the_other_masters_undegraded(
        redis_cluster_nodes: ClusterTopology, tmp_path: Path) -> None:
    topology = redis_cluster_nodes
    await_replicas_in_sync(topology)
    namespace = f"it{uuid.uuid4().hex[:8]}"
    # reset_s far past the test: only the re-read slot map can bring the head back
    settings = RecommenderSettings(
        redis_url=topology.redis_url, redis_cluster=True, redis_password=topology.redis_password,
        model_repository=world.repository(tmp_path / "models").root,
        feature_namespace=namespace, recommender_experiment=None, recommender_explore_share=0.0,
        recommender_breaker_fail_max=FAIL_MAX, recommender_breaker_reset_s=600)
    client = RedisCluster.from_url(topology.redis_url, password=topology.redis_password)
    day = world.NOW / 86_400
    client.zadd(trending_key(namespace), {"t31": day + 9, "t32": day + 8, "t33": day + 7})
    victim = node_of(client, trending_key(namespace))
    others = sorted({node.name for node in client.get_primaries()} - {victim})
    elsewhere = [a_user_on(client, master, namespace, skip) for master in others
                 for skip in (0, 1)]
    on_victim = a_user_on(client, victim, namespace)
    slot = client.keyslot(trending_key(namespace))
    survivors = [a for a in topology.redis_addresses if a != victim]

    def answer(http: TestClient, user_id: str) -> RecommendationsResponse:
        response = http.get(f"/v1/recommendations/{user_id}?k=10", headers=UNCACHED)
        assert response.status_code == 200, response.text
        return RecommendationsResponse.model_validate_json(response.content)

    app = create_app(settings, model=FakeModel(), publisher=InMemoryPublisher(InMemoryBroker()))
    try:
        with TestClient(app) as http:
            for user_id in [*elsewhere, on_victim]:
                whole = answer(http, user_id)
                assert (whole.served_from, whole.fallbacks) == ("computed", [])
            assert heads_read(http, "snapshot") == 0

            topology.kill(next(name for name in topology.redis_names
                               if topology.nodes[name].address == victim))
            killed = time.monotonic()
            rounds = victim_fallbacks = 0
            while any(slot_owner(a, topology.redis_password, slot) in (victim, None)
                      for a in survivors):
                assert time.monotonic() - killed < 30, "no replica took over the killed master"
                for user_id in elsewhere:   # whole through the gap, the first failures too
                    got = answer(http, user_id)
                    assert (got.served_from, got.fallbacks) == ("computed", []), (
                        user_id, round(time.monotonic() - killed, 2))
                victim_fallbacks += answer(http, on_victim).fallbacks == ["feature_store"]
                rounds += 1
                time.sleep(0.05)
            assert rounds > 20  # the gap was seen (cluster-node-timeout alone is 2 s)
            assert victim_fallbacks > 0   # the dead master's own users: flagged, as before
            assert heads_read(http, "snapshot") >= rounds * len(elsewhere)

            promoted = time.monotonic()
            before = heads_read(http, "request")
            while heads_read(http, "request") == before:
                assert time.monotonic() - promoted < 5, "the head was never read again"
                answer(http, elsewhere[0])
                time.sleep(0.1)
    finally:
        client.close()
