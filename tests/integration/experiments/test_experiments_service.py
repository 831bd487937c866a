"""The experiments service on real Redis, Kafka and PostgreSQL: exposures reach the topic once per
unit, the stream processor's counters built from them come back as results, and every change of
a definition is in the record."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from services.common.bus.envelope import Event, MalformedEvent, decode_event
from services.common.bus.kafka_bus import records_to_end
from services.common.bus.topics import EXPOSURES
from services.common.records.settings import PostgresSettings
from services.designs.experiments.records import PostgresExperimentHistory
from services.experiments.app import create_app
from services.experiments.settings import ExperimentsSettings
from services.stream.experiments import ExperimentEventsHandler
from tests.harness import REPO_ROOT, ServerProcess

pytestmark = pytest.mark.integration

EXPERIMENT = "rec-algorithm"
TOKEN = "an-integration-test-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def service(kafka_server: ServerProcess, redis_server: ServerProcess,
            redis_client: redis.Redis, postgres_settings: PostgresSettings,
            records: ConnectionPool) -> Iterator[TestClient]:
    settings = ExperimentsSettings(
        environment="test", redis_url=redis_server.address,
        kafka_bootstrap_servers=kafka_server.address, experiments_admin_token=TOKEN,
        experiments_file=Path(REPO_ROOT) / "config" / "experiments" / "experiments.toml")
    with TestClient(create_app(settings, postgres=postgres_settings)) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.1)
        yield client


def exposures_of(bootstrap: str, units: set[str], count: int,
                 timeout_s: float = 30.0) -> list[tuple[str | None, Event]]:
    """(key, event) of the exposures of `units` on the topic, once `count` are there (the service
    sends them off the request path)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = []
        for record in records_to_end(bootstrap, EXPOSURES):
            try:
                event = decode_event(record.value)
            except MalformedEvent:
                continue
            if event.data.get("unit_id") in units:
                found.append((record.key.decode() if record.key else None, event))
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_each_bucketed_units_exposure_reaches_the_topic_once(
        service: TestClient, kafka_server: ServerProcess) -> None:
    run = uuid.uuid4().hex[:8]
    units = {f"it-{run}-{i}" for i in range(20)}
    answers = {}
    for unit in sorted(units):
        for _ in range(2):  # asked twice, by name and among all running experiments
            answers[unit] = service.get("/v1/assignments", params={
                "unit_id": unit, "experiment": EXPERIMENT}).json()
            service.get("/v1/assignments", params={"unit_id": unit})
    service.get("/v1/assignments", params={"unit_id": "u1", "experiment": "row-titles"})

    found = exposures_of(kafka_server.address, units, len(units))
    time.sleep(0.5)  # a duplicate would arrive within the same flush
    found = exposures_of(kafka_server.address, units, len(units))

    assert sorted(key or "" for key, _ in found) == sorted(units)
    assert {e.data["unit_id"]: e.data["variation"] for _, e in found} == {
        unit: answer["variation"] for unit, answer in answers.items()}
    assert {e.id for _, e in found} == {f"exposure:{EXPERIMENT}:{u}" for u in units}
    assert all(e.source == "experiments" for _, e in found)


def test_exposures_counted_by_the_stream_come_back_as_results(
        service: TestClient, kafka_server: ServerProcess, redis_client: redis.Redis) -> None:
    run = uuid.uuid4().hex[:8]
    units = {f"it-{run}-{i}" for i in range(40)}
    variations = {u: service.get("/v1/assignments", params={
        "unit_id": u, "experiment": EXPERIMENT}).json()["variation"] for u in units}

    handler = ExperimentEventsHandler(redis_client)
    for _, event in exposures_of(kafka_server.address, units, len(units)):
        handler.handle(event)
    handler.flush()
    results = service.get(f"/v1/experiments/{EXPERIMENT}/results").json()
    plot = service.get(f"/v1/experiments/{EXPERIMENT}/results.png")

    exposed = {v["name"]: v["exposed"] for v in results["variations"]}
    assert exposed == {name: sum(1 for v in variations.values() if v == name)
                       for name in ("control", "treatment")}
    assert results["sample_ratio_mismatch"]["observed"] == exposed
    assert (plot.status_code, plot.headers["content-type"]) == (200, "image/png")


def test_every_change_of_a_definition_is_in_the_record_with_who_made_it(
        service: TestClient, records: ConnectionPool) -> None:
    body = {"key": "button-color", "status": "draft", "variations": [
        {"name": "control", "weight": 0.5}, {"name": "blue", "weight": 0.5}]}
    assert service.put("/v1/experiments/button-color", json=body, headers=ADMIN).status_code \
        == 201
    service.put("/v1/experiments/button-color", json={**body, "description": "v2"},
                headers=ADMIN)
    for status in ("running", "stopped"):
        service.put("/v1/experiments/button-color/status", json={"status": status},
                    headers=ADMIN)
    history = PostgresExperimentHistory(records)
    changes = history.changes("button-color")
    assert [(c.change, c.status, c.actor) for c in changes] == [
        ("create", "draft", "admin API"), ("update", "draft", "admin API"),
        ("status", "running", "admin API"), ("status", "stopped", "admin API")]
    assert changes[1].definition.description == "v2"
    assert [d.status for d in history.definitions()] == ["stopped"]


def test_replications_are_pooled_from_the_streams_counters_each_as_of_its_end(
        service: TestClient, redis_client: redis.Redis) -> None:
    run = uuid.uuid4().hex[:6]
    keys = [f"pool-{run}-r{i}" for i in (1, 2)]
    for key in keys:
        body = {"key": key, "status": "running", "variations": [
            {"name": "control", "weight": 0.5, "payload": {"algorithm": "ranker"}},
            {"name": "treatment", "weight": 0.5,
             "payload": {"algorithm": "ranker", "ranker_version": 2}}]}
        assert service.put(f"/v1/experiments/{key}", json=body, headers=ADMIN).status_code == 201
    handler = ExperimentEventsHandler(redis_client)
    t0 = 1_700_000_000_000
    for r, key in enumerate(keys):      # the same 10 users in both; round 1: users 0-3 click,
        for i in range(10):
            variation = "control" if (i + r) % 2 else "treatment"
            handler.handle(Event(id=f"x-{key}-{i}", type="exposure", source="it",
                                 time=_at(t0 + r * 60_000), data={
                                     "experiment": key, "variation": variation,
                                     "unit_id": f"u-{run}-{i}"}))
            if 4 * r <= i < 4 * r + 4:  # round 2: users 4-7 click
                handler.handle(Event(id=f"c-{key}-{i}", type="click", source="it",
                                     time=_at(t0 + r * 60_000 + 1_000), data={
                                         "user_id": f"u-{run}-{i}", "content_id": "t1",
                                         "position": 0, "request_id": None}))
    handler.flush()

    late = service.get("/v1/results/pooled", params={"experiment": keys}).json()
    ends = service.get("/v1/results/pooled", params={
        "experiment": keys, "until_ms": [t0 + 30_000, t0 + 90_000]}).json()

    # counted now, round 1 also converts users 4-7 by their round-2 clicks: 8 + 4
    assert sum(v["converted"] for v in late["variations"]) == 12
    # as of each round's end, each round has only its own 4 clickers
    assert sum(v["exposed"] for v in ends["variations"]) == 20
    assert sum(v["converted"] for v in ends["variations"]) == 8
    assert ends["experiment"] == "+".join(keys) and not ends["sample_ratio_mismatch"]["flagged"]


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
