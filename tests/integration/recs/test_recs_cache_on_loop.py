"""The cache hit answered on the event loop, against the real servers: redis.asyncio reads what
the threaded store wrote (one server and a cluster), the whole service answers its second
request from the cache with the impression on the real broker, and a dead Redis is no 5xx."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.concurrency import run_in_threadpool
from fastapi.testclient import TestClient
from kafka import KafkaConsumer

from services.common.bus.envelope import decode_event
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import TopicSpec, dlq_topic
from services.common.features import FeatureStoreUnavailable
from services.common.redis_client import async_request_path_redis, request_path_redis
from services.common.settings import PlatformSettings
from services.designs.payloads import ImpressionData, payload_of
from services.designs.recs.list_cache import RedisListCache
from services.designs.recs.redis_store import RedisRecsStore
from services.recommender import api
from services.recommender.app import create_app
from services.recommender.schemas import RecommendationsResponse
from services.recommender.settings import RecommenderSettings
from tests import recommender_world as world
from tests.harness import ServerProcess, free_port

pytestmark = pytest.mark.integration


async def read_on_loop(settings: PlatformSettings, user_id: str, k: int,
                       namespace: str) -> bytes | None:
    cache = RedisListCache(async_request_path_redis(settings, 0.5), namespace)
    try:
        return await cache.cached_recommendations(user_id, k)
    finally:
        await cache.close()


@pytest.mark.parametrize("cluster", [False, True], ids=["one server", "cluster"])
def test_the_loop_reads_the_entry_the_threaded_store_wrote(
        cluster: bool, request: pytest.FixtureRequest) -> None:
    server: ServerProcess = request.getfixturevalue(
        "redis_cluster_server" if cluster else "redis_server")
    settings = PlatformSettings(redis_url=server.address, redis_cluster=cluster)
    namespace = f"it{uuid.uuid4().hex[:8]}"
    client = request_path_redis(settings, 0.5)
    try:
        store = RedisRecsStore(client, world.items(), namespace)
        assert store.cache_recommendations("u/1", 10, b'{"stored": 1}', ttl_s=60,
                                           if_watch_count=0)
    finally:
        client.close()
    assert asyncio.run(read_on_loop(settings, "u/1", 10, namespace)) == b'{"stored": 1}'
    assert asyncio.run(read_on_loop(settings, "u/1", 5, namespace)) is None     # another k
    assert asyncio.run(read_on_loop(settings, "u2", 10, namespace)) is None


def test_a_dead_redis_is_the_feature_store_unavailable_at_once() -> None:
    settings = PlatformSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(FeatureStoreUnavailable):
        asyncio.run(read_on_loop(settings, "u1", 10, "fs"))


def settings_for(redis_url: str, kafka: ServerProcess, tmp_path: Path,
                 topic: str) -> RecommenderSettings:
    return RecommenderSettings(
        redis_url=redis_url, kafka_bootstrap_servers=kafka.address,
        model_repository=world.repository(tmp_path / "models").root,
        feature_namespace=f"it{uuid.uuid4().hex[:8]}", recommender_experiment=None,
        recommender_impressions_topic=topic, recommender_explore_share=0.0)


def test_the_second_request_is_answered_from_the_cache_with_its_impression_on_the_broker(
        redis_server: ServerProcess, kafka_server: ServerProcess, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    hops: list[str] = []

    async def counted(func: Callable[..., Any], *args: Any) -> Any:
        hops.append(func.__name__)
        return await run_in_threadpool(func, *args)

    monkeypatch.setattr(api, "run_in_threadpool", counted)
    topic = f"it-impressions-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_server.address, [TopicSpec(topic, 1), TopicSpec(dlq_topic(topic), 1)])
    settings = settings_for(redis_server.address, kafka_server, tmp_path, topic)
    with TestClient(create_app(settings)) as client:
        first = client.get("/v1/recommendations/u1?k=5")
        second = client.get("/v1/recommendations/u1?k=5")
        metrics = client.get("/metrics").text
    assert first.status_code == second.status_code == 200
    computed = RecommendationsResponse.model_validate_json(first.content)
    cached = RecommendationsResponse.model_validate_json(second.content)
    assert (computed.served_from, cached.served_from) == ("computed", "cache")
    assert hops == ["recommend"]                # the hit took no thread
    assert cached.items == computed.items and cached.variant == computed.variant
    assert 'recommender_cache_lookups_total{result="hit"} 1.0' in metrics
    assert 'recommender_cache_lookups_total{result="miss"} 1.0' in metrics

    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_server.address,
                             auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    events = [decode_event(record.value)
              for _, record in zip(range(2), consumer, strict=False)]
    consumer.close()
    shown = [payload_of(event.type, event.data) for event in events]
    assert all(isinstance(data, ImpressionData) for data in shown)
    assert [data.request_id for data in shown] == [computed.request_id, cached.request_id]
    # The cached showing logs the list as it was computed: the same titles and features.
    assert shown[0].content_ids == shown[1].content_ids                # type: ignore[union-attr]
    assert shown[0].features == shown[1].features                      # type: ignore[union-attr]


def test_with_redis_dead_the_service_answers_the_popular_fallback_not_a_server_error(
        kafka_server: ServerProcess, tmp_path: Path) -> None:
    settings = settings_for(f"redis://127.0.0.1:{free_port()}/0", kafka_server, tmp_path,
                            f"it-impressions-{uuid.uuid4().hex[:8]}")
    with TestClient(create_app(settings)) as client:
        answers = [client.get("/v1/recommendations/u1?k=5") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    for answer in answers:
        body = RecommendationsResponse.model_validate_json(answer.content)
        assert body.served_from == "fallback" and body.fallbacks == ["feature_store"]
        assert len(body.items) == 5
