"""The harness really starts redis-server, Kafka and PostgreSQL: a missing server fails the run."""

import pytest
from pydantic import SecretStr

from services.common.probe import kafka_ready, redis_ready
from services.common.records.pool import postgres_ready
from services.common.records.settings import PostgresSettings
from tests.harness import ServerProcess

pytestmark = pytest.mark.integration


def test_redis_server_answers_ping(redis_server: ServerProcess) -> None:
    assert redis_ready(redis_server.address)


def test_kafka_broker_answers_metadata(kafka_server: ServerProcess) -> None:
    assert kafka_ready(kafka_server.address)


def test_postgres_answers_a_query_with_the_projects_role_and_database(
        postgres_settings: PostgresSettings) -> None:
    assert postgres_ready(postgres_settings)
    wrong = postgres_settings.model_copy(update={"postgres_password": SecretStr("not-it")})
    assert not postgres_ready(wrong)  # scram over TCP: the password is checked
