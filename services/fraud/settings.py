"""Fraud's settings: the platform's and the models', its address, deadlines, policy file, stream."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from services.common.bus import topics
from services.common.models import ModelSettings
from services.common.settings import workers_field


class FraudSettings(ModelSettings):
    """MLSD_FRAUD_HOST, MLSD_FRAUD_PORT, MLSD_FRAUD_POLICY_PATH, ... (and MLSD_MODEL_*)."""

    service_name: str = Field("fraud", pattern=r"^[a-z][a-z0-9_]*$")
    fraud_host: str = "127.0.0.1"
    fraud_port: int = Field(8040, ge=1, le=65535)
    # One: its scoring thread batches what queues, and on 2 shared cores one process with
    # bigger batches held 1,000 req/s for a minute where two did not (docs/fraud.md, Processes).
    fraud_workers: int = workers_field("fraud_port", 1)
    fraud_http_max_batch: int = Field(
        64, ge=1, le=500, description="requests one worker scores together at most: those that "
                                      "queued while the previous batch was scored (no waiting)")
    fraud_http_threads: int = Field(
        4, ge=1, le=200, description="request threads for the blocking routes (GET "
                                     "/v1/decisions); scoring has its own thread per worker, "
                                     "which batches what queues (services/fraud/coalesce.py)")
    fraud_policy_path: Path = Field(Path("config/fraud/policy.toml"),
                                    description="rules, lists, weights, thresholds; re-read "
                                                "when it changes")
    fraud_policy_check_interval_s: float = Field(1.0, gt=0)
    fraud_model_name: str = "fraud"
    fraud_max_body_bytes: int = Field(16 * 1024, gt=0, description="larger bodies get 413")
    fraud_redis_timeout_s: float = Field(
        0.02, gt=0, le=1, description="deadline of the one Redis round trip (connect included); "
                                      "past it the decision is made without the card's history")
    fraud_breaker_fail_max: int = Field(
        5, ge=1, description="consecutive feature-store failures that open the circuit")
    fraud_breaker_reset_s: float = Field(
        5.0, gt=0, description="how long an open circuit skips the feature store")
    fraud_idempotency_window_s: int = Field(
        60, gt=0, description="a repeated transaction_id within it gets the same decision")
    fraud_drift_window: int = Field(
        10_000, ge=100, le=1_000_000, description="scored transactions the drift PSI gauges "
                                                  "compare with the training reference")
    fraud_max_future_s: int = Field(
        86_400, ge=0, description="timestamps further ahead than this are refused (422)")
    fraud_decisions_topic: str = topics.FRAUD_DECISIONS
    fraud_publish_queue: int = Field(
        10_000, gt=0, description="decision events waiting for the broker; beyond, dropped")
    fraud_broker_probe_timeout_s: float = Field(2.0, gt=0)
    fraud_delivery_timeout_s: float = Field(5.0, gt=0, le=60)
    # The stream scorer (python -m services.fraud.stream)
    fraud_stream_group: str = topics.FRAUD_SCORER_GROUP
    fraud_stream_metrics_port: int = Field(
        8041, ge=1, le=65535, description="probes and metrics of the scorer; under `make run` "
                                          "the first scorer's, the next ones count up from it")
    fraud_stream_processes: int = Field(
        2, ge=1, description="scorer processes `make run` starts in group fraud-scorer; at "
                             "most the partitions of transactions (topics.py)")
    fraud_stream_max_batch: int = Field(500, ge=1, le=5000)
    fraud_log_copies: int = Field(
        20_000, ge=0, description="card and customer logs a scorer keeps copies of (least "
                                  "recently used go first; ~4 kB each): an append checked "
                                  "against its copy spares Redis the whole log "
                                  "(services/designs/fraud/copies.py); 0: none")
    fraud_shadow_version: int | None = Field(
        None, ge=1, description="a registered fraud version the stream scorer also scores "
                                "every transaction with, publishing its decisions to "
                                "fraud_shadow_topic and never acting on them (none: no shadow)")
    fraud_shadow_topic: str = topics.FRAUD_DECISIONS_SHADOW
    fraud_stream_max_age_s: float = Field(
        300.0, gt=0, description="older transactions are skipped, not scored (counted)")
    # A poll returns as soon as records arrive, so this adds no latency under load; below about
    # 0.1 s kafka-python 3.0 never finishes joining the group (measured: 0.05 s never did).
    fraud_stream_poll_timeout_s: float = Field(0.25, ge=0.1)
    fraud_stream_pipelined: bool = Field(
        True, description="a batch's decisions are acknowledged by the broker while the next "
        "batch is scored (offsets still committed only after them)")
    fraud_stream_fetch_wait_ms: int = Field(
        20, ge=0, le=500, description="> 0: the broker holds a scorer's fetch up to this long to "
        "gather records (fewer, larger batches; that much latency added at most). 0: a fetch "
        "returns at the first record: at 5,000 tx/s the broker then took 0.35-0.56 of a core "
        "against 0.27 with 5 ms. 20 against 5 ms, in turns: at 2,000 tx/s the machine's CPU "
        "1.7-1.8 -> 1.1-1.2 cores (p50 +8 ms, p99 the same), at 4,000 tx/s p99 -20 % "
        "(docs/fraud.md)")

    @model_validator(mode="after")
    def _every_scorer_gets_a_partition(self) -> FraudSettings:
        # The group gives each partition to one member: a scorer beyond them would sit idle.
        partitions = topics.partitions_of(topics.TRANSACTIONS, self.kafka_topic_partitions)
        if self.fraud_stream_processes > partitions:
            raise ValueError(f"MLSD_FRAUD_STREAM_PROCESSES={self.fraud_stream_processes} is more "
                             f"than the {partitions} partitions of {topics.TRANSACTIONS}")
        return self

    def fraud_stream_ports(self) -> list[int]:
        """One probe and metrics port per scorer process, counting up from the first."""
        return [self.fraud_stream_metrics_port + i for i in range(self.fraud_stream_processes)]
