"""The lake sink's domain on real Parquet files in a temporary directory (no broker)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from services.common.bus import topics
from services.common.bus.consumer import PoisonEvent
from services.common.bus.envelope import MalformedEvent
from services.common.bus.ports import Record
from services.common.lake.files import live_files
from services.common.lake.layout import OffsetRange, part_range
from services.lake.events import lake_event
from services.lake.sink import LakeSink
from tests import lake_events as ev
from tests.support.lake import add_all, record, watches


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now




def rows(root: Path) -> list[dict[str, object]]:
    return [row for path in live_files(root, topics.WATCH_EVENTS)
            for row in pq.read_table(path).to_pylist()]


def test_a_flush_writes_one_file_per_partition_and_hour_named_by_its_offsets(
        tmp_path: Path) -> None:
    sink = LakeSink(tmp_path, flush_rows=100, flush_interval_s=60)
    add_all(sink, watches(6))  # 09:00 .. 10:40: three an hour

    result = sink.flush()

    names = sorted(f.path.relative_to(tmp_path).as_posix() for f in result.files)
    assert names == [
        "topic=watch-events/date=2026-11-20/hour=09/p000-00000000000000000000-00000000000000000002.parquet",
        "topic=watch-events/date=2026-11-20/hour=10/p000-00000000000000000003-00000000000000000005.parquet",
    ]
    assert result.commit == {(topics.WATCH_EVENTS, 0): 6}
    assert [r["offset"] for r in rows(tmp_path)] == list(range(6))


def test_records_a_file_already_holds_are_not_written_again(tmp_path: Path) -> None:
    first = LakeSink(tmp_path, flush_rows=100, flush_interval_s=60)
    add_all(first, watches(6))
    first.flush()

    again = LakeSink(tmp_path, flush_rows=100, flush_interval_s=60)  # a restarted process
    taken = add_all(again, watches(8))  # the six redelivered, and two new

    assert taken == [False] * 6 + [True] * 2
    result = again.flush()
    assert result.commit == {(topics.WATCH_EVENTS, 0): 8}
    assert sorted(r["offset"] for r in rows(tmp_path)) == list(range(8))


def test_a_record_of_an_hour_whose_file_was_never_renamed_is_written(tmp_path: Path) -> None:
    first = LakeSink(tmp_path, flush_rows=100, flush_interval_s=60)
    add_all(first, watches(6))
    lost = first.flush().files[-1]
    lost.path.unlink()  # the crash came between the two renames

    again = LakeSink(tmp_path, flush_rows=100, flush_interval_s=60)
    assert add_all(again, watches(6)) == [False] * 3 + [True] * 3
    again.flush()
    assert sorted(r["offset"] for r in rows(tmp_path)) == list(range(6))


def test_a_flush_is_due_by_rows_or_by_the_age_of_the_oldest_record(tmp_path: Path) -> None:
    clock = Clock()
    sink = LakeSink(tmp_path, flush_rows=3, flush_interval_s=10, clock=clock)
    assert not sink.due()
    add_all(sink, watches(2))
    assert not sink.due()
    clock.now = 10.0
    assert sink.due()
    add_all(sink, watches(3, first_offset=2))
    clock.now = 0.0
    assert sink.due()  # five rows >= three


def test_a_dead_lettered_record_is_committed_with_the_next_flush(tmp_path: Path) -> None:
    sink = LakeSink(tmp_path, flush_rows=100, flush_interval_s=60)
    sink.done(Record(topics.WATCH_EVENTS, 2, 41, None, b"junk"))
    result = sink.flush()
    assert result.files == []
    assert result.commit == {(topics.WATCH_EVENTS, 2): 42}


def test_part_file_names_say_their_partition_and_offsets() -> None:
    found = OffsetRange(7, 10, 2_000)
    assert part_range(found.file_name()) == found
    assert part_range("compacted.parquet") is None
    assert part_range(".tmp-p007-00000000000000000010-00000000000000002000.parquet.12") is None


def test_an_event_of_another_topics_type_is_poison() -> None:
    wrong = ev.message(topics.TRANSACTIONS, "k", "watch", {
        "user_id": "u", "content_id": "t", "watch_seconds": 1, "completed": True}, ev.T0, "x")
    with pytest.raises(PoisonEvent, match="does not belong on 'transactions'"):
        lake_event(record(wrong, 0, 0))


def test_an_event_with_invalid_data_is_poison() -> None:
    bad = ev.message(topics.WATCH_EVENTS, "k", "watch", {
        "user_id": "u", "content_id": "t", "watch_seconds": -1, "completed": True}, ev.T0, "x")
    with pytest.raises(PoisonEvent, match="watch_seconds"):
        lake_event(record(bad, 0, 0))


def test_bytes_that_are_no_event_are_malformed() -> None:
    with pytest.raises(MalformedEvent):
        lake_event(Record(topics.WATCH_EVENTS, 0, 0, None, b"{nope"))


def test_every_lake_topics_event_is_accepted() -> None:
    for message in [ev.watch("r", 0), ev.transaction("r", 0), ev.decision("r", 0, "decline", []),
                    ev.label("r", 0, True), ev.title("r", 0, ["drama"]),
                    ev.exposure("r", "e", "u", "a", ev.T0, 0),
                    ev.impression("r", "u", "q", "e", "a", ev.T0, 0),
                    ev.click("r", "u", "q", ev.T0, 0)]:
        assert lake_event(record(message, 0, 0)).type


def test_a_redelivery_to_an_hour_flushed_long_ago_is_still_recognised(tmp_path: Path) -> None:
    sink = LakeSink(tmp_path, flush_rows=100, flush_interval_s=60)
    add_all(sink, watches(3))  # hour 09
    sink.flush()
    add_all(sink, [record(ev.watch("r", 9, ev.T0 + timedelta(hours=5)), 0, 3)])  # hour 14
    sink.flush()  # hour 09 is no longer remembered in memory

    assert add_all(sink, watches(3)) == [False] * 3  # read again from disk
