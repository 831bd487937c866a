"""MLSD_KAFKA_CLIENT picks the Kafka client behind the bus ports; a wrong name fails at start."""

import contextlib
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from services.common.bus import confluent_bus
from services.common.bus.clients import kafka_publisher, kafka_record_source
from services.common.bus.confluent_bus import ConfluentPublisher, ConfluentRecordSource
from services.common.bus.ports import OutboundMessage
from services.common.kafka_access import KafkaAccess
from services.common.settings import PlatformSettings
from services.devstack.cluster import make_kafka_tls

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


def test_the_producer_retries_a_leaderless_batch_every_100_ms_unless_told_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """librdkafka's own default backs retries off to 1 s: the first write after a broker's
    fencing came up to a second late (docs/reliability.md, fault 1)."""
    settings = PlatformSettings(kafka_bootstrap_servers=NO_BROKER, kafka_client="confluent")
    publisher = kafka_publisher(settings, client_id="unit", delivery_timeout_s=0.5)
    monkeypatch.setenv("MLSD_KAFKA_RETRY_BACKOFF_MAX_MS", "1000")
    before = kafka_publisher(PlatformSettings(kafka_bootstrap_servers=NO_BROKER),
                             client_id="unit", delivery_timeout_s=0.5)
    try:
        assert isinstance(publisher, ConfluentPublisher) and isinstance(before, ConfluentPublisher)
        assert publisher.config["retry.backoff.max.ms"] == 100
        assert before.config["retry.backoff.max.ms"] == 1000
        assert before.config["retry.backoff.ms"] == 100
    finally:
        before.close()
        publisher.close()


def test_a_fatal_producer_error_is_said_once_and_the_reports_are_still_served(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """librdkafka raises a fatal error (a user refused the idempotent producer id by the
    brokers' authorizer) from every poll: the thread serving the delivery reports said it once
    and stopped, in the authenticated topology's test, until it caught it."""
    polls: list[float] = []

    class RefusedProducer:
        def __init__(self, config: dict[str, object]) -> None:
            pass

        def poll(self, timeout: float) -> int:
            polls.append(timeout)
            raise confluent_bus.KafkaException(confluent_bus.KafkaError(
                confluent_bus.KafkaError.CLUSTER_AUTHORIZATION_FAILED, "no producer id",
                fatal=True))

        def flush(self, timeout: float) -> int:
            return 0

    monkeypatch.setattr(confluent_bus, "Producer", RefusedProducer)
    publisher = ConfluentPublisher(NO_BROKER, "unit", delivery_timeout_s=0.5)
    try:
        time.sleep(0.5)
        assert publisher._poller.is_alive()
        assert len(polls) >= 2, "it stopped polling after the first error"
    finally:
        publisher.close()
    refused = [r for r in caplog.records if r.getMessage() == "kafka producer failed"]
    assert len(refused) == 1
    assert "CLUSTER_AUTHORIZATION_FAILED" in str(refused[0].__dict__.get("error"))


def test_a_delivery_that_timed_out_names_why_the_brokers_were_out_of_reach(
        tmp_path: Path) -> None:
    """A TLS listener whose certificate another CA signed: librdkafka's report says only
    "Message timed out"; the publisher adds the handshake's refusal it was told of."""
    make_kafka_tls(tmp_path / "broker")
    trusted = make_kafka_tls(tmp_path / "another")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "broker/broker.pem", tmp_path / "broker/broker.key")
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                connection, _ = listener.accept()
                with contextlib.suppress(OSError), context.wrap_socket(
                        connection, server_side=True) as tls:
                    tls.recv(1)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    access = KafkaAccess(f"127.0.0.1:{listener.getsockname()[1]}", "SASL_SSL", "SCRAM-SHA-512",
                         "u", SecretStr("p"), str(trusted))
    publisher = ConfluentPublisher(access, "unit", delivery_timeout_s=1.0)
    try:
        [delivery] = publisher.publish([OutboundMessage("t", "k", b"{}")])
    finally:
        publisher.close()
        stop.set()
        server.join(2)
        listener.close()
    assert "certificate verify failed" in (delivery.error or ""), delivery.error
