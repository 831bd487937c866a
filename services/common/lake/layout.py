"""Where the lake keeps each event and what its file names mean (the layout, as a spec).

    <root>/topic=<topic>/date=<YYYY-MM-DD>/hour=<HH>/p<partition>-<first>-<last>.parquet
    <root>/topic=<topic>/date=<YYYY-MM-DD>/hour=<HH>/compacted.parquet

The hour is the event's time (UTC), not the time it was written. A part file holds the rows of
one Kafka partition whose offsets run from <first> to <last> (zero-padded, so names sort by
offset); a flush that is redone after a crash writes the same rows under the same name. A
compacted file merges an hour's part files; the ranges it took in are in its Parquet metadata
(`lake.sources`), so a part file it already holds is recognised and never read twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

COMPACTED = "compacted.parquet"
SOURCES_KEY = b"lake.sources"
TEMP_PREFIX = ".tmp-"
_PART = re.compile(r"^p(\d{3,})-(\d{20})-(\d{20})\.parquet$")


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Rows of one partition of one topic, offsets `first` to `last` inclusive."""

    partition: int
    first: int
    last: int

    def file_name(self) -> str:
        return f"p{self.partition:03d}-{self.first:020d}-{self.last:020d}.parquet"


@dataclass(frozen=True, order=True)
class HourKey:
    """One hour directory of one topic."""

    topic: str
    date: str  # YYYY-MM-DD
    hour: int

    @classmethod
    def of(cls, topic: str, time_ms: int) -> HourKey:
        moment = datetime.fromtimestamp(time_ms / 1000, UTC)
        return cls(topic, moment.strftime("%Y-%m-%d"), moment.hour)

    def directory(self, root: Path) -> Path:
        return root / f"topic={self.topic}" / f"date={self.date}" / f"hour={self.hour:02d}"

    def ends_at(self) -> datetime:
        start = datetime.strptime(f"{self.date} {self.hour:02d}", "%Y-%m-%d %H").replace(
            tzinfo=UTC)
        return start.replace(minute=59, second=59, microsecond=999_999)


def part_range(name: str) -> OffsetRange | None:
    """The offset range a part file's name says it holds; None for any other file."""
    match = _PART.match(name)
    if match is None:
        return None
    return OffsetRange(int(match[1]), int(match[2]), int(match[3]))


def topic_directory(root: Path, topic: str) -> Path:
    return root / f"topic={topic}"


def hour_directories(root: Path, topic: str) -> list[tuple[HourKey, Path]]:
    """Every hour directory of `topic`, oldest first."""
    found = []
    for date_dir in sorted(topic_directory(root, topic).glob("date=*")):
        for hour_dir in sorted(date_dir.glob("hour=*")):
            key = HourKey(topic, date_dir.name.removeprefix("date="),
                          int(hour_dir.name.removeprefix("hour=")))
            found.append((key, hour_dir))
    return found
