"""Topic set-up on the real broker: topics get their spec's partitions, and an older topic with
fewer is grown at start, never shrunk, so every scorer process of a group gets partitions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient

from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import TopicSpec
from tests.harness import ServerProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def admin(kafka_server: ServerProcess) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=kafka_server.address, client_id="it-partitions")
    yield client
    client.close()


def partitions(admin: KafkaAdminClient, topic: str) -> int:
    [described] = admin.describe_topics([topic])
    return len(described["partitions"])


def test_a_topic_with_fewer_partitions_than_its_spec_is_grown(
        kafka_server: ServerProcess, admin: KafkaAdminClient) -> None:
    name = f"it-grow-{uuid.uuid4().hex[:8]}"
    assert ensure_topics(kafka_server.address, [TopicSpec(name, 3)]) == [name]
    assert partitions(admin, name) == 3

    created = ensure_topics(kafka_server.address, [TopicSpec(name, 12)])

    assert created == []
    assert partitions(admin, name) == 12


def test_a_topic_with_more_partitions_than_its_spec_is_left_alone(
        kafka_server: ServerProcess, admin: KafkaAdminClient) -> None:
    name = f"it-keep-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_server.address, [TopicSpec(name, 6)])

    ensure_topics(kafka_server.address, [TopicSpec(name, 3)])
    ensure_topics(kafka_server.address, [TopicSpec(name, 6)])  # equal: nothing to do

    assert partitions(admin, name) == 6
