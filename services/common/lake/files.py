"""Parquet files of the lake: durable atomic writes, the rows' schema, and which files are live.

A file becomes visible only complete and on disk: written under a temporary name, fsynced,
renamed over its final name (atomic on POSIX), then the directory fsynced so the rename itself
survives a power loss. Readers therefore never see half a file, and the sink commits a Kafka
offset only after the file holding that offset's row has gone through all of this.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from services.common.lake.layout import (
    COMPACTED,
    SOURCES_KEY,
    TEMP_PREFIX,
    OffsetRange,
    hour_directories,
    part_range,
)

# Every topic's rows share one schema: the event envelope, where it sat in Kafka, and its data
# as JSON text (DuckDB reads fields with ->>), so a payload gaining a field changes no file.
ROW_SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("type", pa.string()),
    ("source", pa.string()),
    ("time_ms", pa.int64()),      # event time, epoch milliseconds (the online counters' unit)
    ("key", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("data", pa.string()),
])


def write_atomically(table: pa.Table, final: Path) -> int:
    """Write `table` to `final` durably and atomically; return the file's size in bytes."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f"{TEMP_PREFIX}{final.name}.{os.getpid()}")
    with temp.open("wb") as out:
        pq.write_table(table, out, compression="zstd")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, final)
    fsync_directory(final.parent)
    return final.stat().st_size


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def with_sources(table: pa.Table, sources: Iterable[OffsetRange]) -> pa.Table:
    """`table` carrying the ranges it merged, as a compacted file records them."""
    ranges = [[r.partition, r.first, r.last] for r in sorted(set(sources))]
    return table.replace_schema_metadata({SOURCES_KEY: json.dumps(ranges).encode()})


def compacted_sources(path: Path) -> set[OffsetRange]:
    """The part-file ranges a compacted file holds."""
    metadata = pq.read_schema(path).metadata or {}
    return {OffsetRange(*r) for r in json.loads(metadata.get(SOURCES_KEY, b"[]"))}


def hour_files(hour_dir: Path) -> tuple[Path | None, dict[OffsetRange, Path]]:
    """An hour's compacted file (if any) and its part files by range; temp files are skipped."""
    compacted = hour_dir / COMPACTED
    parts = {}
    for path in hour_dir.glob("p*.parquet"):
        found = part_range(path.name)
        if found is not None:
            parts[found] = path
    return (compacted if compacted.exists() else None), parts


def hour_coverage(hour_dir: Path) -> set[OffsetRange]:
    """Every offset range an hour directory holds rows for, compacted or not."""
    if not hour_dir.is_dir():
        return set()
    compacted, parts = hour_files(hour_dir)
    covered = set(parts)
    if compacted is not None:
        covered |= compacted_sources(compacted)
    return covered


def live_files(root: Path, topic: str) -> list[Path]:
    """The files a reader scans for `topic`: each row exactly once. A part file already merged
    into its hour's compacted file (a compaction stopped before deleting it) is left out."""
    live: list[Path] = []
    for _, hour_dir in hour_directories(root, topic):
        compacted, parts = hour_files(hour_dir)
        merged = compacted_sources(compacted) if compacted is not None else set()
        if compacted is not None:
            live.append(compacted)
        live += [path for found, path in sorted(parts.items()) if found not in merged]
    return live
