"""The records service's settings: its probe port, batch sizes, consumer groups, sync intervals."""

from __future__ import annotations

from pydantic import Field

from services.common.models import ModelSettings


class RecordsSettings(ModelSettings):
    """MLSD_RECORDS_HOST, MLSD_RECORDS_PORT, ... (PostgreSQL: MLSD_POSTGRES_*, read apart)."""

    service_name: str = Field("records", pattern=r"^[a-z][a-z0-9_]*$")
    records_host: str = "127.0.0.1"
    records_port: int = Field(8055, ge=1, le=65535, description="probes and metrics")
    records_max_batch: int = Field(
        1_000, ge=1, le=10_000, description="events one poll takes at most: one transaction")
    records_commit_interval_s: float = Field(1.0, gt=0)
    records_retry_attempts: int = Field(
        20, ge=1, le=1_000,
        description="tries of a batch PostgreSQL refused (down, read-only, no free connection) "
                    "before the process ends for its supervisor to restart: each try waits up to "
                    "postgres_connect_timeout_s, with backoff to 2 s between, so 20 cover ~40 s, "
                    "past the cluster topology's failover (docs/reliability.md)")
    records_decisions_group: str = "records-fraud-decisions"
    records_labels_group: str = "records-fraud-labels"
    records_outbox_interval_s: float = Field(
        0.5, gt=0, description="how often the relay looks for committed, unsent outbox rows")
    records_outbox_keep_sent_s: float = Field(
        86_400.0, ge=0, description="sent outbox rows are deleted once this old")
    records_keep_days: float | None = Field(
        None, gt=0, description="decisions and labels of transactions older than this many days "
                                "are deleted (chargebacks reach back up to 540 days); unset: kept")
    records_retention_interval_s: float = Field(
        3_600.0, gt=0, description="how often the retention loop runs (records_keep_days set)")
    records_registry_sync_interval_s: float = Field(
        10.0, gt=0, description="how often the registry's history is copied to the audit log")
