"""Ingest's settings: the platform's, its address, body and batch limits, dedupe, broker waits."""

from __future__ import annotations

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
