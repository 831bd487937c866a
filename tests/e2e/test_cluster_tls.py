"""The cluster topology's brokers with TLS: the client and replication listener SASL_SSL, with a
certificate authority and a broker certificate made for the topology (openssl), and both client
adapters verifying the broker against that CA and its name against the address dialled
(docs/reliability.md, "Kafka over TLS").
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.bus.acls import grant, service_acls
from services.common.bus.confluent_bus import ConfluentPublisher
from services.common.bus.kafka_bus import KafkaPublisher, ensure_topics
from services.common.bus.topics import TopicSpec
from services.common.probe import kafka_ready
from services.devstack.cluster import TOOLING_KAFKA_USERNAME, make_kafka_tls
from services.devstack.servers import ClusterTopology, start_cluster_topology
from tests.support.kafka_clients import assert_cross_client_round_trip, delivery_error

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


@pytest.fixture(scope="module")
def tls_topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTopology]:
    """Three KRaft nodes whose BROKER listener is SASL_SSL; no Redis (these tests need none)."""
    topology = start_cluster_topology(Path(tmp_path_factory.mktemp("tls")),
                                      redis_password=secrets.token_urlsafe(16), redis_masters=0,
                                      tls=True)
    yield topology
    topology.stop()


def own_topic(topology: ClusterTopology) -> str:
    """A topic and a group of the test's own, granted to the tests' user."""
    topic = f"it-tls-{uuid.uuid4().hex[:8]}"
    ensure_topics(topology.kafka_admin_access, [TopicSpec(topic, 3, replication_factor=3)])
    grant(topology.kafka_admin_access, service_acls(
        TOOLING_KAFKA_USERNAME, topics=[topic], group_prefixes=(), groups=[f"it-tls-{topic}"]))
    return topic


@pytest.mark.parametrize("clients", ["confluent-then-kafka-python", "kafka-python-then-confluent"])
def test_both_clients_produce_and_consume_over_tls_checking_the_broker(
        tls_topology: ClusterTopology, clients: str) -> None:
    access = tls_topology.kafka_access
    assert access.security_protocol == "SASL_SSL" and access.ssl_cafile
    assert kafka_ready(access)
    topic = own_topic(tls_topology)
    assert_cross_client_round_trip(access, topic, clients.startswith("confluent"), "it-tls")


def test_a_client_trusting_another_ca_or_without_tls_is_refused_and_told_why(
        tls_topology: ClusterTopology, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    topic = own_topic(tls_topology)
    right = tls_topology.kafka_access
    assert delivery_error(ConfluentPublisher, right, topic, "it-tls", 5) is None
    other_ca = make_kafka_tls(tmp_path / "another-ca")
    wrong = dataclasses.replace(right, ssl_cafile=str(other_ca))
    assert not kafka_ready(wrong)
    # librdkafka's delivery fails naming the refused handshake (the publisher adds it to the
    # report's "Message timed out")
    error = delivery_error(ConfluentPublisher, wrong, topic, "it-tls", 5)
    assert error and "certificate verify failed" in error, error
    # kafka-python's producer cannot bootstrap, and its log says why at WARNING
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kafka"):
        error = delivery_error(KafkaPublisher, wrong, topic, "it-tls", 5)
    assert error, "KafkaPublisher: a client trusting another CA stored an event"
    told = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [m for m in told if "CERTIFICATE_VERIFY_FAILED" in m], told[:5]
    # the same credentials without TLS: the listener expects a TLS handshake first
    plain = dataclasses.replace(right, security_protocol="SASL_PLAINTEXT", ssl_cafile=None)
    assert not kafka_ready(plain)
    assert delivery_error(ConfluentPublisher, plain, topic, "it-tls", 5)
