"""How a process reaches its models: MLSD_MODEL_BACKEND, MLSD_MODEL_REPOSITORY, ... (typed)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from services.common.settings import ENV_PREFIX, LOOPBACK_HOSTS, PlatformSettings


class ModelSettings(PlatformSettings):
    """Settings of every process that predicts, registers or serves; services subclass this.

    MLSD_MODEL_BACKEND=local runs ONNX Runtime in-process over MLSD_MODEL_REPOSITORY;
    MLSD_MODEL_BACKEND=remote calls the model server at MLSD_MODEL_SERVER_URL.
    """

    model_backend: Literal["local", "remote"] = "local"
    model_repository: Path = Field(Path(".state/models"),
                                   description="root of the model repository (local backend, "
                                               "model server, trainer, CLI)")
    model_server_url: str = "http://127.0.0.1:8010"
    model_timeout_s: float = Field(0.1, gt=0, description="one remote prediction, connect "
                                                          "included; past it: ModelUnavailable")
    model_reload_interval_s: float = Field(1.0, gt=0, description="how often the production "
                                                                  "pointers are read")
    model_binary_data: bool = Field(True, description="remote tensors as raw bytes (binary "
                                                      "tensor extension) rather than JSON lists")

    @model_validator(mode="after")
    def _refuse_loopback_model_server_in_production(self) -> ModelSettings:
        if (self.environment == "production" and self.model_backend == "remote"
                and any(host in self.model_server_url for host in LOOPBACK_HOSTS)):
            raise ValueError(f"{ENV_PREFIX}MODEL_SERVER_URL must name a real host in production")
        return self
