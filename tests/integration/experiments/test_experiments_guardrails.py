"""Guardrails on empty lists and latency, end to end on real Kafka, Redis and PostgreSQL: the
recommender's impression events cross the broker, the stream's handler counts them per arm, and
the experiments service's guardrail watch stops an arm that breaches and leaves one that does not.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from kafka import KafkaConsumer
from psycopg_pool import ConnectionPool

from services.common.bus.background import BackgroundPublisher
from services.common.bus.clients import kafka_publisher
from services.common.bus.envelope import decode_event
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import TopicSpec, dlq_topic
from services.common.records.settings import PostgresSettings
from services.common.settings import PlatformSettings
from services.designs.experiments.counts import experiment_counts
from services.designs.experiments.records import PostgresExperimentHistory
from services.designs.experiments.tallies import LATENCY_QUANTILE, quantile_ranks
from services.experiments.app import create_app
from services.experiments.settings import ExperimentsSettings
from services.recommender.impressions import impression_message
from services.recommender.schemas import RecommendedItem, ServedList
from services.recommender.variants import Assignment
from services.stream.experiments import ExperimentEventsHandler
from tests.harness import REPO_ROOT, ServerProcess

pytestmark = pytest.mark.integration

TOKEN = "an-integration-test-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
LISTS = 600          # per arm
MIN_UNITS = 400
INTERVAL_S = 0.2     # the watch's own thread checks this often


@pytest.fixture
def service(kafka_server: ServerProcess, redis_server: ServerProcess,
            redis_client: redis.Redis, postgres_settings: PostgresSettings,
            records: ConnectionPool) -> Iterator[TestClient]:
    settings = ExperimentsSettings(
        environment="test", redis_url=redis_server.address,
        kafka_bootstrap_servers=kafka_server.address, experiments_admin_token=TOKEN,
        experiments_guardrail_interval_s=INTERVAL_S,
        experiments_file=Path(REPO_ROOT) / "config" / "experiments" / "experiments.toml")
    with TestClient(create_app(settings, postgres=postgres_settings)) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.1)
        yield client


def start(service: TestClient, guardrails: list[dict[str, Any]]) -> str:
    key = f"guard-{uuid.uuid4().hex[:8]}"
    body = {"key": key, "status": "running", "guardrails": guardrails, "variations": [
        {"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}]}
    assert service.put(f"/v1/experiments/{key}", json=body, headers=ADMIN).status_code == 201
    return key


def served(experiment: str, variation: str, empty_share: float, scale_ms: float,
           seed: int) -> list[tuple[ServedList, Assignment, float]]:
    """LISTS lists of one arm as the recommender records them: a share of them empty, each with
    a lognormal processing time around `scale_ms`."""
    rng = np.random.default_rng(seed)
    item = RecommendedItem(content_id="t1", title="t1", genres=["drama"], score=0.5,
                           recommendation_type="popular", explanation="popular now")
    shown = []
    for i in range(LISTS):
        items = [] if rng.random() < empty_share else [item]
        listed = ServedList(user_id=f"u{seed}-{i}", items=items, variant=variation,
                            experiment=experiment, model_version=1, personalization="full",
                            watch_count=3)
        shown.append((listed, Assignment(experiment, variation),
                      round(float(rng.lognormal(np.log(scale_ms), 0.4)), 3)))
    return shown


def through_kafka_to_the_counters(kafka: ServerProcess, client: redis.Redis,
                                  shown: list[tuple[ServedList, Assignment, float]]) -> None:
    """The recommender's impression events on a topic of their own, read back by the stream's
    experiment handler into the Redis counters."""
    topic = f"it-guard-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka.address, [TopicSpec(topic, 1), TopicSpec(dlq_topic(topic), 1)])
    background = BackgroundPublisher(kafka_publisher(
        PlatformSettings(kafka_bootstrap_servers=kafka.address, service_name="it"),
        client_id="it-guard"))
    for i, (listed, assignment, latency_ms) in enumerate(shown):
        background.submit(impression_message(listed, f"r{i}-{uuid.uuid4().hex[:6]}", assignment,
                                             topic, latency_ms))
    background.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka.address,
                             auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    handler = ExperimentEventsHandler(client)
    read = 0
    for record, _ in zip(consumer, range(len(shown)), strict=False):
        handler.handle(decode_event(record.value))
        read += 1
    consumer.close()
    handler.flush()
    assert read == len(shown)


def status_within(service: TestClient, key: str, want: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        status = str(service.get(f"/v1/experiments/{key}").json()["status"])
        if status == want or time.monotonic() > deadline:
            return status
        time.sleep(INTERVAL_S / 2)


def test_an_arm_serving_many_empty_lists_is_stopped_by_its_guardrail(
        service: TestClient, kafka_server: ServerProcess, redis_client: redis.Redis,
        records: ConnectionPool) -> None:
    key = start(service, [{"metric": "empty_list_rate", "max_relative_rise": 0.5,
                           "min_units": MIN_UNITS}])
    through_kafka_to_the_counters(kafka_server, redis_client, [
        *served(key, "control", 0.02, 20.0, seed=1), *served(key, "treatment", 0.15, 20.0, 2)])

    assert status_within(service, key, "stopped", timeout_s=10) == "stopped"
    counts = experiment_counts(redis_client, key)
    assert {v: (c.impressions, c.empty > 0) for v, c in counts.items()} == {
        "control": (LISTS, True), "treatment": (LISTS, True)}
    changes = PostgresExperimentHistory(records).changes(key)
    assert (changes[-1].status, changes[-1].actor) == ("stopped", "guardrail:empty_list_rate")
    breach, = service.get(f"/v1/experiments/{key}/results").json()["guardrail_breaches"]
    assert (breach["variation"], breach["metric"]) == ("treatment", "empty_list_rate")
    assert breach["variation_rate"] == pytest.approx(counts["treatment"].empty / LISTS, abs=1e-6)
    assert breach["interval"]["low"] > 0


def test_an_arm_whose_p99_latency_rises_past_tolerance_is_stopped(
        service: TestClient, kafka_server: ServerProcess, redis_client: redis.Redis,
        records: ConnectionPool) -> None:
    key = start(service, [{"metric": "latency_p99", "max_relative_rise": 0.2,
                           "min_units": MIN_UNITS}])
    treatment = served(key, "treatment", 0.0, 60.0, seed=4)
    through_kafka_to_the_counters(kafka_server, redis_client, [
        *served(key, "control", 0.0, 20.0, seed=3), *treatment])

    assert status_within(service, key, "stopped", timeout_s=10) == "stopped"
    changes = PostgresExperimentHistory(records).changes(key)
    assert changes[-1].actor == "guardrail:latency_p99"
    breach, = service.get(f"/v1/experiments/{key}/results").json()["guardrail_breaches"]
    ordered = sorted(latency for _, _, latency in treatment)
    _, point, _ = quantile_ranks(LISTS, LATENCY_QUANTILE)
    assert breach["variation_rate"] == pytest.approx(ordered[point])   # the logged times' p99
    assert breach["interval"]["low"] > 0


def test_arms_within_their_guardrails_keep_running(
        service: TestClient, kafka_server: ServerProcess, redis_client: redis.Redis) -> None:
    key = start(service, [
        {"metric": "empty_list_rate", "max_relative_rise": 0.5, "min_units": MIN_UNITS},
        {"metric": "latency_p99", "max_relative_rise": 0.2, "min_units": MIN_UNITS}])
    # the same empty share and latency in both arms, drawn apart: chance only
    through_kafka_to_the_counters(kafka_server, redis_client, [
        *served(key, "control", 0.02, 20.0, seed=5), *served(key, "treatment", 0.02, 20.0, 6)])

    counts = experiment_counts(redis_client, key)
    assert all(c.latency is not None and c.latency.samples == LISTS for c in counts.values())
    assert service.app.state.guardrails.check_once() == []   # type: ignore[attr-defined]
    assert status_within(service, key, "stopped", timeout_s=10 * INTERVAL_S) == "running"
    assert service.get(f"/v1/experiments/{key}/results").json()["guardrail_breaches"] == []
