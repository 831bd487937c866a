"""The sink's domain: buffer events per partition, flush them to part files, say what to commit.

Exactly once in the lake from at-least-once delivery: a record whose offset a file in its hour
directory already holds is dropped (the lake remembers what it wrote, whatever Kafka was told),
and a flush writes every buffered row of a partition, so a file [first, last] holds all the rows
of that hour between those offsets. Offsets are handed back for commit only after every file of
the flush is durable; a crash before the commit replays rows the files already hold, or rows
that were never written, and either way each row ends up in the lake once.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from services.common.bus.envelope import Event
from services.common.bus.ports import Record, TopicPartitionKey
from services.common.lake.files import ROW_SCHEMA, hour_coverage, write_atomically
from services.common.lake.layout import HourKey, OffsetRange
from services.common.times import epoch_ms


@dataclass(frozen=True)
class WrittenFile:
    topic: str
    path: Path
    rows: int
    size_bytes: int


@dataclass
class FlushResult:
    files: list[WrittenFile] = field(default_factory=list)
    commit: dict[TopicPartitionKey, int] = field(default_factory=dict)


class _Coverage:
    """The offset ranges one hour directory holds, by partition. A fresh record lies past every
    range of its partition, so the common case is one comparison."""

    def __init__(self, ranges: Iterable[OffsetRange]) -> None:
        self._by_partition: dict[int, list[OffsetRange]] = defaultdict(list)
        self._highest: dict[int, int] = {}
        for found in ranges:
            self.add(found)

    def add(self, found: OffsetRange) -> None:
        self._by_partition[found.partition].append(found)
        self._highest[found.partition] = max(self._highest.get(found.partition, -1), found.last)

    def holds(self, partition: int, offset: int) -> bool:
        if offset > self._highest.get(partition, -1):
            return False
        return any(r.first <= offset <= r.last for r in self._by_partition[partition])


@dataclass
class _Buffer:
    """One partition's rows since its last flush, by the hour each belongs to."""

    hours: dict[HourKey, list[dict[str, object]]] = field(default_factory=lambda: defaultdict(list))
    rows: int = 0


class LakeSink:
    """Buffers decoded records and writes them as part files when a flush is due."""

    def __init__(self, root: Path, flush_rows: int, flush_interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._root = root
        self._flush_rows = flush_rows
        self._flush_interval_s = flush_interval_s
        self._clock = clock
        self._buffers: dict[TopicPartitionKey, _Buffer] = defaultdict(_Buffer)
        self._next: dict[TopicPartitionKey, int] = {}  # next offset to commit, per partition
        self._coverage: dict[HourKey, _Coverage] = {}
        self._oldest: float | None = None  # when the first uncommitted record came in

    @property
    def buffered_rows(self) -> int:
        return sum(b.rows for b in self._buffers.values())

    def add(self, record: Record, event: Event) -> bool:
        """Buffer the event's row, unless a file already holds this record (then False)."""
        time_ms = epoch_ms(event.time)
        hour = HourKey.of(record.topic, time_ms)
        fresh = not self._already_written(hour, record.partition, record.offset)
        if fresh:
            buffer = self._buffers[(record.topic, record.partition)]
            buffer.hours[hour].append({
                "event_id": event.id, "type": event.type, "source": event.source,
                "time_ms": time_ms,
                "key": record.key.decode(errors="replace") if record.key is not None else None,
                "partition": record.partition, "offset": record.offset,
                "data": json.dumps(event.data, separators=(",", ":"), sort_keys=True),
            })
            buffer.rows += 1
        self.done(record)
        return fresh

    def done(self, record: Record) -> None:
        """The record needs nothing more from the lake (buffered, dead-lettered or skipped)."""
        key = (record.topic, record.partition)
        self._next[key] = max(self._next.get(key, 0), record.offset + 1)
        if self._oldest is None:
            self._oldest = self._clock()

    def due(self) -> bool:
        """A flush is due when enough rows wait, or the oldest uncommitted record waited long
        enough (so a quiet topic still reaches the lake and its offsets get committed)."""
        if self.buffered_rows >= self._flush_rows:
            return True
        return self._oldest is not None and self._clock() - self._oldest >= self._flush_interval_s

    def flush(self) -> FlushResult:
        """Write every buffer as part files (durable when this returns); the offsets to commit."""
        result = FlushResult()
        touched = set()
        for (topic, _), buffer in sorted(self._buffers.items()):
            for hour, rows in sorted(buffer.hours.items()):
                result.files.append(self._write(topic, hour, rows))
                touched.add(hour)
        result.commit = dict(self._next)
        # Remember only the hours being written now: an older hour is read again from disk if
        # a redelivery or a late event reaches it, so a long-running sink's memory stays flat.
        self._coverage = {h: c for h, c in self._coverage.items() if h in touched}
        self._buffers.clear()
        self._next.clear()
        self._oldest = None
        return result

    def forget(self, partitions: Iterable[TopicPartitionKey]) -> None:
        """Partitions went to another member: what this one remembers of their hours may go
        stale, so it is read again from disk if they come back."""
        gone = {topic for topic, _ in partitions}
        self._coverage = {h: c for h, c in self._coverage.items() if h.topic not in gone}

    def _write(self, topic: str, hour: HourKey, rows: list[dict[str, object]]) -> WrittenFile:
        offsets = [int(str(r["offset"])) for r in rows]
        partition = int(str(rows[0]["partition"]))
        written = OffsetRange(partition, min(offsets), max(offsets))
        path = hour.directory(self._root) / written.file_name()
        table = pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
        size = write_atomically(table, path)
        self._covered(hour).add(written)
        return WrittenFile(topic, path, len(rows), size)

    def _already_written(self, hour: HourKey, partition: int, offset: int) -> bool:
        return self._covered(hour).holds(partition, offset)

    def _covered(self, hour: HourKey) -> _Coverage:
        if hour not in self._coverage:
            self._coverage[hour] = _Coverage(hour_coverage(hour.directory(self._root)))
        return self._coverage[hour]
