"""The lake sink's settings: where it writes, when it flushes and compacts, where its probes are."""

from __future__ import annotations

from pydantic import Field

from services.common.lake.settings import LakeStoreSettings


class LakeSettings(LakeStoreSettings):
    """MLSD_LAKE_ROOT, MLSD_LAKE_FLUSH_ROWS, MLSD_LAKE_FLUSH_INTERVAL_S, MLSD_LAKE_PORT, ..."""

    service_name: str = Field("lake", pattern=r"^[a-z][a-z0-9_]*$")
    lake_host: str = "127.0.0.1"
    lake_port: int = Field(8065, ge=1, le=65535, description="/healthz, /readyz, /metrics")
    lake_group: str = Field("lake-sink", min_length=1)
    lake_max_batch: int = Field(5_000, ge=1, le=100_000)
    # A flush writes one file per partition and hour it holds rows for: bigger and rarer
    # flushes mean fewer, larger files; the interval bounds how stale the lake can be.
    lake_flush_rows: int = Field(50_000, ge=1)
    lake_flush_interval_s: float = Field(10.0, gt=0)
    lake_compact_interval_s: float = Field(300.0, gt=0)
    # An hour is compacted once it ended this long ago; a later event still lands, in a part
    # file the next compaction merges.
    lake_compact_grace_s: float = Field(600.0, ge=0)
    # Retention by event day, applied with each compaction; unset keeps everything. Replayed
    # history is partitioned by its own (old) event time: set it above the oldest day a
    # training set needs.
    lake_keep_days: float | None = Field(None, gt=0)
