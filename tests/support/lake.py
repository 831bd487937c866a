"""Lake test helpers: records for the sink, its settings and metrics, events through a real sink."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from services.common.bus.clients import kafka_publisher
from services.common.bus.envelope import decode_event
from services.common.bus.kafka_bus import ensure_topics, group_lags, start_group_at_end
from services.common.bus.ports import OutboundMessage, Record, publish_or_raise
from services.common.bus.topics import TopicSpec
from services.common.telemetry import Metrics
from services.lake.app import build_sink_loop
from services.lake.events import LAKE_TOPICS
from services.lake.loop import LakeMetrics
from services.lake.settings import LakeSettings
from services.lake.sink import LakeSink
from tests import lake_events as ev
from tests.harness import ServerProcess


def record(message: OutboundMessage, partition: int, offset: int) -> Record:
    return Record(message.topic, partition, offset, (message.key or "").encode(), message.value)


def watches(n: int, minutes_apart: int = 20, partition: int = 0,
            first_offset: int = 0) -> list[Record]:
    return [record(ev.watch("r", i, ev.T0 + timedelta(minutes=minutes_apart * i)), partition,
                   first_offset + i) for i in range(n)]


def add_all(sink: LakeSink, records: list[Record]) -> list[bool]:
    return [sink.add(r, decode_event(r.value)) for r in records]


def settings_for(kafka: ServerProcess, root: Path, **fields: Any) -> LakeSettings:
    return LakeSettings(kafka_bootstrap_servers=kafka.address, lake_root=root,
                        lake_group=f"lake-it-{uuid.uuid4().hex[:8]}", service_name="lake",
                        **fields)


def metrics_for(settings: LakeSettings) -> LakeMetrics:
    return LakeMetrics(Metrics("lake"), settings.lake_group, LAKE_TOPICS)


def publish(kafka: ServerProcess, messages: list[OutboundMessage]) -> None:
    producer = kafka_publisher(LakeSettings(kafka_bootstrap_servers=kafka.address), "it-lake",
                               delivery_timeout_s=30.0)
    try:
        publish_or_raise(producer, messages)
    finally:
        producer.close()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def through_the_sink(kafka: ServerProcess, root: Path, batches: Iterable[list[OutboundMessage]],
                     what: str) -> None:
    """The lake's own sink loop on `root`, fed `batches` published to Kafka, stopped once its
    group has read them all (every row durable in Parquet)."""
    def publish_all() -> None:
        for batch in batches:
            publish(kafka, batch)

    sink_while(kafka, root, publish_all, what)


def sink_while(kafka: ServerProcess, root: Path, produce: Callable[[], None], what: str,
               timeout_s: float = 120.0) -> None:
    """The lake's own sink loop on `root` while `produce` publishes (itself or through another
    process), stopped once its group has read everything published (every row in Parquet)."""
    settings = settings_for(kafka, root, lake_flush_interval_s=0.5)
    ensure_topics(kafka.address, [TopicSpec(t, 3) for t in LAKE_TOPICS])
    start_group_at_end(kafka.address, settings.lake_group, LAKE_TOPICS)
    loop = build_sink_loop(settings, metrics_for(settings))
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        produce()
        wait_for(lambda: group_lags(kafka.address, {settings.lake_group: LAKE_TOPICS})[
            settings.lake_group] == 0, timeout_s, what)
    finally:
        loop.stop()
        thread.join(30)
