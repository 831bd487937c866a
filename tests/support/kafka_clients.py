"""Both Kafka client adapters against one broker: ten events through one, read by the other;
and why one event was not stored (a refused user, an untrusted CA)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from services.common.bus.confluent_bus import ConfluentPublisher, ConfluentRecordSource
from services.common.bus.kafka_bus import KafkaPublisher, KafkaRecordSource
from services.common.bus.ports import OutboundMessage, Publisher, RecordSource
from services.common.kafka_access import KafkaAccess


def assert_cross_client_round_trip(access: KafkaAccess, topic: str, confluent_first: bool,
                                   name: str) -> None:
    """Ten events produced by librdkafka's adapter (confluent_first) or kafka-python's, all
    acknowledged, and every one consumed by the other adapter in group `name`-`topic`."""
    publisher: Publisher = (ConfluentPublisher(access, name) if confluent_first
                            else KafkaPublisher(access, name))
    try:
        sent = publisher.publish([OutboundMessage(topic, f"k{n}", f"{n}".encode())
                                  for n in range(10)])
    finally:
        publisher.close()
    errors = [d.error for d in sent]
    # tests/support is not rewritten by pytest: the message is the only record of what failed
    assert errors == [None] * 10, f"not acknowledged: {errors}"
    source: RecordSource = (KafkaRecordSource if confluent_first else ConfluentRecordSource)(
        access, f"{name}-{topic}", [topic], client_id=name)
    received: list[bytes | None] = []
    try:
        deadline = time.monotonic() + 30
        while len(received) < 10 and time.monotonic() < deadline:
            received += [r.value for r in source.poll(0.5, 100)]
    finally:
        source.close()
    assert sorted(received) == [f"{n}".encode() for n in range(10)]


def delivery_error(adapter: Callable[..., Publisher], access: KafkaAccess, topic: str,
                   name: str, timeout_s: float) -> str | None:
    """Why one event was not stored in `topic` (the publisher's construction or its delivery
    failed), or None when it was."""
    try:
        publisher = adapter(access, name, delivery_timeout_s=timeout_s)
    except Exception as exc:  # kafka-python's producer may refuse while it is built
        return f"{type(exc).__name__}: {exc}"
    try:
        [delivery] = publisher.publish([OutboundMessage(topic, "k", b"{}")])
        return delivery.error
    finally:
        with contextlib.suppress(Exception):
            publisher.close()
