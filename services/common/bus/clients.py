"""The Kafka client behind the bus ports, chosen by MLSD_KAFKA_CLIENT: librdkafka or kafka-python.

Every process builds its producers and consumer-group members here, so one setting switches the
whole platform; the admin side (topics, group lags, one-off reads) stays on kafka-python.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.common.bus.confluent_bus import ConfluentPublisher, ConfluentRecordSource
from services.common.bus.kafka_bus import KafkaPublisher, KafkaRecordSource
from services.common.bus.ports import Publisher, RecordSource
from services.common.settings import PlatformSettings


def kafka_publisher(settings: PlatformSettings, client_id: str, *,
                    delivery_timeout_s: float = 5.0, linger_ms: int = 2,
                    warm_topics: Sequence[str] = ()) -> Publisher:
    """An acks=all idempotent producer on the settings' brokers and credentials, built with
    their client."""
    if settings.kafka_client == "confluent":
        return ConfluentPublisher(settings.kafka_access(), client_id,
                                  delivery_timeout_s=delivery_timeout_s, linger_ms=linger_ms,
                                  warm_topics=warm_topics,
                                  retry_backoff_max_ms=settings.kafka_retry_backoff_max_ms)
    return KafkaPublisher(settings.kafka_access(), client_id,
                          delivery_timeout_s=delivery_timeout_s, linger_ms=linger_ms,
                          warm_topics=warm_topics)


def kafka_record_source(settings: PlatformSettings, group_id: str, topics: Sequence[str],
                        client_id: str, session_timeout_s: float = 10.0,
                        fetch_wait_ms: int = 0) -> RecordSource:
    """A consumer-group member (manual commits) on the settings' broker, built with their client;
    `fetch_wait_ms` > 0: the broker holds a fetch that long to gather more (RunnerConfig)."""
    adapter = ConfluentRecordSource if settings.kafka_client == "confluent" else KafkaRecordSource
    return adapter(settings.kafka_access(), group_id, topics, client_id=client_id,
                   session_timeout_s=session_timeout_s, fetch_wait_ms=fetch_wait_ms)
