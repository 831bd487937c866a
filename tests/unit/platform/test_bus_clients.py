"""MLSD_KAFKA_CLIENT picks the Kafka client behind the bus ports; a wrong name fails at start."""

import time

import pytest
from pydantic import ValidationError

from services.common.bus.clients import kafka_publisher, kafka_record_source
from services.common.bus.confluent_bus import ConfluentPublisher, ConfluentRecordSource
from services.common.bus.ports import OutboundMessage
from services.common.settings import PlatformSettings

NO_BROKER = "127.0.0.1:1"  # nothing listens there: librdkafka connects in the background


def test_confluent_kafka_is_the_default_and_kafka_python_the_alternative(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert PlatformSettings().kafka_client == "confluent"
    monkeypatch.setenv("MLSD_KAFKA_CLIENT", "kafka-python")
    assert PlatformSettings().kafka_client == "kafka-python"


def test_an_unknown_kafka_client_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_KAFKA_CLIENT", "rdkafka")
    with pytest.raises(ValidationError, match="kafka_client"):
        PlatformSettings()


def test_the_confluent_choice_builds_librdkafka_adapters_without_blocking_on_the_broker() -> None:
    settings = PlatformSettings(kafka_bootstrap_servers=NO_BROKER, kafka_client="confluent")
    start = time.monotonic()
    publisher = kafka_publisher(settings, client_id="unit", delivery_timeout_s=0.5)
    source = kafka_record_source(settings, "unit-group", ["t"], client_id="unit")
    try:
        assert isinstance(publisher, ConfluentPublisher)
        assert isinstance(source, ConfluentRecordSource)
        assert time.monotonic() - start < 1.0
    finally:
        source.close()
        publisher.close()


def test_without_a_broker_a_confluent_publish_fails_within_its_delivery_timeout() -> None:
    settings = PlatformSettings(kafka_bootstrap_servers=NO_BROKER, kafka_client="confluent")
    publisher = kafka_publisher(settings, client_id="unit", delivery_timeout_s=0.5)
    try:
        start = time.monotonic()
        [delivery] = publisher.publish([OutboundMessage("t", "k", b"{}")])
        assert not delivery.ok
        assert "timed out" in (delivery.error or "").lower()
        assert time.monotonic() - start < 3.0
    finally:
        publisher.close()
