"""The response cache across make ab-demo's end, on the real servers: definitions and cached
lists in Redis, a real model repository promoting the challenger, the whole service answering.

A list the challenger built for its arm answers the same user once it is production's (from the
cache, under the user's experiment and variant now); a list the old production ranker built
answers no one after the promotion."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import TopicSpec, dlq_topic
from services.common.models import ModelRepository
from services.common.models.testing import logistic_model
from services.designs.experiments.definitions import parse_definition
from services.designs.experiments.store import RedisDefinitionStore
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.designs.recs.redis_store import RedisRecsStore
from services.recommender.app import create_app
from services.recommender.schemas import RecommendationsResponse, ServedList
from services.recommender.settings import RecommenderSettings
from tests import recommender_world as world
from tests.harness import ServerProcess

pytestmark = pytest.mark.integration

REFRESH_S = 0.2   # definitions and the production pointer, re-read this often here
ARMS = {"u1": "treatment", "u2": "control"}   # forced, so each user's arm is known


def definition(key: str, status: str, control: dict[str, Any], treatment: dict[str, Any],
               forced: dict[str, str]) -> Any:
    return parse_definition({
        "key": key, "status": status, "seed": key, "hash_attribute": "user_id",
        "hash_version": 2, "forced_variations": forced,
        "variations": [{"name": "control", "weight": 0.5, "payload": control},
                       {"name": "treatment", "weight": 0.5, "payload": treatment}]})


def answer(client: TestClient, user: str, **headers: str) -> RecommendationsResponse:
    response = client.get(f"/v1/recommendations/{user}?k=5", headers=headers)
    assert response.status_code == 200
    return RecommendationsResponse.model_validate_json(response.content)


def until(check: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the service did not catch up"
        time.sleep(0.05)


def test_after_the_promotion_the_challengers_lists_answer_and_the_old_rankers_do_not(
        redis_server: ServerProcess, kafka_server: ServerProcess, redis_client: redis.Redis,
        tmp_path: Path) -> None:
    repository = world.repository(tmp_path / "models")          # v1: production
    v2 = repository.register(                                   # a retrain: another graph,
        "ranker", logistic_model([-4.0] + [0.0] * (len(RANKER_FEATURE_NAMES) - 1)),
        feature_names=RANKER_FEATURE_NAMES, metrics={}, training_data_hash="v2",
        description="challenger", extra_files={"embeddings.npz": world.embeddings_npz()})
    namespace = f"it{uuid.uuid4().hex[:8]}"
    store = RedisRecsStore(redis_client, world.items(), namespace)
    for user in ARMS:                                           # the same history each
        store.apply_watches([(user, watch) for watch in world.user(
            ["t0", "t1", "t2", "t3", "t4"], user_id=user).history])
    definitions = RedisDefinitionStore(redis_client, namespace)
    ab = definition("ranker-v2-r5", "running", {"algorithm": "ranker"},
                    {"algorithm": "ranker", "ranker_version": v2}, ARMS)
    baseline = definition("rec-algorithm", "stopped", {"algorithm": "blend"},
                          {"algorithm": "ranker"}, {"u1": "treatment", "u2": "treatment"})
    definitions.put(baseline)
    definitions.put(ab)
    topic = f"it-impressions-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_server.address, [TopicSpec(topic, 1), TopicSpec(dlq_topic(topic), 1)])
    settings = RecommenderSettings(
        redis_url=redis_server.address, kafka_bootstrap_servers=kafka_server.address,
        model_repository=repository.root, feature_namespace=namespace,
        recommender_impressions_topic=topic, recommender_explore_share=0.0,
        recommender_experiments_refresh_s=REFRESH_S, recommender_stats_refresh_s=REFRESH_S)
    with TestClient(create_app(settings)) as client:
        built = {user: answer(client, user) for user in ARMS}   # the test's last round
        assert {u: (a.experiment, a.variant, a.served_from) for u, a in built.items()} == {
            "u1": ("ranker-v2-r5", "treatment", "computed"),
            "u2": ("ranker-v2-r5", "control", "computed")}
        assert answer(client, "u1").served_from == "cache"
        # the test ends: its winner promoted, everyone back in rec-algorithm's ranker arm
        definitions.put(ab.model_copy(update={"status": "stopped"}))
        definitions.put(baseline.model_copy(update={"status": "running"}))
        ModelRepository(repository.root).promote("ranker", v2)
        fresh = {"Cache-Control": "no-cache, no-store"}      # a cold list, computed now
        until(lambda: answer(client, "u9", **fresh).model_version == v2)
        until(lambda: answer(client, "u9", **fresh).experiment == "rec-algorithm")
        now = {user: answer(client, user) for user in ARMS}
    # u1's list: v2 built it for the challenger's arm, v2 builds it now: the cached list, as
    # the user's arm now
    assert (now["u1"].served_from, now["u1"].experiment, now["u1"].variant) == (
        "cache", "rec-algorithm", "treatment")
    assert now["u1"].items == built["u1"].items
    # u2's: v1 built it; v1 is no one's ranker now: computed by v2
    assert (now["u2"].served_from, now["u2"].model_version) == ("computed", v2)
    assert now["u2"].items != built["u2"].items             # two rankers that disagree
    stored = store.cached_recommendations("u2", 5)            # v2's list, cached in its place
    assert stored is not None and ServedList.model_validate_json(stored).ranked_by == v2
