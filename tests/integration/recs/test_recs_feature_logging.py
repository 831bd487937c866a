"""Impressions with the ranker features as served, through the real broker and into the real A/B
counters: the rows come back bit for bit, and the stream counts the impression as before."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import redis
from kafka import KafkaConsumer

from services.common.breaker import BreakerSet, CircuitBreaker
from services.common.bus.background import BackgroundPublisher
from services.common.bus.clients import kafka_publisher
from services.common.bus.envelope import decode_event
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import TopicSpec, dlq_topic
from services.common.settings import PlatformSettings
from services.common.telemetry import Metrics
from services.designs.experiments.counts import experiment_counts
from services.designs.payloads import ImpressionData, payload_of
from services.recommender.candidates import CandidateSizes
from services.recommender.catalog import LiveCatalog
from services.recommender.impressions import ImpressionLog
from services.recommender.metrics import RecommenderMetrics
from services.recommender.service import ListPolicy, RecommenderService
from services.recommender.variants import Assignment
from services.stream.experiments import ExperimentEventsHandler
from tests import recommender_world as world
from tests.harness import ServerProcess
from tests.support.recs import FakeModel, FakeStore

pytestmark = pytest.mark.integration


def treatment(user_id: str) -> Assignment:
    return Assignment("rec-ranker", "treatment", "ranker")


def test_an_impressions_features_cross_kafka_exactly_and_the_stream_counts_it(
        kafka_server: ServerProcess, redis_client: redis.Redis, tmp_path: Path) -> None:
    topic = f"it-impressions-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_server.address, [TopicSpec(topic, 1), TopicSpec(dlq_topic(topic), 1)])
    producer = kafka_publisher(PlatformSettings(kafka_bootstrap_servers=kafka_server.address,
                                                service_name="it"), client_id="it-recs")
    background = BackgroundPublisher(producer)
    # The user's state is the unit tests' in-memory world: what is under test here is the
    # event on the wire and its consumer, each against its real server.
    store, model = FakeStore(), FakeModel()
    store.users["u1"] = world.user([f"t{i}" for i in range(6)])
    catalog = LiveCatalog(world.repository(tmp_path), "ranker", lambda items: store, 60.0)
    catalog.refresh()
    service = RecommenderService(
        catalog=catalog, store_for=lambda items: store, model=model, model_name="ranker",
        metrics=RecommenderMetrics(Metrics("it_recs")), choose_variant=treatment,
        impressions=ImpressionLog(background, topic),
        policy=ListPolicy(candidates=CandidateSizes(10, 10, 5), cache_ttl_s=300,
                          default_max_maturity=4, fallback_max_maturity=1),
        redis_breakers=BreakerSet.single("redis", 100), model_breaker=CircuitBreaker("model", 100))
    answer = service.recommend("u1", 5)
    background.close()

    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_server.address,
                             auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    records = [record for _, record in zip(range(1), consumer, strict=False)]
    consumer.close()
    assert len(records) == 1
    event = decode_event(records[0].value)
    data = payload_of(event.type, event.data)
    assert isinstance(data, ImpressionData) and data.features is not None
    assert data.request_id == answer.request_id == data.features.request_id
    scored = np.asarray(model.rows[0], dtype=np.float32)
    listed = np.asarray(data.features.rows, dtype=np.float32)
    assert all((row == scored).all(axis=1).any() for row in listed)   # the very rows scored

    handler = ExperimentEventsHandler(redis_client)
    handler.handle(event)
    handler.flush()
    assert experiment_counts(redis_client, "rec-ranker")["treatment"].impressions == 1
