"""The stream processor's settings: which concerns run, batch sizes, where its probes listen."""

from __future__ import annotations

from pydantic import Field

from services.common.models.settings import ModelSettings


class StreamSettings(ModelSettings):
    """MLSD_STREAM_CONCERNS ("default", "all" or e.g. "watch-features,experiments"),
    MLSD_STREAM_PORT, ...

    "default" runs every concern but `transaction-features`, which records every transaction
    from `transactions` and is for a stack without the fraud stream scorer (the scorer records
    what it decides, and hands the rest to `unrecorded-transactions`; services/stream/concerns.py).

    The model repository (MLSD_MODEL_REPOSITORY) gives the item embeddings the watch concern
    folds into users' taste vectors.
    """

    service_name: str = Field("stream", pattern=r"^[a-z][a-z0-9_]*$")
    stream_host: str = "127.0.0.1"
    stream_port: int = Field(8050, ge=1, le=65535, description="/healthz, /readyz, /metrics")
    stream_concerns: str = "default"
    stream_max_batch: int = Field(500, ge=1, le=10_000)
    stream_commit_interval_s: float = Field(1.0, gt=0)
    stream_dedupe_window_s: int = Field(86_400, ge=60)
