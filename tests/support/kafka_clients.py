"""Both Kafka client adapters against one broker: ten events through one, read by the other;
and why one event was not stored (a refused user, an untrusted CA)."""

from __future__ import annotations

import contextlib
import logging
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
    # A topic granted a moment ago: each broker applies the grant from the metadata log in its
    # own time, and a broker that has not yet refuses the topic (the failed deliveries are sent
    # again, as a service's caller would, for up to 30 s); a client that cannot reach the
    # broker at all fails every time.
    pending = {n: OutboundMessage(topic, f"k{n}", f"{n}".encode()) for n in range(10)}
    seen: list[str | None] = []
    deadline = time.monotonic() + 30
    try:
        while pending and time.monotonic() < deadline:
            numbers = sorted(pending)
            sent = publisher.publish([pending[n] for n in numbers])
            seen += [d.error for d in sent if d.error]
            pending = {n: pending[n] for n, d in zip(numbers, sent, strict=True) if d.error}
            if pending:
                time.sleep(0.5)
    finally:
        publisher.close()
    # tests/support is not rewritten by pytest: the message is the only record of what failed
    assert not pending, f"not acknowledged in 30 s: {sorted(pending)}; errors: {seen}"
    if seen:  # in the test's captured log
        logging.getLogger(__name__).warning("acknowledged on a later try; errors before: %s",
                                            seen)
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
