"""Ingest's settings: the platform's, its address, body and batch limits, dedupe, broker waits,
spool."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.settings import PlatformSettings


class IngestSettings(PlatformSettings):
    """MLSD_INGEST_HOST, MLSD_INGEST_PORT, MLSD_INGEST_MAX_BODY_BYTES, ..."""

    service_name: str = Field("ingest", pattern=r"^[a-z][a-z0-9_]*$")
    ingest_host: str = "127.0.0.1"
    ingest_port: int = Field(8000, ge=1, le=65535)
    ingest_max_body_bytes: int = Field(
        1024 * 1024, gt=0, description="larger bodies get 413, before their JSON is parsed")
    ingest_max_batch_events: int = Field(
        500, gt=0, description="batches with more events get 413, before any event is validated")
    ingest_dedupe_window_s: int = Field(
        86_400, gt=0, description="how long an acknowledged event id is remembered")
    ingest_delivery_timeout_s: float = Field(
        5.0, gt=0, le=60, description="longest wait for the broker's acknowledgement")
    ingest_retry_after_s: int = Field(
        2, ge=0, description="the Retry-After of a 503 when the broker did not acknowledge")
    ingest_broker_probe_timeout_s: float = Field(
        2.0, gt=0, description="bound of one broker probe (connecting and /readyz)")
    ingest_connect_backoff_max_s: float = Field(
        5.0, gt=0, description="longest pause between two attempts to reach the broker at start")
    ingest_shed_after_s: float = Field(
        0.5, gt=0, description="refuse new batches (503) while a write has waited this long "
                               "for the broker's acknowledgement")
    ingest_max_in_flight_events: int = Field(
        20_000, gt=0, description="refuse new batches (503) while this many events wait for "
                                  "the broker's acknowledgement")
    # The spool (services/ingest/spool.py): on by default because the 10-minute soak's ingest
    # misses were the broker elections' seconds, which only answering from a durable local copy
    # removes (docs/adr/0006-ingest-spool.md has the numbers).
    ingest_spool_enabled: bool = Field(
        True, description="while the bus does not acknowledge, store batches durably on ingest's "
                          "disk and answer 202; a forwarder publishes them once it does")
    ingest_spool_after_s: float = Field(
        0.1, gt=0, description="with the spool on, spool new batches instead of sending them "
                               "while a write has waited this long for the broker's "
                               "acknowledgement (ingest's budget: a batch sent behind it would "
                               "miss it too); without the spool, ingest_shed_after_s refuses")
    ingest_spool_path: Path | None = Field(
        None, description="the spool's SQLite file; by default .state/ingest/spool-<port>.sqlite3 "
                          "(one per process: two instances on one host differ by port)")
    # Bounds: an election stalls the bus for seconds (the longest measured, to the first 202,
    # 6.4 s), so a spool past either bound is holding an outage, not an election: refusing (503
    # + Retry-After, as without a spool) tells clients, and the alert tells the operator.
    ingest_spool_max_events: int = Field(
        100_000, gt=0, description="refuse new batches (503) while the spool holds this many "
                                   "events (50 s at 2,000 events/s; about 30 MB of disk)")
    ingest_spool_max_age_s: float = Field(
        30.0, gt=0, description="refuse new batches (503) while the spool's oldest event has "
                                "waited this long for the broker (five times the longest "
                                "election measured)")

    def spool_file(self) -> Path:
        default = Path(".state/ingest") / f"spool-{self.ingest_port}.sqlite3"
        return self.ingest_spool_path or default
