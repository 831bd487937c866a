"""Compaction: an hour's part files merged into one file, atomically and idempotently.

Steps for one closed hour (no new event expected; a late one starts a new part file that the
next compaction merges): read the compacted file (if any) and the part files it does not hold
yet, write them as the new compacted file with every range it holds in its metadata (atomic
rename over the old one), then delete the part files it holds. A crash before the rename
changes nothing; a crash after it leaves part files the compacted file already holds, which
readers skip (services/common/lake/files.py: live_files) and the next run deletes. Running it
again on a compacted hour does nothing.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from services.common.lake.files import (
    compacted_sources,
    fsync_directory,
    hour_files,
    with_sources,
    write_atomically,
)
from services.common.lake.layout import (
    COMPACTED,
    TEMP_PREFIX,
    hour_directories,
    topic_directory,
)
from services.common.locks import exclusive

logger = logging.getLogger(__name__)
LOCK_FILE = ".compaction.lock"
STALE_TEMP_S = 3_600.0


@dataclass
class CompactionOutcome:
    hours: int = 0          # hours rewritten into a new compacted file
    merged_files: int = 0   # part files merged (and deleted)
    removed_leftovers: int = 0  # part files a compacted file already held (an earlier crash)
    expired_days: int = 0   # date directories deleted by retention (one per topic and day)


def compact_hour(hour_dir: Path) -> CompactionOutcome:
    """Merge the hour's part files into its compacted file; a no-op if there is nothing to do."""
    outcome = CompactionOutcome()
    compacted, parts = hour_files(hour_dir)
    held = compacted_sources(compacted) if compacted is not None else set()
    leftovers = [path for found, path in parts.items() if found in held]
    fresh = {found: path for found, path in parts.items() if found not in held}
    # One part file and no compacted file is already one file: renaming it gains nothing.
    if fresh and (compacted is not None or len(fresh) > 1):
        tables = [pq.read_table(compacted)] if compacted is not None else []
        tables += [pq.read_table(path) for _, path in sorted(fresh.items())]
        merged = pa.concat_tables([t.replace_schema_metadata(None) for t in tables]).sort_by(
            [("partition", "ascending"), ("offset", "ascending")])
        write_atomically(with_sources(merged, held | set(fresh)), hour_dir / COMPACTED)
        outcome.hours, outcome.merged_files = 1, len(fresh)
        leftovers += list(fresh.values())
    else:
        outcome.removed_leftovers = len(leftovers)
    # A writer that died between its write and its rename leaves a temporary file nobody
    # reads; an hour later it is certainly not being written any more.
    leftovers += [path for path in hour_dir.glob(f"{TEMP_PREFIX}*")
                  if time.time() - path.stat().st_mtime > STALE_TEMP_S]
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        fsync_directory(hour_dir)
    return outcome


def expire_days(root: Path, topics: tuple[str, ...], before: date) -> int:
    """Delete `topics`' whole days older than `before` (event time, as the lake is laid out):
    retention by the day, never a part of one. How many date directories went."""
    gone = 0
    for topic in topics:
        for date_dir in sorted(topic_directory(root, topic).glob("date=*")):
            if date.fromisoformat(date_dir.name.removeprefix("date=")) < before:
                shutil.rmtree(date_dir)
                gone += 1
    return gone


def compact_closed_hours(root: Path, topics: tuple[str, ...], now: datetime,
                         grace: timedelta, keep: timedelta | None = None) -> CompactionOutcome:
    """Compact every hour of `topics` that ended more than `grace` before `now`; with `keep`,
    first delete the days that ended more than `keep` before it."""
    total = CompactionOutcome()
    # one compaction at a time per lake (the sink's and `make lake-compact` may overlap)
    with exclusive(root / LOCK_FILE):
        if keep is not None:
            total.expired_days = expire_days(root, topics, (now - keep).date())
        for topic in topics:
            for key, hour_dir in hour_directories(root, topic):
                if key.ends_at() + grace > now:
                    continue
                done = compact_hour(hour_dir)
                total.hours += done.hours
                total.merged_files += done.merged_files
                total.removed_leftovers += done.removed_leftovers
    if total.hours or total.removed_leftovers or total.expired_days:
        logger.info("lake compacted", extra={"hours": total.hours, "files": total.merged_files,
                                             "leftovers": total.removed_leftovers,
                                             "expired_days": total.expired_days})
    return total
