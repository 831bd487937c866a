"""The model server's settings: the platform's, the models', address, admin token, limits."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from services.common.models.settings import ModelSettings
from services.common.settings import ENV_PREFIX

MIN_PRODUCTION_TOKEN_LENGTH = 24


class ModelServerSettings(ModelSettings):
    """MLSD_MODEL_SERVER_HOST, MLSD_MODEL_SERVER_PORT, MLSD_MODEL_SERVER_ADMIN_TOKEN, ...

    With no admin token the server still serves inference, and its admin routes answer 403:
    promote and rollback over HTTP are off until someone chooses a secret.
    """

    service_name: str = Field("modelserver", pattern=r"^[a-z][a-z0-9_]*$")
    model_server_host: str = "127.0.0.1"
    model_server_port: int = Field(8010, ge=1, le=65535)
    model_server_admin_token: SecretStr | None = Field(
        None, description="Bearer token for /v1/admin/*; unset: admin routes answer 403")
    model_server_max_request_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="larger inference bodies get 413, before parsing")
    model_server_max_other_versions: int = Field(
        4, ge=0, description="non-production versions kept loaded for /versions/{v} calls")

    @model_validator(mode="after")
    def _refuse_weak_admin_token_in_production(self) -> ModelServerSettings:
        token = self.model_server_admin_token
        if (self.environment == "production" and token is not None
                and len(token.get_secret_value()) < MIN_PRODUCTION_TOKEN_LENGTH):
            raise ValueError(f"{ENV_PREFIX}MODEL_SERVER_ADMIN_TOKEN must have at least "
                             f"{MIN_PRODUCTION_TOKEN_LENGTH} characters in production")
        return self
