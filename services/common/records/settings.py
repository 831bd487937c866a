"""MLSD_POSTGRES_*: where the system of record is, and how many connections a process keeps.

One server (`make run`): MLSD_POSTGRES_HOST and _PORT. Several (the cluster topology's primary
and standby, docs/reliability.md): MLSD_POSTGRES_HOSTS, "host:port,host:port"; libpq tries them
in turn and keeps the first that takes writes (target_session_attrs=read-write), so a client
reaches whichever server is primary now, before and after a failover, without code of its own.
"""

from __future__ import annotations

from psycopg.conninfo import make_conninfo
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import ENV_PREFIX, LOOPBACK_HOSTS

LOCAL_PASSWORD = "mlsd"  # infra/postgres/start.sh's default: for the loopback dev cluster only


class PostgresSettings(BaseSettings):
    """MLSD_POSTGRES_HOST, _PORT, _USER, _PASSWORD, _DB, ... The password is a SecretStr: it
    never appears in a repr, a log line or an error message (conninfo() is the one place it is
    read, to connect)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore",
                                      hide_input_in_errors=True)  # as PlatformSettings

    environment: str = "local"
    postgres_host: str = "127.0.0.1"
    # 5433, not 5432: a Debian cluster of the same machine may hold the default port
    postgres_port: int = Field(5433, ge=1, le=65535)
    postgres_hosts: str = Field(
        "", pattern=r"^$|^[^,:\s]+:\d{1,5}(,[^,:\s]+:\d{1,5})*$",
        description="host:port,host:port: every server that may be primary; when set, host and "
                    "port are not used and a connection goes to the one that takes writes")
    postgres_user: str = Field("mlsd", min_length=1)
    postgres_password: SecretStr = SecretStr(LOCAL_PASSWORD)
    postgres_db: str = Field("mlsd", min_length=1)
    postgres_pool_min: int = Field(1, ge=0, le=50)
    postgres_pool_max: int = Field(4, ge=1, le=50)
    postgres_connect_timeout_s: float = Field(
        2.0, gt=0, le=60, description="one connection attempt; a pool waits at most this long "
                                      "for a free connection before the call fails")
    postgres_statement_timeout_ms: int = Field(
        5_000, ge=0, description="the server cancels a statement running longer (0: never)")

    @model_validator(mode="after")
    def _refuse_local_defaults_in_production(self) -> PostgresSettings:
        if self.environment == "production":
            if any(host in LOOPBACK_HOSTS for host, _ in self.servers()):
                raise ValueError(f"{ENV_PREFIX}POSTGRES_HOST must name a real host in production")
            if self.postgres_password.get_secret_value() == LOCAL_PASSWORD:
                raise ValueError(f"{ENV_PREFIX}POSTGRES_PASSWORD must be set in production")
        if self.postgres_pool_min > self.postgres_pool_max:
            raise ValueError(
                f"{ENV_PREFIX}POSTGRES_POOL_MIN is above {ENV_PREFIX}POSTGRES_POOL_MAX")
        return self

    def servers(self) -> list[tuple[str, int]]:
        """(host, port) of every server a connection may go to, in the order tried."""
        if not self.postgres_hosts:
            return [(self.postgres_host, self.postgres_port)]
        return [(host, int(port)) for host, port in
                (entry.rsplit(":", 1) for entry in self.postgres_hosts.split(","))]

    @property
    def address(self) -> str:
        """Where, for logs and `make status`: no user, no password."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.servers())
        return f"postgresql://{hosts}/{self.postgres_db}"

    def conninfo(self, application_name: str) -> str:
        """libpq's connection string. With several servers, each is tried in turn (a refused or
        timed-out one costs at most connect_timeout) until one takes writes."""
        servers = self.servers()
        several = {"target_session_attrs": "read-write"} if len(servers) > 1 else {}
        return make_conninfo(
            host=",".join(host for host, _ in servers),
            port=",".join(str(port) for _, port in servers), user=self.postgres_user,
            password=self.postgres_password.get_secret_value(), dbname=self.postgres_db,
            connect_timeout=max(1, round(self.postgres_connect_timeout_s)),
            application_name=application_name,
            options=f"-c statement_timeout={self.postgres_statement_timeout_ms}", **several)
