"""The sink's consumer loop: poll, validate, buffer, dead-letter poison, flush, then commit."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.common.bus.consumer import (
    ConsumerMetrics,
    PoisonEvent,
    RunnerConfig,
    dead_letter,
)
from services.common.bus.envelope import MalformedEvent
from services.common.bus.ports import (
    Publisher,
    Record,
    RecordSource,
    TopicPartitionKey,
    publish_or_raise,
)
from services.common.telemetry import Metrics
from services.lake.compaction import CompactionOutcome
from services.lake.events import lake_event
from services.lake.sink import FlushResult, LakeSink

logger = logging.getLogger(__name__)


class LakeMetrics:
    """Declared once per process. Records and lag are the platform's consumer metrics (the
    lag and dead-letter alerts cover the sink as they cover every group); the rest are the
    lake's own, `lake_` prefixed by the service's Metrics."""

    def __init__(self, metrics: Metrics, group: str, topics: Sequence[str]) -> None:
        self.group = group
        self.consumer = ConsumerMetrics(metrics)
        self.consumer.expect(RunnerConfig(group=group, topics=tuple(topics)))
        self.rows = metrics.counter("rows_written", "rows written to part files", ("topic",))
        self.files = metrics.counter("files_written", "part files written", ("topic",))
        self.bytes = metrics.counter("bytes_written", "bytes of part files written", ("topic",))
        self.buffered = metrics.gauge("buffered_rows", "rows waiting for the next flush")
        self.flush_seconds = metrics.latency("flush_duration_seconds",
                                             "time to write and commit one flush")
        self.compacted = metrics.counter("compacted_files", "part files merged by compaction")
        for topic in topics:  # series born at zero, so a rule's increase() sees the first one
            for counter in (self.rows, self.files, self.bytes):
                counter.labels(topic)

    def records(self, topic: str, outcome: str, count: int) -> None:
        """outcome: handled (buffered), duplicate (the lake held it already), dead_lettered."""
        self.consumer.events.labels(self.group, topic, outcome).inc(count)

    def lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer.lag.labels(self.group, topic, str(partition)).set(lag)


@dataclass(frozen=True)
class LoopConfig:
    group: str
    max_batch: int = 5_000
    poll_timeout_s: float = 0.5
    compact_interval_s: float = 300.0


class SinkLoop:
    """One consumer-group member writing the lake; owns and closes its source and DLQ."""

    def __init__(self, *, source: RecordSource, sink: LakeSink, dlq: Publisher,
                 metrics: LakeMetrics, config: LoopConfig,
                 compact: Callable[[], CompactionOutcome] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._sink = sink
        self._dlq = dlq
        self._metrics = metrics
        self._config = config
        self._compact = compact
        self._clock = clock
        self._last_compaction = clock()
        self._stopping = threading.Event()
        source.on_revoke(self._on_revoke)

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        logger.info("lake sink started", extra={"group": self._config.group})
        failed = False
        try:
            while not self._stopping.is_set():
                self.run_once()
        except BaseException:
            # A batch broke off half-way (e.g. its dead letters were not stored): committing
            # now could pass a record that is in neither the lake nor its DLQ. The restarted
            # process reads from the last commit; what is already in files is skipped.
            failed = True
            raise
        finally:
            try:
                if not failed:
                    self.flush_and_commit()
            finally:
                self._source.close()
                self._dlq.close()
            logger.info("lake sink stopped", extra={"group": self._config.group})

    def run_once(self) -> None:
        records = self._source.poll(self._config.poll_timeout_s, self._config.max_batch)
        self._take(records)
        if self._sink.due():
            self.flush_and_commit()
        self._metrics.buffered.set(self._sink.buffered_rows)
        for (topic, partition), lag in self._source.lag().items():
            self._metrics.lag(topic, partition, lag)
        if self._compact is not None and \
                self._clock() - self._last_compaction >= self._config.compact_interval_s:
            self._last_compaction = self._clock()
            self._metrics.compacted.inc(self._compact().merged_files)

    def flush_and_commit(self) -> FlushResult:
        """Every buffered row into durable files, then (only then) their offsets committed."""
        start = time.perf_counter()
        result = self._sink.flush()
        for written in result.files:
            self._metrics.rows.labels(written.topic).inc(written.rows)
            self._metrics.files.labels(written.topic).inc()
            self._metrics.bytes.labels(written.topic).inc(written.size_bytes)
        if result.commit:
            self._source.commit(result.commit)
        if result.files:
            self._metrics.flush_seconds.observe(time.perf_counter() - start)
        return result

    def _take(self, records: Sequence[Record]) -> None:
        poison: list[tuple[Record, str, str | None]] = []
        counts: Counter[tuple[str, str]] = Counter()  # one labelled increment per batch
        for record in records:
            try:
                event = lake_event(record)
            except (MalformedEvent, PoisonEvent) as exc:
                poison.append((record, str(exc), None))
                continue
            written = self._sink.add(record, event)
            counts[(record.topic, "handled" if written else "duplicate")] += 1
        if poison:
            # Stored in the DLQ before their offsets can be committed; a failed publish ends
            # the loop uncommitted, and the restarted process reads them again.
            publish_or_raise(self._dlq, [dead_letter(r, why, event_id, self._config.group)
                                         for r, why, event_id in poison])
            for record, _, _ in poison:
                self._sink.done(record)
                counts[(record.topic, "dead_lettered")] += 1
        for (topic, outcome), count in counts.items():
            self._metrics.records(topic, outcome, count)

    def _on_revoke(self, partitions: Sequence[TopicPartitionKey]) -> None:
        # Inside poll(), between batches: everything taken is buffered, so it can all be
        # flushed and committed before another member reads these partitions.
        self.flush_and_commit()
        self._sink.forget(partitions)
