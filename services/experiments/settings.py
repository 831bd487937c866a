"""The experiments service's settings: the platform's, its address, admin token, file, refresh."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from services.common.bus import topics
from services.common.settings import ENV_PREFIX, PlatformSettings

# For a local run only; production refuses it (and anything short).
DEV_ADMIN_TOKEN = "dev-experiments-admin-token"
MIN_PRODUCTION_TOKEN_LENGTH = 24


class ExperimentsSettings(PlatformSettings):
    """MLSD_EXPERIMENTS_HOST, MLSD_EXPERIMENTS_PORT, MLSD_EXPERIMENTS_ADMIN_TOKEN, ..."""

    service_name: str = Field("experiments", pattern=r"^[a-z][a-z0-9_]*$")
    experiments_host: str = "127.0.0.1"
    experiments_port: int = Field(8020, ge=1, le=65535)
    experiments_admin_token: SecretStr = Field(
        SecretStr(DEV_ADMIN_TOKEN),
        description=f"Bearer token of the admin routes (PUT); the default ({DEV_ADMIN_TOKEN}) "
                    "is for local runs and refused in production")
    experiments_file: Path = Field(
        Path("config/experiments/experiments.toml"),
        description="version-controlled definitions: each is stored when its key is absent")
    experiments_refresh_interval_s: float = Field(
        2.0, gt=0, description="how often definitions are re-read from Redis")
    experiments_redis_timeout_s: float = Field(
        0.05, gt=0, le=5, description="deadline of one Redis call (connect included)")
    experiments_exposures_topic: str = topics.EXPOSURES
    experiments_exposure_dedupe_days: int = Field(
        30, ge=1, description="how long a unit's exposure mark is kept in Redis")
    experiments_exposure_memory: int = Field(
        100_000, ge=0, description="(experiment, unit) pairs remembered in process")
    experiments_publish_queue: int = Field(
        10_000, gt=0, description="exposure events waiting for the broker; beyond, dropped")
    experiments_broker_probe_timeout_s: float = Field(2.0, gt=0)
    experiments_delivery_timeout_s: float = Field(5.0, gt=0, le=60)
    experiments_guardrail_interval_s: float = Field(
        30.0, ge=0, description="how often running experiments' guardrails are checked "
                                "(0: never)")
    experiments_plot_points: int = Field(
        60, ge=2, le=500, description="instants on the conversion-over-time plot")

    @model_validator(mode="after")
    def _refuse_default_admin_token_in_production(self) -> ExperimentsSettings:
        token = self.experiments_admin_token.get_secret_value()
        if self.environment == "production" and (
                token == DEV_ADMIN_TOKEN or len(token) < MIN_PRODUCTION_TOKEN_LENGTH):
            raise ValueError(f"{ENV_PREFIX}EXPERIMENTS_ADMIN_TOKEN must be set to a secret of at "
                             f"least {MIN_PRODUCTION_TOKEN_LENGTH} characters in production")
        return self
