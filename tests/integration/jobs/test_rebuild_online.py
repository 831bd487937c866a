"""make rebuild-online on real Redis, Kafka and PostgreSQL: a flushed Redis comes back the same.

The state the stream built from the topics, the profiles and the experiment definitions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from services.catalog_etl.job import load
from services.common.bus.clients import kafka_publisher
from services.common.bus.envelope import Event
from services.common.bus.kafka_bus import ensure_topics, forget_groups
from services.common.bus.ports import OutboundMessage, publish_or_raise
from services.common.bus.topics import EXPOSURES, REC_CLICKS, REC_IMPRESSIONS, platform_topics
from services.common.records.outbox import OutboxRelay
from services.designs.experiments.definitions import ExperimentDefinition
from services.designs.experiments.records import PostgresExperimentHistory
from services.designs.experiments.store import RedisDefinitionStore
from services.designs.fraud.layout import CARD_LOG, CUSTOMER_LOG
from services.designs.payloads import TitleData
from services.designs.recs.keys import catalog_titles_key, catalog_version_key
from services.designs.recs.records import CatalogRecords, ProfileRecords
from services.designs.recs.redis_store import write_profiles
from services.seeder.__main__ import start_replayer
from services.seeder.catchup import concern_groups, wait_for_stream
from services.seeder.history import transaction_messages
from services.seeder.rebuild import OnlineStateStillThere, Rebuilt, rebuild_online
from services.stream.app import create_app as create_stream
from services.stream.concerns import CONCERNS as CONCERNS_TABLE
from services.stream.concerns import Concern, select
from services.stream.settings import StreamSettings
from tests.harness import REPO_ROOT, ServerProcess, start_kafka

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A broker of this module's own. A rebuild replays whole topics, and the session broker's
    also hold other tests' events, about entities of the same names, which a replay interleaves
    differently: the state would differ for reasons that are not the rebuild's."""
    server = start_kafka(Path(tmp_path_factory.mktemp("kafka-rebuild")))
    yield server
    server.stop()
# Every concern but the watches', whose handler needs a trained ranker's item embeddings; that
# path is the same runner and the same replay (tests/e2e covers the watch concern itself).
CONCERNS = "transaction-features,fraud-labels,experiments,catalog-titles"
NOW = datetime.now(UTC).replace(microsecond=0)


def transactions() -> pd.DataFrame:
    rows = []
    for i in range(40):
        card = f"card{i % 4}"
        rows.append({
            "transaction_id": f"rb-tx-{i}", "customer_id": f"cust{i % 4}", "card_id": card,
            "amount": 10.0 + i, "currency": "EUR", "transaction_type": "purchase",
            "merchant_id": f"m{i % 7}", "merchant_category": "grocery",
            "terminal_id": f"term{i % 5}", "latitude": 48.85, "longitude": 2.35,
            "tx_datetime": (NOW - timedelta(hours=40 - i)).replace(tzinfo=None),
            "ip_address": f"81.0.0.{i % 9}", "device_id": f"dev{i % 3}",
            "label_time": (NOW - timedelta(hours=20 - i)).replace(tzinfo=None),
            "is_fraud": i % 10 == 0})
    return pd.DataFrame(rows)


def experiment_messages() -> list[OutboundMessage]:
    messages = []
    for i in range(30):
        user, variation = f"user{i}", "control" if i % 2 else "ranker"
        at = NOW - timedelta(minutes=30 - i)
        messages += [
            OutboundMessage.of(EXPOSURES, user, Event(
                id=f"rb-exp-{i}", type="exposure", source="test", time=at, data={
                    "experiment": "rec-algorithm", "variation": variation, "unit_id": user})),
            OutboundMessage.of(REC_IMPRESSIONS, user, Event(
                id=f"rb-imp-{i}", type="impression", source="test", time=at, data={
                    "user_id": user, "content_ids": ["t1", "t2"], "request_id": f"r{i}",
                    "experiment": "rec-algorithm", "variation": variation}))]
        if i % 3 == 0:
            messages.append(OutboundMessage.of(REC_CLICKS, user, Event(
                id=f"rb-click-{i}", type="click", source="test", time=at, data={
                    "user_id": user, "content_id": "t1", "position": 0, "request_id": f"r{i}"})))
    return messages


def rebuild(settings: StreamSettings, records: ConnectionPool, client: redis.Redis,
            concerns: list[Concern], start_stream: Callable[[], object]) -> Rebuilt:
    """The stream runs in this process (a TestClient): there is nothing to stop first."""
    def start() -> None:
        start_stream()

    publisher = kafka_publisher(settings, client_id="rebuild-test")
    try:
        return rebuild_online(settings, records, client, publisher, stop_stream=lambda: None,
                              start_stream=start, concerns=concerns, timeout_s=60, poll_s=0.2)
    finally:
        publisher.close()


def snapshot(client: redis.Redis) -> dict[str, Any]:
    """Every key but the dedupe marks, with its value read by type. A fraud log is a set of
    records: a customer's come from several cards, so from several partitions, whose replay
    may interleave them in another order than the first time; compared as sorted records."""
    state: dict[str, Any] = {}
    for raw in client.scan_iter(count=1_000):
        key = raw.decode()
        if ":dedupe:" in key:
            continue
        kind = client.type(key).decode()
        state[key] = {"string": client.get, "hash": client.hgetall,
                      "list": lambda k: client.lrange(k, 0, -1), "set": client.smembers,
                      "zset": lambda k: client.zrange(k, 0, -1, withscores=True)}[kind](key)
        for view in (CUSTOMER_LOG, CARD_LOG):
            if f":{view.name}:" in key:
                records = np.frombuffer(state[key], dtype=view.record)
                state[key] = sorted(record.tobytes() for record in records)
    return state


def test_a_flushed_redis_is_rebuilt_to_the_same_state(
        redis_server: ServerProcess, redis_client: redis.Redis, kafka_server: ServerProcess,
        records: ConnectionPool, tmp_path: Path) -> None:
    settings = StreamSettings(redis_url=redis_server.address, environment="test",
                              kafka_bootstrap_servers=kafka_server.address,
                              model_repository=tmp_path / "models", stream_concerns=CONCERNS,
                              stream_commit_interval_s=0.2)
    concerns = select(CONCERNS)
    ensure_topics(kafka_server.address, platform_topics(3))
    forget_groups(kafka_server.address, [c.group for c in concerns])  # a build from the start
    # What the system of record holds: profiles, an experiment, a catalog (published through
    # its outbox, as make catalog does), and what the topics hold: transactions, labels, A/B.
    ProfileRecords(records).save([("user1", "kids", 1), ("user2", "adult", 4)])
    definition = ExperimentDefinition.model_validate({
        "key": "rec-algorithm", "status": "running",
        "variations": [{"name": "control", "weight": 0.5}, {"name": "ranker", "weight": 0.5}]})
    PostgresExperimentHistory(records).record("create", definition, actor="test")
    catalog = tmp_path / "titles.csv"
    catalog.write_text("content_id,title,genres\nt1,One,Drama\nt2,Two,Comedy\n")
    load(catalog, None, records=CatalogRecords(records), progress=False)
    publisher = kafka_publisher(settings, client_id="rebuild-test")
    try:
        OutboxRelay(records, publisher).drain()
        publish_or_raise(publisher, [*transaction_messages(transactions(), timedelta(), NOW),
                                     *experiment_messages()])
    finally:
        publisher.close()

    with contextlib.ExitStack() as running:
        # the first build: as the seeder and the services write it
        write_profiles(redis_client, ProfileRecords(records).all())
        RedisDefinitionStore(redis_client).add_missing([definition])
        running.enter_context(TestClient(create_stream(settings)))
        assert wait_for_stream(kafka_server.address, 60, concern_groups(concerns), poll_s=0.2)
    before = snapshot(redis_client)
    assert any(k.startswith("fs:fraud_") for k in before) and "fs:user_profile:{user1}" in before

    with pytest.raises(OnlineStateStillThere):  # Redis not lost: a replay would count twice
        rebuild(settings, records, redis_client, concerns, lambda: None)

    redis_client.flushall()
    with contextlib.ExitStack() as running:
        rebuilt = rebuild(settings, records, redis_client, concerns, lambda: running.enter_context(
            TestClient(create_stream(settings))))
    assert rebuilt.caught_up and (rebuilt.profiles, rebuilt.experiments, rebuilt.titles) \
        == (2, 1, 2)
    after = snapshot(redis_client)
    assert sorted(after) == sorted(before)
    # The catalog's version never repeats, not even after Redis was lost (it is a clock): it is
    # how the recommender knows to reload the titles. Every other key is as it was.
    version = catalog_version_key()
    assert int(after.pop(version)) > int(before.pop(version))
    assert {k: v for k, v in after.items() if v != before[k]} == {}


def test_a_title_the_catalog_topic_no_longer_holds_comes_back_from_the_record(
        redis_server: ServerProcess, redis_client: redis.Redis, kafka_server: ServerProcess,
        records: ConnectionPool, tmp_path: Path) -> None:
    """Loaded long ago: in catalog_titles, past the topic's retention (never published here)."""
    settings = StreamSettings(redis_url=redis_server.address, environment="test",
                              kafka_bootstrap_servers=kafka_server.address,
                              model_repository=tmp_path / "models",
                              stream_concerns="catalog-titles", stream_commit_interval_s=0.2)
    concerns = select("catalog-titles")
    ensure_topics(kafka_server.address, platform_topics(3))
    CatalogRecords(records).save([TitleData(content_id="old-t9", title="Nine", genres=["Drama"])],
                                 [], "catalog-etl", NOW - timedelta(days=400))
    with contextlib.ExitStack() as running:
        rebuilt = rebuild(settings, records, redis_client, concerns, lambda: running.enter_context(
            TestClient(create_stream(settings))))
    assert rebuilt.caught_up and rebuilt.titles == 1
    stored = redis_client.hget(catalog_titles_key(), "old-t9")
    assert stored is not None and b"Nine" in stored


def test_the_local_rebuild_replays_transactions_through_a_processor_of_its_own(
        redis_server: ServerProcess, redis_client: redis.Redis, kafka_server: ServerProcess,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make rebuild-online` on the local stack: the supervised processor runs the default
    concerns, which leave `transactions` to the fraud scorers (docs/adr/0007); the rebuild
    replays it with a `python -m services.stream` of its own, as the seeder starts it."""
    concerns = [c for c in CONCERNS_TABLE if not c.default]
    assert [c.name for c in concerns] == ["transaction-features"]
    ensure_topics(kafka_server.address, platform_topics(3))
    forget_groups(kafka_server.address, [c.group for c in concerns])
    publisher = kafka_publisher(StreamSettings(kafka_bootstrap_servers=kafka_server.address,
                                               environment="test"), client_id="rebuild-test")
    try:
        publish_or_raise(publisher, list(transaction_messages(transactions(), timedelta(), NOW)))
    finally:
        publisher.close()
    monkeypatch.chdir(tmp_path)
    for name, value in {"MLSD_REDIS_URL": redis_server.address, "MLSD_ENVIRONMENT": "test",
                        "MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka_server.address,
                        "MLSD_MODEL_REPOSITORY": str(tmp_path / "models"),
                        "MLSD_STREAM_COMMIT_INTERVAL_S": "0.2",
                        "PYTHONPATH": str(REPO_ROOT)}.items():
        monkeypatch.setenv(name, value)

    replayer = start_replayer(concerns)
    try:
        assert wait_for_stream(kafka_server.address, 90, concern_groups(concerns), poll_s=0.5)
    finally:
        replayer.terminate()
        replayer.wait(60)
    assert redis_client.get("fs:fraud_card_log:{card0}")
    assert (tmp_path / ".state" / "logs" / "rebuild-replayer.log").exists()
