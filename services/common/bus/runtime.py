"""Composition root for a real consumer process: Kafka source, Redis dedupe, Kafka DLQ, metrics."""

from __future__ import annotations

from collections.abc import Sequence

from services.common.bus.clients import kafka_publisher, kafka_record_source
from services.common.bus.consumer import ConsumerMetrics, ConsumerRunner, EventHandler, RunnerConfig
from services.common.bus.dedupe import Deduplicator, RedisDeduplicator
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import TopicSpec, dlq_topic, partitions_of
from services.common.redis_client import RedisClient
from services.common.settings import PlatformSettings


def build_kafka_consumer(
    settings: PlatformSettings,
    redis_client: RedisClient | None,
    handler: EventHandler,
    metrics: ConsumerMetrics,
    config: RunnerConfig,
    dedupe_window_s: int = 86_400,
    session_timeout_s: float = 10.0,
    deduplicator: Deduplicator | None = None,
) -> ConsumerRunner:
    """A runner for `config.group` on `config.topics`, with each topic's DLQ created if missing.
    Redelivered events are skipped by a RedisDeduplicator on `redis_client`, unless
    `deduplicator` says otherwise (IdempotentWrites: no Redis at all).

    `metrics` is the service's one ConsumerMetrics: every runner of a process shares it (a
    registry holds each metric name once; the group is a label)."""
    specs: Sequence[TopicSpec] = [
        *(TopicSpec(t, partitions_of(t, settings.kafka_topic_partitions),
                    settings.kafka_replication_factor) for t in config.topics),
        *(TopicSpec(dlq_topic(t), 1, settings.kafka_replication_factor) for t in config.topics),
    ]
    ensure_topics(settings.kafka_access(), specs)
    client_id = f"{settings.service_name}-{config.group}"
    return ConsumerRunner(
        source=kafka_record_source(settings, config.group, config.topics, client_id=client_id,
                                   session_timeout_s=session_timeout_s,
                                   fetch_wait_ms=config.fetch_wait_ms),
        handler=handler,
        deduplicator=deduplicator or _redis_deduplicator(redis_client, config.group,
                                                         dedupe_window_s, settings),
        dlq=kafka_publisher(settings, client_id=f"{client_id}-dlq"),
        config=config,
        metrics=metrics,
    )


def _redis_deduplicator(client: RedisClient | None, group: str, window_s: int,
                        settings: PlatformSettings) -> RedisDeduplicator:
    if client is None:
        raise ValueError(f"consumer group {group}: give a Redis client or a deduplicator")
    return RedisDeduplicator(client, group, window_s, namespace=settings.feature_namespace)
