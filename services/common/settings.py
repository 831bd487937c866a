"""Typed settings read once from MLSD_* environment variables, built in each app factory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from services.common.kafka_access import KafkaAccess, SaslMechanism, SecurityProtocol

ENV_PREFIX = "MLSD_"
SECRETS_DIR_VARIABLE = f"{ENV_PREFIX}SECRETS_DIR"
MIN_PRODUCTION_SECRET_LENGTH = 16
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
KafkaClient = Literal["confluent", "kafka-python"]

Dataset = Literal["synthetic", "movielens"]
"""What the recommender learns from and is seeded with: the synthetic viewing world, or
MovieLens 100k (read from the recbole wheel)."""


def workers_field(port: str, default: int) -> Any:
    """A service's worker-process count (services/common/workers.py)."""
    return Field(default, ge=1, le=64, description=f"processes serving {port} (each one core at "
                                                   "most: the interpreter lock); 1 runs it in "
                                                   "one process")


class PlatformSettings(BaseSettings):
    """What every process of the platform needs to reach Redis and Kafka and to report on itself.

    Services subclass this with their own fields; all share the MLSD_ prefix, e.g.
    MLSD_REDIS_URL, MLSD_KAFKA_BOOTSTRAP_SERVERS, MLSD_LOG_LEVEL.
    """

    # hide_input_in_errors: a refused setting's error would otherwise quote the input (every
    # MLSD_* value read, the passwords among them) in its message and so in the log
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore",
                                      hide_input_in_errors=True)

    service_name: str = Field("platform", pattern=r"^[a-z][a-z0-9_]*$")
    environment: Literal["local", "test", "compose", "production"] = "local"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # A Redis Cluster is reached through any of its nodes (redis_url names one): the client
    # learns the slot map from it and follows MOVED/ASK; every service takes the same client.
    redis_cluster: bool = False
    # requirepass / the default ACL user's password; a secret, so repr and logs show '**********'
    redis_password: SecretStr | None = None
    redis_timeout_s: float = Field(0.05, gt=0, description="socket timeout of one Redis call")
    # one broker, or a comma-separated list of several (the client finds the rest of a cluster)
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_partitions: int = Field(3, ge=1)
    kafka_replication_factor: int = Field(1, ge=1)
    # How clients authenticate: PLAINTEXT (the single-node stack), SASL_PLAINTEXT (the cluster
    # topology, on loopback) or SASL_SSL (across hosts: production). With SASL, every client of
    # the platform logs in as kafka_username; the password is a secret, like redis_password.
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_username: str | None = None  # empty (compose's unset variable): none
    kafka_password: SecretStr | None = None
    # A Kafka user per service (the cluster topology): a folder of one password file per user,
    # named as the user. With it, a process whose username is not given logs in as its
    # service_name, and one whose password is not given reads it from the user's file.
    kafka_users_dir: Path | None = None
    # SASL_SSL: the CA file (PEM) the brokers' certificates are checked against (none: the
    # system's trust store); the broker's name is checked against the address either way
    kafka_ssl_cafile: Path | None = None
    # librdkafka (C) or pure Python behind the same ports; docs/streaming.md has both measured.
    kafka_client: KafkaClient = "confluent"
    kafka_retry_backoff_max_ms: int = Field(
        100, ge=1, le=60_000,
        description="librdkafka producers: the longest wait between retries of a batch whose "
                    "partition leader is gone (librdkafka's default, 1000, made the first "
                    "write after a broker's fencing up to a second late)")
    feature_namespace: str = Field("fs", pattern=r"^[a-z][a-z0-9_-]*$")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    workers_supervised: bool = Field(
        False, description="run even one worker under the worker supervisor "
                           "(services/common/workers.py), so services/autoscaler can add more "
                           "with SIGTTIN; false: one worker runs in the main process")
    workers_start: Literal["fork", "spawn"] = Field(
        "fork", description="how the worker supervisor starts a worker: forked from its parent, "
                            "which has imported the service, or spawned, a new interpreter that "
                            "imports it all again (uvicorn's way; ~1.5 s of CPU a worker on the "
                            "project's slower machine, benchmarks/worker_replacement.py)")
    http_max_connection_age_s: float = Field(
        10.0, ge=0, description="a kept-alive HTTP connection older than this is closed after its "
                                "next answer, so a worker added under load gets a share of the "
                                "clients (services/common/connections.py); 0: never")
    gc_young_threshold: int = Field(
        20_000, ge=1, description="allocations (net of frees) between two collections of the "
                                  "garbage collector's youngest generation (gc.set_threshold's "
                                  "first number; Python's default, 700, collected a batch's "
                                  "live objects again and again: the stream scorer spent ~11 % "
                                  "more CPU a transaction, docs/fraud.md)")
    blas_threads: int = Field(
        1, ge=1, le=64, description="threads numpy's BLAS may use per process; one: a request's "
                                    "products are small, parallelism comes from processes "
                                    "(benchmarks/recs_cpu.py measures the extra thread's cost)")

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Secrets as files, the way Docker and Kubernetes mount them: with
        # MLSD_SECRETS_DIR=/run/secrets, /run/secrets/mlsd_redis_password is MLSD_REDIS_PASSWORD
        # (a file keeps the secret out of `ps e` and the environment of every child process).
        # A variable set in the environment wins over its file.
        directory = os.environ.get(SECRETS_DIR_VARIABLE)
        files = (SecretsSettingsSource(settings_cls, secrets_dir=directory),) if directory else ()
        return (init_settings, env_settings, dotenv_settings, *files)

    @field_validator("kafka_users_dir", "kafka_ssl_cafile", mode="before")
    @classmethod
    def _an_empty_path_is_none(cls, value: Any) -> Any:
        # docker compose passes an unset variable as "" (${VAR:-}), which a Path reads as the
        # working directory: a users' folder and a CA file there would be wrong, not absent
        return None if value == "" else value

    @model_validator(mode="before")
    @classmethod
    def _kafka_user_of_the_service(cls, data: Any) -> Any:
        # Before validation, so the credentials found here are checked as given ones are.
        if not isinstance(data, dict) or not data.get("kafka_users_dir"):
            return data
        username = data.get("kafka_username") or data.get("service_name") or \
            cls.model_fields["service_name"].default
        if data.get("kafka_password"):
            return {**data, "kafka_username": username}
        path = Path(data["kafka_users_dir"]) / str(username)
        if not path.is_file():  # a process that uses no Kafka has no user: kafka_access() says so
            return data
        return {**data, "kafka_username": username,
                "kafka_password": path.read_text().strip()}

    def kafka_access(self) -> KafkaAccess:
        """The brokers and the credentials every Kafka client of this process is built with."""
        if self.kafka_users_dir and self.kafka_security_protocol != "PLAINTEXT" and not (
                self.kafka_username and self.kafka_password):
            raise ValueError(f"{ENV_PREFIX}KAFKA_USERS_DIR has no password file for the Kafka "
                             f"user {self.kafka_username or self.service_name!r} "
                             f"({self.kafka_users_dir}); a process "
                             f"logs in as its service_name ({ENV_PREFIX}SERVICE_NAME) unless "
                             f"{ENV_PREFIX}KAFKA_USERNAME names another")
        return KafkaAccess(self.kafka_bootstrap_servers, self.kafka_security_protocol,
                           self.kafka_sasl_mechanism, self.kafka_username, self.kafka_password,
                           str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None)

    @model_validator(mode="after")
    def _kafka_credentials_with_sasl(self) -> PlatformSettings:
        # Checked here, not first at a client's connection: a missing credential names its
        # variable at start-up. The message names variables, never a value. A user per
        # service (kafka_users_dir): checked when a client is built, as a process without
        # Kafka (the model server, the console) has no user.
        if self.kafka_security_protocol != "PLAINTEXT" and not self.kafka_users_dir and not (
                self.kafka_username and self.kafka_password
                and self.kafka_password.get_secret_value()):
            raise ValueError(
                f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                f"{ENV_PREFIX}KAFKA_USERNAME and {ENV_PREFIX}KAFKA_PASSWORD (or the file "
                f"mlsd_kafka_password in {SECRETS_DIR_VARIABLE})")
        return self

    @model_validator(mode="after")
    def _refuse_local_defaults_in_production(self) -> PlatformSettings:
        # A production process silently talking to a loopback Redis or Kafka, or to a Redis
        # anyone on the network may read and write, is misconfigured: refuse to start.
        if self.environment == "production":
            for name, value in (("redis_url", self.redis_url),
                                ("kafka_bootstrap_servers", self.kafka_bootstrap_servers)):
                if any(host in value for host in LOOPBACK_HOSTS):
                    raise ValueError(
                        f"{ENV_PREFIX}{name.upper()} must name a real host in production")
            _require_production_secret("redis_password", self.redis_password)
            self._refuse_unauthenticated_kafka_in_production()
        return self

    def _refuse_unauthenticated_kafka_in_production(self) -> None:
        # Across hosts, a Kafka client authenticates and its traffic is encrypted: SASL_SSL
        # (SASL_PLAINTEXT would send every event, and SCRAM's exchange, in the clear).
        if self.kafka_security_protocol != "SASL_SSL":
            raise ValueError(f"{ENV_PREFIX}KAFKA_SECURITY_PROTOCOL must be SASL_SSL in production")
        _require_production_secret("kafka_password", self.kafka_password)


def _require_production_secret(name: str, secret: SecretStr | None) -> None:
    """A password production may run with: set (in the environment or the secrets directory's
    file of its name) and at least MIN_PRODUCTION_SECRET_LENGTH characters long."""
    if len(secret.get_secret_value() if secret else "") < MIN_PRODUCTION_SECRET_LENGTH:
        raise ValueError(
            f"{ENV_PREFIX}{name.upper()} (or the file mlsd_{name} in {SECRETS_DIR_VARIABLE}) "
            f"must be set to a secret of at least {MIN_PRODUCTION_SECRET_LENGTH} characters in "
            "production")


class DatasetSettings(BaseSettings):
    """MLSD_DATASET, read by the jobs around the recommender (trainer, seeder, simulator, the
    demo's summary): the services themselves serve whatever the production ranker was trained on.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    dataset: Dataset = Field("synthetic", description="the recommender's data: synthetic or "
                                                      "movielens")
