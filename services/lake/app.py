"""The lake sink's composition root: one consumer-group member on every event topic, probes."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from services.common.bus.clients import kafka_publisher, kafka_record_source
from services.common.bus.consumer import run_or_end_process
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import TopicSpec, dlq_topic, partitions_of
from services.common.http import blocking_lifespan, create_service_app
from services.common.telemetry import Metrics
from services.lake.compaction import CompactionOutcome, compact_closed_hours
from services.lake.events import LAKE_TOPICS
from services.lake.loop import LakeMetrics, LoopConfig, SinkLoop
from services.lake.settings import LakeSettings
from services.lake.sink import LakeSink


def build_sink_loop(settings: LakeSettings, metrics: LakeMetrics) -> SinkLoop:
    """The loop on the settings' broker and lake root, every topic and its DLQ created."""
    ensure_topics(settings.kafka_access(), [
        *(TopicSpec(t, partitions_of(t, settings.kafka_topic_partitions),
                    settings.kafka_replication_factor) for t in LAKE_TOPICS),
        *(TopicSpec(dlq_topic(t), 1, settings.kafka_replication_factor) for t in LAKE_TOPICS),
    ])
    client_id = f"{settings.service_name}-{settings.lake_group}"
    grace = timedelta(seconds=settings.lake_compact_grace_s)
    keep = None if settings.lake_keep_days is None else timedelta(days=settings.lake_keep_days)

    def compact() -> CompactionOutcome:
        return compact_closed_hours(settings.lake_root, LAKE_TOPICS, datetime.now(UTC), grace,
                                    keep)

    return SinkLoop(
        source=kafka_record_source(settings, settings.lake_group, LAKE_TOPICS, client_id),
        sink=LakeSink(settings.lake_root, settings.lake_flush_rows,
                      settings.lake_flush_interval_s),
        dlq=kafka_publisher(settings, client_id=f"{client_id}-dlq"),
        metrics=metrics,
        config=LoopConfig(group=settings.lake_group, max_batch=settings.lake_max_batch,
                          compact_interval_s=settings.lake_compact_interval_s),
        compact=compact,
    )


@dataclass
class _Running:
    loop: SinkLoop | None = None
    thread: threading.Thread | None = None

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


def create_app(settings: LakeSettings) -> FastAPI:
    metrics = Metrics(settings.service_name)
    lake_metrics = LakeMetrics(metrics, settings.lake_group, LAKE_TOPICS)
    running = _Running()

    def start() -> None:
        running.loop = build_sink_loop(settings, lake_metrics)
        running.thread = threading.Thread(target=run_or_end_process,
                                          args=(running.loop, "lake-sink"), daemon=True,
                                          name="lake-sink")
        running.thread.start()

    def stop() -> None:
        if running.loop is not None:
            running.loop.stop()
        if running.thread is not None:
            running.thread.join(timeout=30)

    return create_service_app(title="lake sink", metrics=metrics,
                              lifespan=blocking_lifespan(start, stop),
                              readiness={"sink": running.alive})
