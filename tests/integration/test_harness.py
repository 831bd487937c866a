"""The harness really starts redis-server and Kafka: a missing server fails the run."""

import pytest

from services.common.probe import kafka_ready, redis_ready
from tests.harness import ServerProcess

pytestmark = pytest.mark.integration


def test_redis_server_answers_ping(redis_server: ServerProcess) -> None:
    assert redis_ready(redis_server.address)


def test_kafka_broker_answers_metadata(kafka_server: ServerProcess) -> None:
    assert kafka_ready(kafka_server.address)
