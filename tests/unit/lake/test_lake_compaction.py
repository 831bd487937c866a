"""Compaction on real Parquet files: an hour into one file, atomically, idempotently."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from services.common.bus import topics
from services.common.lake.files import compacted_sources, live_files
from services.common.lake.layout import COMPACTED
from services.lake.compaction import compact_closed_hours, compact_hour
from services.lake.sink import LakeSink
from tests.support.lake import add_all, watches

LATER = datetime(2026, 11, 21, tzinfo=UTC)


def hour_dir(root: Path) -> Path:
    return root / "topic=watch-events" / "date=2026-11-20" / "hour=09"


def three_flushes(root: Path) -> None:
    """Nine watches in one hour, flushed three at a time: three part files."""
    sink = LakeSink(root, flush_rows=100, flush_interval_s=60)
    for start in (0, 3, 6):
        add_all(sink, watches(3, minutes_apart=5, first_offset=start))
        sink.flush()


def offsets(root: Path) -> list[int]:
    return sorted(int(o) for path in live_files(root, topics.WATCH_EVENTS)
                  for o in pq.read_table(path)["offset"].to_pylist())


def test_an_hours_part_files_become_one_file_with_the_same_rows(tmp_path: Path) -> None:
    three_flushes(tmp_path)
    assert len(list(hour_dir(tmp_path).glob("*.parquet"))) == 3

    done = compact_closed_hours(tmp_path, (topics.WATCH_EVENTS,), LATER, timedelta(minutes=10))

    assert (done.hours, done.merged_files) == (1, 3)
    assert [p.name for p in hour_dir(tmp_path).glob("*.parquet")] == [COMPACTED]
    assert offsets(tmp_path) == list(range(9))


def test_compacting_again_changes_nothing(tmp_path: Path) -> None:
    three_flushes(tmp_path)
    compact_hour(hour_dir(tmp_path))
    before = (hour_dir(tmp_path) / COMPACTED).stat().st_mtime_ns

    done = compact_hour(hour_dir(tmp_path))

    assert (done.hours, done.merged_files, done.removed_leftovers) == (0, 0, 0)
    assert (hour_dir(tmp_path) / COMPACTED).stat().st_mtime_ns == before


def test_a_part_file_left_by_a_crash_after_the_rename_is_never_read_twice(
        tmp_path: Path) -> None:
    three_flushes(tmp_path)
    leftover = sorted(hour_dir(tmp_path).glob("p*.parquet"))[0]
    kept = leftover.read_bytes()
    compact_hour(hour_dir(tmp_path))
    leftover.write_bytes(kept)  # as if the compaction stopped before deleting its inputs

    assert offsets(tmp_path) == list(range(9))  # readers skip it
    done = compact_hour(hour_dir(tmp_path))
    assert done.removed_leftovers == 1
    assert [p.name for p in hour_dir(tmp_path).glob("*.parquet")] == [COMPACTED]


def test_a_late_event_after_compaction_is_merged_by_the_next_one(tmp_path: Path) -> None:
    three_flushes(tmp_path)
    compact_hour(hour_dir(tmp_path))
    late = LakeSink(tmp_path, flush_rows=100, flush_interval_s=60)
    add_all(late, watches(1, first_offset=20))
    late.flush()

    compact_hour(hour_dir(tmp_path))

    assert offsets(tmp_path) == [*range(9), 20]
    assert len(compacted_sources(hour_dir(tmp_path) / COMPACTED)) == 4


def test_an_hour_that_has_not_ended_long_enough_ago_is_left_alone(tmp_path: Path) -> None:
    three_flushes(tmp_path)
    soon_after = datetime(2026, 11, 20, 10, 5, tzinfo=UTC)
    done = compact_closed_hours(tmp_path, (topics.WATCH_EVENTS,), soon_after,
                                timedelta(minutes=10))
    assert done.hours == 0
    assert len(list(hour_dir(tmp_path).glob("p*.parquet"))) == 3


def test_a_temporary_file_left_by_a_dead_writer_is_removed_once_stale(tmp_path: Path) -> None:
    three_flushes(tmp_path)
    stale = hour_dir(tmp_path) / ".tmp-p000-00000000000000000000-00000000000000000002.parquet.99"
    fresh = hour_dir(tmp_path) / ".tmp-p000-00000000000000000003-00000000000000000005.parquet.98"
    stale.write_bytes(b"half a file")
    fresh.write_bytes(b"being written")
    two_hours_ago = time.time() - 7_200
    os.utime(stale, (two_hours_ago, two_hours_ago))

    compact_hour(hour_dir(tmp_path))

    assert not stale.exists()
    assert fresh.exists()
    assert offsets(tmp_path) == list(range(9))


def test_retention_deletes_whole_days_older_than_it_and_keeps_the_rest(tmp_path: Path) -> None:
    three_flushes(tmp_path)  # 2026-11-20
    newer = tmp_path / "topic=watch-events" / "date=2026-11-21" / "hour=00"
    newer.mkdir(parents=True)
    other_topic = tmp_path / "topic=transactions" / "date=2026-11-01" / "hour=00"
    other_topic.mkdir(parents=True)  # not a topic this run expires

    kept_a_day = compact_closed_hours(tmp_path, (topics.WATCH_EVENTS,), LATER,
                                      timedelta(minutes=10), keep=timedelta(days=1))
    assert (kept_a_day.expired_days, kept_a_day.hours) == (0, 1)  # 11-20 ended < 1 day ago

    done = compact_closed_hours(tmp_path, (topics.WATCH_EVENTS,), LATER + timedelta(days=1),
                                timedelta(minutes=10), keep=timedelta(days=1))

    assert done.expired_days == 1
    assert not hour_dir(tmp_path).parent.exists() and newer.exists() and other_topic.exists()
