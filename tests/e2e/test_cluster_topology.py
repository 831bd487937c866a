"""The same services on `make run-cluster`'s topology: 3 KRaft brokers (replication factor 3,
min.insync.replicas 2) authenticating every client (SASL/SCRAM-SHA-512), a Kafka user per
service allowed only its own topics and groups, and a 3-master, 3-replica Redis Cluster with a
password.

The named end-to-end subset of issue 17: ingest -> Kafka -> stream -> Redis Cluster features ->
fraud and the recommender, every service unchanged and pointed at the clusters by settings.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from confluent_kafka import KafkaException
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.admin._users import UserScramCredentialUpsertion
from kafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr
from redis.cluster import RedisCluster

from services.common.bus.acls import add_users, grant, service_acls, service_topics
from services.common.bus.confluent_bus import ConfluentPublisher, ConfluentRecordSource
from services.common.bus.kafka_bus import KafkaPublisher, KafkaRecordSource, ensure_topics
from services.common.bus.ports import Publisher, RecordSource
from services.common.bus.topics import (
    FRAUD_DECISIONS,
    FRAUD_SCORER_GROUP,
    REC_IMPRESSIONS,
    TRANSACTIONS,
    TopicSpec,
    platform_topics,
)
from services.common.kafka_access import KafkaAccess
from services.common.probe import kafka_ready
from services.common.settings import PlatformSettings
from services.designs.fraud.layout import CARD_RECORD
from services.devstack.cluster import (
    SHARED_KAFKA_USERNAME,
    TOOLING_KAFKA_USERNAME,
    set_up_kafka_users,
)
from services.trainer.feedback import read_topic
from tests.e2e.conftest import ServiceProcess
from tests.harness import ClusterTopology
from tests.support.kafka_clients import assert_cross_client_round_trip, delivery_error

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
StartService = Callable[..., ServiceProcess]


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.1)


def transaction(run: str, n: int, card: str, at: datetime) -> dict[str, Any]:
    return {"transaction_id": f"{run}-{n}", "user_id": "cust1", "card_id": card,
            "amount": 42.0, "currency": "EUR", "transaction_type": "purchase",
            "merchant_id": "m1", "merchant_category": "grocery", "terminal_id": "term1",
            "latitude": 48.8566, "longitude": 2.3522, "timestamp": at.isoformat(),
            "ip_address": "81.2.3.4", "device_id": "dev1"}


def event(kind: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {"id": f"e2e-{uuid.uuid4().hex}", "type": kind, "source": "e2e",
            "time": at.isoformat(), "data": data}


def test_every_topic_has_three_replicas_and_refuses_writes_with_fewer_than_two_in_sync(
        cluster_topology: ClusterTopology, cluster_topics: None) -> None:
    names = [spec.name for spec in platform_topics(3)]
    admin = KafkaAdminClient(**cluster_topology.kafka_admin_access.python_config())
    try:
        described = admin.describe_topics(names)
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names])["topic"]
    finally:
        admin.close()
    partitions = [p for topic in described for p in topic["partitions"]]
    assert {len(p["replica_nodes"]) for p in partitions} == {3}
    assert {len(p["isr_nodes"]) for p in partitions} == {3}
    assert {p["leader_id"] for p in partitions} == {1, 2, 3}, "leaders spread over the brokers"
    assert {configs[name]["min.insync.replicas"]["value"] for name in names} == {"2"}


def test_kafka_refuses_a_client_without_credentials_or_with_a_wrong_password(
        cluster_topology: ClusterTopology) -> None:
    right = cluster_topology.kafka_access
    wrong = dataclasses.replace(right, password=SecretStr("not-the-password"))
    assert kafka_ready(right)
    assert not kafka_ready(cluster_topology.kafka_bootstrap), "PLAINTEXT, no credentials"
    assert not kafka_ready(wrong)
    for adapter in (ConfluentPublisher, KafkaPublisher):
        error = refusal(adapter, wrong)
        assert error, f"{adapter.__name__}: a wrong password stored an event"
        assert "not-the-password" not in error


def refusal(adapter: Callable[..., Publisher], access: KafkaAccess,
            topic: str = FRAUD_DECISIONS) -> str | None:
    """Why one event was not stored in `topic`, or None when it was."""
    return delivery_error(adapter, access, topic, "it-wrong", 3)


@pytest.mark.parametrize("clients", ["confluent-then-kafka-python", "kafka-python-then-confluent"])
def test_with_the_credentials_both_clients_produce_and_consume(
        cluster_topology: ClusterTopology, clients: str) -> None:
    access = cluster_topology.kafka_access
    topic = f"it-auth-{uuid.uuid4().hex[:8]}"
    # a topic and a group of the test's own, granted to the tests' user
    ensure_topics(cluster_topology.kafka_admin_access, [TopicSpec(topic, 3, replication_factor=3)])
    grant(cluster_topology.kafka_admin_access, service_acls(
        TOOLING_KAFKA_USERNAME, topics=[topic], group_prefixes=(), groups=[f"it-auth-{topic}"]))
    assert_cross_client_round_trip(access, topic, clients.startswith("confluent"), "it-auth")


def test_a_user_without_acls_is_refused_and_the_services_user_only_has_the_platforms_topics(
        cluster_topology: ClusterTopology, cluster_topics: None) -> None:
    """The authorizer (StandardAuthorizer, broker the super user): an authenticated user with no
    ACL gets nothing, and the services' user nothing beyond its topics and groups."""
    admin = cluster_topology.kafka_admin_access
    password = f"foreign-{uuid.uuid4().hex}"
    client = KafkaAdminClient(**admin.python_config())
    try:
        assert client.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "foreign", "SCRAM-SHA-512", password)]) == {"foreign": None}
    finally:
        client.close()
    foreign = dataclasses.replace(cluster_topology.kafka_access, username="foreign",
                                  password=SecretStr(password))
    wait_for(lambda: kafka_ready(foreign), 30, "the foreign user's login")  # it authenticates

    for adapter in (ConfluentPublisher, KafkaPublisher):
        error = refusal(adapter, foreign)
        assert error, f"{adapter.__name__}: a user without ACLs stored an event"
        # said plainly: librdkafka's TOPIC_AUTHORIZATION_FAILED, kafka-python's
        # TopicAuthorizationFailedError; not a timeout
        assert "authorization" in error.lower(), f"{adapter.__name__}: {error}"
    # it sees no topic of the platform, cannot read one with a group of the services' or create
    # one
    client = KafkaAdminClient(**foreign.python_config())
    try:
        assert not set(client.list_topics()) & set(service_topics())
        with pytest.raises((TopicAuthorizationFailedError, ClusterAuthorizationFailedError)):
            client.create_topics([NewTopic("foreign-topic", 1, 3)])
    finally:
        client.close()
    # both consumers raise the refusal (librdkafka's would otherwise log it on every poll)
    for adapter in (KafkaRecordSource, ConfluentRecordSource):
        refused = consumer_refusal(adapter, foreign, "stream-watch-features", FRAUD_DECISIONS)
        assert "authorization" in refused.lower(), refused

    # the tests' user (which may write and read every topic of the platform): no topic
    # created outside the platform's, none deleted
    client = KafkaAdminClient(**cluster_topology.kafka_access.python_config())
    try:
        with pytest.raises((TopicAuthorizationFailedError, ClusterAuthorizationFailedError)):
            client.create_topics([NewTopic(f"not-the-platforms-{uuid.uuid4().hex[:6]}", 1, 3)])
        with pytest.raises(TopicAuthorizationFailedError):
            client.delete_topics([FRAUD_DECISIONS])
        assert FRAUD_DECISIONS in set(client.list_topics()), "the refused deletion left it"
    finally:
        client.close()


def consumer_refusal(adapter: Callable[..., RecordSource], access: KafkaAccess, group: str,
                     topic: str) -> str:
    """What a consumer in `group` on `topic` raised within 20 s of polls (a refusal)."""
    source = adapter(access, group, [topic], client_id="it-refused")
    try:
        with pytest.raises((TopicAuthorizationFailedError, GroupAuthorizationFailedError,
                            KafkaException)) as refused:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                source.poll(0.5, 10)
        return f"{type(refused.value).__name__}: {refused.value}"
    finally:
        source.close()


def test_each_services_user_is_refused_what_it_does_not_use(
        cluster_topology: ClusterTopology, cluster_topics: None) -> None:
    """A user per service (services/devstack/kafka_principals.py): the recommender's may
    write its impressions but not fraud's decisions, ingest's may write events but join no
    group, the stream's may read transactions in its own group but not in the fraud scorers'."""
    recommender = cluster_topology.kafka_access_of("recommender")
    for adapter in (ConfluentPublisher, KafkaPublisher):
        assert refusal(adapter, recommender, REC_IMPRESSIONS) is None, adapter.__name__
        error = refusal(adapter, recommender, FRAUD_DECISIONS)
        assert error, f"{adapter.__name__}: the recommender's user stored a fraud decision"
        assert "authorization" in error.lower(), f"{adapter.__name__}: {error}"
    ingest = cluster_topology.kafka_access_of("ingest")
    assert refusal(KafkaPublisher, ingest, TRANSACTIONS) is None
    for source in (KafkaRecordSource, ConfluentRecordSource):
        refused = consumer_refusal(source, ingest, "stream-transaction-features", TRANSACTIONS)
        assert "authorization" in refused.lower(), f"{source.__name__}: {refused}"
    stream = cluster_topology.kafka_access_of("stream")
    refused = consumer_refusal(KafkaRecordSource, stream, FRAUD_SCORER_GROUP, TRANSACTIONS)
    assert "GroupAuthorizationFailed" in refused, refused
    assert refusal(ConfluentPublisher, stream, FRAUD_DECISIONS), "the stream wrote a decision"


def test_an_earlier_runs_shared_user_is_revoked_and_each_users_set_up_is_repeatable(
        cluster_topology: ClusterTopology, cluster_topics: None) -> None:
    """A cluster kept from before a user per service has `mlsd` with the platform's topics:
    setting the users up again (each `make run-cluster`) deletes it and its ACLs."""
    admin = cluster_topology.kafka_admin_access
    password = f"shared-{uuid.uuid4().hex}"
    add_users(admin, {SHARED_KAFKA_USERNAME: password})
    grant(admin, service_acls(SHARED_KAFKA_USERNAME))
    shared = dataclasses.replace(cluster_topology.kafka_access, username=SHARED_KAFKA_USERNAME,
                                 password=SecretStr(password))
    wait_for(lambda: kafka_ready(shared), 30, "the shared user's login")
    assert refusal(ConfluentPublisher, shared) is None, "as before: it could write decisions"

    revoked = set_up_kafka_users(cluster_topology.secrets, cluster_topology.kafka_bootstrap)
    # the shared user's, and any grant the table does not make (earlier tests' own topics)
    assert revoked >= len(service_acls(SHARED_KAFKA_USERNAME))
    wait_for(lambda: not kafka_ready(shared), 30, "the shared user's login refused")
    # the services' users, set up a second time, still log in and write
    assert refusal(KafkaPublisher, cluster_topology.kafka_access_of("fraud")) is None


def test_neither_password_is_in_a_service_log_or_its_settings(
        on_cluster: StartService, cluster_topology: ClusterTopology,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At DEBUG, the services that use every kind of Kafka client (ingest: the probe, the admin
    client, a producer; the stream: consumer groups and their dead-letter producers)."""
    environment = cluster_topology.service_environment()
    secrets = [*cluster_topology.secrets.kafka_passwords().values(),
               cluster_topology.secrets.kafka_broker_password, environment["MLSD_REDIS_PASSWORD"]]
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = PlatformSettings(service_name="ingest")
    assert settings.kafka_access().authenticates
    shown = f"{settings!r} {settings} {settings.model_dump()} {settings.kafka_access()!r}"
    assert not [s for s in secrets if s in shown]

    stream = on_cluster("stream", MLSD_STREAM_CONCERNS="watch-features", MLSD_LOG_LEVEL="DEBUG")
    ingest = on_cluster("ingest", MLSD_LOG_LEVEL="DEBUG")
    at = datetime.now(UTC)
    response = httpx.post(f"{ingest.url}/v1/events", timeout=10, json={"events": [event(
        "watch", {"user_id": "u1", "content_id": "t1", "watch_seconds": 60, "completed": False},
        at)]})
    assert response.status_code == 202, response.text
    stream.stop()
    ingest.stop()
    logs = {service.name: service.log.read_text(errors="replace") for service in (stream, ingest)}
    assert all(logs.values()), "the services logged nothing: the check would see nothing"
    assert not [(name, s[:4]) for name, text in logs.items() for s in secrets if s in text]


def test_the_redis_cluster_has_three_masters_each_with_a_replica_and_needs_the_password(
        cluster_topology: ClusterTopology, cluster_client: RedisCluster) -> None:
    host, port = cluster_topology.redis_addresses[0].split(":")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=host, port=int(port)).set("k", "v")
    nodes = cluster_client.cluster_nodes()
    assert sorted("master" if "master" in n["flags"] else "slave" for n in nodes.values()) == \
        ["master"] * 3 + ["slave"] * 3
    masters = {n["node_id"] for n in nodes.values() if "master" in n["flags"]}
    assert {n["master_id"] for n in nodes.values() if "slave" in n["flags"]} == masters


def test_an_event_posted_to_ingest_reaches_fraud_and_the_recommender_through_the_clusters(
        on_cluster: StartService, cluster_client: RedisCluster,
        cluster_topology: ClusterTopology) -> None:
    on_cluster("stream", MLSD_STREAM_CONCERNS="watch-features,transaction-features")
    ingest = on_cluster("ingest")
    models = on_cluster("modelserver")
    fraud = on_cluster("fraud")
    recommender = on_cluster("recommender", MLSD_MODEL_BACKEND="remote",
                             MLSD_MODEL_SERVER_URL=models.url)
    run = uuid.uuid4().hex[:8]
    user, card = f"u{800 + int(uuid.uuid4().int % 90)}", f"card-{run}"
    start = datetime.now(UTC) - timedelta(minutes=5)
    body = {"events": [
        *(event("watch", {"user_id": user, "content_id": f"t{i}", "watch_seconds": 1200,
                          "completed": True}, start) for i in range(1, 7)),
        *(event("transaction", transaction(run, n, card, start + timedelta(seconds=10 * n)),
                start) for n in range(3)),
    ]}
    response = httpx.post(f"{ingest.url}/v1/events", json=body, timeout=10)
    assert response.status_code == 202, response.text

    # the stream wrote each key to the master owning its slot; the card's three transactions
    # are its velocity history
    wait_for(lambda: cluster_client.zcard(f"fs:watch_history:{{{user}}}") == 6, 30, "watches")
    wait_for(lambda: len(cluster_client.get(f"fs:fraud_card_log:{{{card}}}") or b"")
             == 3 * CARD_RECORD.itemsize, 30, "the card's transactions")

    scored = httpx.post(f"{fraud.url}/v1/score", timeout=10,
                        json=transaction(run, 3, card, start + timedelta(seconds=40)))
    assert scored.status_code == 200, scored.text
    decision = scored.json()
    assert decision["degraded"] is False
    assert "VELOCITY_1M_COUNT" in decision["rule_hits"]

    # The ranker's first call on a cold model server can outlast its deadline on a slow machine
    # (seen once: a `model` fallback, 2026-12-07): asked again, computed anew, until whole.
    answers: list[dict[str, Any]] = []

    def whole() -> bool:
        answers.append(httpx.get(f"{recommender.url}/v1/recommendations/{user}",
                                 params={"k": 10}, headers={"Cache-Control": "no-cache, no-store"},
                                 timeout=10).json())
        return answers[-1]["fallbacks"] == []

    wait_for(whole, 30, "a recommendation without fallbacks")
    answer = answers[-1]
    assert answer["watch_count"] == 6 and answer["fallbacks"] == []
    assert answer["served_from"] == "computed" and len(answer["items"]) == 10

    deadline = time.monotonic() + 30  # the decision is published after the answer, acks=all
    while time.monotonic() < deadline:
        ids = {d.get("transaction_id") for d in read_topic(cluster_topology.kafka_access,
                                                           FRAUD_DECISIONS)}
        if f"{run}-3" in ids:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the decision never reached fraud-decisions on the cluster")
