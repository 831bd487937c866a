"""The cluster topology (`make run-cluster`): 3 KRaft Kafka nodes, a 6-node Redis Cluster and a
PostgreSQL primary with a synchronous hot standby under pg_auto_failover.

      ingest  stream  fraud  recommender  ...  (the same services, pointed by MLSD_* settings)
         |       |       |        |
 Kafka   kafka-1 :19092  kafka-2 :19093  kafka-3 :19094  broker+controller each; RF 3, min ISR 2;
                                                         SASL/SCRAM-SHA-512 for every client,
                                                         a user per service (kafka_principals)
 Redis   redis-1 :7001   redis-2 :7002   redis-3 :7003   masters, 5,461 slots each
         redis-4 :7004   redis-5 :7005   redis-6 :7006   one replica of each master
 Postgres postgres-1 :5441  postgres-2 :5442             primary and synchronous standby (either)
          postgres-monitor :5440                         pg_auto_failover's monitor: promotes

The nodes are supervised programs of infra/supervisord.cluster.conf; the services come from the
same infra/supervisor/services.conf as `make run`'s, held back until both clusters are formed.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.bus.acls import add_users, grant_exactly, revoke_user
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import platform_topics
from services.common.kafka_access import KafkaAccess, SecurityProtocol
from services.common.probe import kafka_ready, redis_ready
from services.devstack.balancer import balanced_services, instance_environment
from services.devstack.kafka_principals import PRINCIPALS

HOST = "127.0.0.1"
# The services' one shared SCRAM user before each had its own (session 16): an earlier run's
# cluster still has it, and run-cluster revokes its ACLs and deletes it
SHARED_KAFKA_USERNAME = "mlsd"
KAFKA_ADMIN_USERNAME = "broker"  # the nodes' own (replication, the quorum), the super user
POSTGRES_DATA_NODES = 2  # a primary and its synchronous standby
POSTGRES_OWNER = "postgres"  # the nodes' superuser (pg_autoctl's), trusted on loopback only
TOOLING_KAFKA_USERNAME = "chaos"  # the chaos tests' and benchmarks' own clients
KAFKA_USERS_FOLDER = "kafka-users"  # in the state folder: one password file per user
KAFKA_TLS_FOLDER = "kafka-tls"  # in the state folder: the CA, the brokers' key and certificate
# what the brokers' certificate names: every node listens on loopback (docker compose's nodes
# have their own names: the kafka-secrets one-shot gives them, services/devstack/__main__.py)
LOOPBACK_NAMES = ("IP:127.0.0.1", "DNS:localhost")


class ClusterSettings(BaseSettings):
    """MLSD_CLUSTER_*: where the cluster topology's nodes listen (node N on base + N - 1)."""

    model_config = SettingsConfigDict(env_prefix="MLSD_CLUSTER_", frozen=True, extra="ignore")

    kafka_nodes: int = Field(3, ge=3, le=9, description="KRaft nodes, broker and controller each")
    kafka_base_port: int = Field(19092, ge=1024, le=65000)
    kafka_controller_base_port: int = Field(19192, ge=1024, le=65000)
    redis_masters: int = Field(3, ge=3, le=16, description="Redis Cluster needs at least 3")
    redis_replicas_per_master: int = Field(1, ge=0, le=3)
    redis_base_port: int = Field(7001, ge=1024, le=55000)
    # not port + 10000 (Redis's default): explicit, so two topologies on one machine can differ
    redis_bus_base_port: int = Field(17001, ge=1024, le=65000)
    redis_node_timeout_ms: int = Field(
        2000, ge=500, description="a master silent this long is failed over to its replica")
    postgres_monitor_port: int = Field(5440, ge=1024, le=65000)
    postgres_base_port: int = Field(5441, ge=1024, le=65000,
                                    description="data node N on base + N - 1")
    kafka_tls: bool = Field(False, description="the brokers' client and replication listener "
                                               "SASL_SSL, with a CA and a broker certificate "
                                               "made on the first run (docs/reliability.md)")

    @property
    def redis_nodes(self) -> int:
        return self.redis_masters * (1 + self.redis_replicas_per_master)

    def kafka_addresses(self) -> list[str]:
        return [f"{HOST}:{self.kafka_base_port + n}" for n in range(self.kafka_nodes)]

    def redis_addresses(self) -> list[str]:
        return [f"{HOST}:{self.redis_base_port + n}" for n in range(self.redis_nodes)]

    def postgres_addresses(self) -> list[str]:
        """The primary and the standby, in no fixed order: whichever the monitor promoted."""
        return [f"{HOST}:{self.postgres_base_port + n}" for n in range(POSTGRES_DATA_NODES)]


def kafka_cluster_id() -> str:
    """A new KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22
    characters), never starting with '-' (as Kafka's own Uuid.randomUuid): `kafka-storage
    format --cluster-id -x...` reads such an id as an option and fails, one id in 64."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


@dataclass(frozen=True)
class ClusterSecrets:
    """Generated on the first run into the state folder (mode 600), reused by every later one:
    the Redis password, the KRaft cluster id, the nodes' own Kafka password, and one password
    per Kafka user of kafka_principals, each in its own file of `kafka_users_dir` (what
    MLSD_KAFKA_USERS_DIR names to the services)."""

    redis_password: str
    kafka_cluster_id: str
    kafka_broker_password: str  # the nodes' own, never given to a service
    kafka_users_dir: Path
    kafka_ca_file: Path | None = None  # SASL_SSL: the CA the clients check the brokers against

    @classmethod
    def load_or_create(cls, folder: Path, redis_password: str | None = None,
                       kafka_cluster_id_: str | None = None, tls: bool = False
                       ) -> ClusterSecrets:
        """A Redis password given here or in the environment (MLSD_REDIS_PASSWORD) wins over the
        generated one; the test harness gives a new folder and a new cluster id per topology.
        `tls`: the brokers' certificate authority and certificate too (make_kafka_tls)."""
        folder.mkdir(parents=True, exist_ok=True)
        users = make_kafka_user_passwords(folder / KAFKA_USERS_FOLDER)
        return cls(redis_password or os.environ.get("MLSD_REDIS_PASSWORD") or _read_or_write(
                       folder / "redis-password", lambda: secrets.token_urlsafe(24)),
                   kafka_cluster_id_ or _read_or_write(folder / "kafka-cluster-id",
                                                       kafka_cluster_id),
                   _read_or_write(folder / "kafka-broker-password",
                                  lambda: secrets.token_urlsafe(24)),
                   users, make_kafka_tls(folder / KAFKA_TLS_FOLDER) if tls else None)

    @property
    def kafka_security_protocol(self) -> SecurityProtocol:
        return "SASL_SSL" if self.kafka_ca_file else "SASL_PLAINTEXT"

    @property
    def kafka_tls_dir(self) -> Path | None:
        """What the node script reads (KAFKA_TLS_DIR): the keystore, its password, the CA."""
        return self.kafka_ca_file.parent if self.kafka_ca_file else None

    def kafka_password(self, username: str) -> str:
        return (self.kafka_users_dir / username).read_text().strip()

    def kafka_passwords(self) -> dict[str, str]:
        """Every user of kafka_principals and its password (to add them to the cluster)."""
        return {user: self.kafka_password(user) for user in PRINCIPALS}

    def kafka_access(self, bootstrap_servers: str, username: str) -> KafkaAccess:
        """How a user of kafka_principals reaches the cluster's brokers."""
        return KafkaAccess(bootstrap_servers, self.kafka_security_protocol, "SCRAM-SHA-512",
                           username, SecretStr(self.kafka_password(username)),
                           self._ca_file())

    def kafka_admin_access(self, bootstrap_servers: str) -> KafkaAccess:
        """The nodes' own user, `broker`: the authorizer's super user, which adds the users and
        grants their ACLs (services/common/bus/acls.py) and creates the topics. Never a
        service's."""
        return KafkaAccess(bootstrap_servers, self.kafka_security_protocol, "SCRAM-SHA-512",
                           KAFKA_ADMIN_USERNAME, SecretStr(self.kafka_broker_password),
                           self._ca_file())

    def _ca_file(self) -> str | None:
        return str(self.kafka_ca_file) if self.kafka_ca_file else None


def make_kafka_user_passwords(users: Path) -> Path:
    """One password per Kafka user of kafka_principals, each in its own file named as the user
    (mode 600, the folder 700), drawn on the first run and reused: the folder a process names
    with MLSD_KAFKA_USERS_DIR (make run-cluster's .state/cluster/kafka-users, docker compose's
    kafka-secrets volume)."""
    users.mkdir(mode=0o700, parents=True, exist_ok=True)
    for user in PRINCIPALS:
        _read_or_write(users / user, lambda: secrets.token_urlsafe(24))
    return users


def make_kafka_tls(folder: Path, days: int = 825,
                   names: Sequence[str] = LOOPBACK_NAMES) -> Path:
    """A certificate authority and one broker certificate it signs (its subject alternative
    names `names`, by default 127.0.0.1 and localhost: every node listens on loopback), made
    with openssl on the first run and reused; returns the CA's certificate (PEM), what the
    clients check the brokers against. The brokers read a PKCS12 keystore (broker.p12) whose
    password is in keystore-password; the keys, the keystore and its password are mode 600."""
    ca = folder / "ca.pem"
    if (folder / "broker.p12").exists() and ca.exists():
        return ca
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = _read_or_write(folder / "keystore-password", lambda: secrets.token_urlsafe(24))
    (folder / "broker.ext").write_text(f"subjectAltName={','.join(names)}\n"
                                       "extendedKeyUsage=serverAuth,clientAuth\n"
                                       "keyUsage=critical,digitalSignature,keyEncipherment\n")
    old_umask = os.umask(0o077)  # keys and the keystore created closed
    try:
        for command in (
                ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                 "-out", "ca.pem", "-days", str(days), "-subj", "/CN=mlsd cluster topology CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key",
                 "-out", "broker.csr", "-subj", "/CN=127.0.0.1"],
                ["x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "broker.pem", "-days", str(days),
                 "-extfile", "broker.ext"],
                # the password through the environment: off the command line
                ["pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key",
                 "-certfile", "ca.pem", "-name", "broker", "-out", "broker.p12",
                 "-passout", "env:MLSD_KEYSTORE_PASSWORD"]):
            subprocess.run(["openssl", *command], check=True, cwd=folder,
                           env={**os.environ, "MLSD_KEYSTORE_PASSWORD": password},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finally:
        os.umask(old_umask)
    ca.chmod(0o644)  # the CA's certificate is public; its key stays closed
    return ca


def _read_or_write(path: Path, make: Callable[[], str]) -> str:
    if path.exists():
        return path.read_text().strip()
    value = make()
    path.touch(mode=0o600)  # created closed, before the secret is written into it
    path.write_text(value + "\n")
    return value


def cluster_environment(cluster: ClusterSettings, secrets_: ClusterSecrets,
                        state: Path) -> dict[str, str]:
    """What supervisord.cluster.conf and every service under it read: the node scripts' ports
    and folders, and the MLSD_* settings that point the unchanged services at the clusters."""
    return {
        "MLSD_SERVICES_AUTOSTART": "false",
        "MLSD_CLUSTER_KAFKA_NODES": str(cluster.kafka_nodes),
        "MLSD_CLUSTER_REDIS_NODES": str(cluster.redis_nodes),
        "KAFKA_NODES": str(cluster.kafka_nodes),
        "KAFKA_BASE_PORT": str(cluster.kafka_base_port),
        "KAFKA_CONTROLLER_BASE_PORT": str(cluster.kafka_controller_base_port),
        "KAFKA_CLUSTER_ID": secrets_.kafka_cluster_id,
        "KAFKA_CLUSTER_DIR": str(state),
        "KAFKA_BROKER_PASSWORD": secrets_.kafka_broker_password,
        "REDIS_BASE_PORT": str(cluster.redis_base_port),
        "REDIS_BUS_BASE_PORT": str(cluster.redis_bus_base_port),
        "REDIS_CLUSTER_DIR": str(state),
        "REDIS_NODE_TIMEOUT_MS": str(cluster.redis_node_timeout_ms),
        "PG_HA_MONITOR_PORT": str(cluster.postgres_monitor_port),
        "PG_HA_BASE_PORT": str(cluster.postgres_base_port),
        "PG_HA_STATE_DIR": str(state),
        "MLSD_POSTGRES_HOSTS": ",".join(cluster.postgres_addresses()),
        "MLSD_REDIS_URL": f"redis://{cluster.redis_addresses()[0]}/0",
        "MLSD_REDIS_CLUSTER": "true",
        "MLSD_REDIS_PASSWORD": secrets_.redis_password,
        "MLSD_KAFKA_BOOTSTRAP_SERVERS": ",".join(cluster.kafka_addresses()),
        "MLSD_KAFKA_REPLICATION_FACTOR": "3",
        "MLSD_KAFKA_SECURITY_PROTOCOL": secrets_.kafka_security_protocol,
        "MLSD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        # SASL_SSL: the clients check the brokers against this CA; the nodes read their keystore
        **({"MLSD_KAFKA_SSL_CAFILE": str(secrets_.kafka_ca_file),
            "KAFKA_TLS_DIR": str(secrets_.kafka_tls_dir)} if secrets_.kafka_ca_file else {}),
        # each process logs in as its service_name, with that user's password file
        "MLSD_KAFKA_USERS_DIR": str(secrets_.kafka_users_dir),
        # the balanced services bind their instance ports; HAProxy takes the public ones
        **instance_environment(balanced_services()),
    }


def set_up_kafka_users(secrets_: ClusterSecrets, bootstrap_servers: str,
                       timeout_s: float = 60.0) -> int:
    """As the nodes' own user, once the quorum runs: revoke the shared user of an earlier run,
    add every user of kafka_principals with its password, give each exactly its ACLs, and wait
    until each logs in (a broker learns a user from the metadata a moment later). Returns how
    many ACLs were revoked (the shared user's, and grants the table no longer makes)."""
    admin = secrets_.kafka_admin_access(bootstrap_servers)
    revoked = revoke_user(admin, SHARED_KAFKA_USERNAME)
    add_users(admin, secrets_.kafka_passwords())
    revoked += grant_exactly(admin, [acl for p in PRINCIPALS.values() for acl in p.acls()])
    deadline = time.monotonic() + timeout_s
    for user in PRINCIPALS:
        while not kafka_ready(secrets_.kafka_access(bootstrap_servers, user), timeout_s=2.0):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Kafka user {user!r} could not log in within "
                                   f"{timeout_s:.0f} s of being added")
            time.sleep(0.25)
    return revoked


def set_up_kafka(secrets_: ClusterSecrets, bootstrap_servers: str, partitions: int,
                 replication_factor: int) -> tuple[int, list[str], int]:
    """What make run-cluster and docker compose's kafka-acls one-shot do once the quorum runs,
    as the nodes' own user, before any service starts: every user of kafka_principals with
    exactly its ACLs (set_up_kafka_users), then the platform's topics (a service's own user
    may create none but those it consumes). Returns the ACLs revoked, the topics created and
    the platform's topics in all."""
    revoked = set_up_kafka_users(secrets_, bootstrap_servers)
    specs = platform_topics(partitions, replication_factor)
    created = ensure_topics(secrets_.kafka_admin_access(bootstrap_servers), specs)
    return revoked, created, len(specs)


def kafka_node_ready(access: KafkaAccess) -> bool:
    """One node (access names one broker) answers, and accepts the credentials."""
    return kafka_ready(access, timeout_s=2.0)


def redis_node_ready(address: str, password: str) -> bool:
    return redis_ready(f"redis://{address}/0", timeout_s=0.5, password=password)


def form_redis_cluster(addresses: list[str], replicas_per_master: int, password: str,
                       timeout_s: float = 60.0) -> bool:
    """`redis-cli --cluster create` over the nodes (host:port) unless they already are one
    cluster (nodes.conf kept it from an earlier run); returns True when it created the cluster.
    Waits until every node reports cluster_state ok."""
    created = False
    if not redis_ready(f"redis://{addresses[0]}/0", password=password, cluster=True):
        # REDISCLI_AUTH, not -a: the password stays off the process list
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas",
             str(replicas_per_master), "--cluster-yes"],
            check=True, env={**os.environ, "REDISCLI_AUTH": password},
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        created = True
    deadline = time.monotonic() + timeout_s
    while not all(redis_ready(f"redis://{a}/0", password=password, cluster=True)
                  for a in addresses):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Redis Cluster did not report ok within {timeout_s:.0f} s")
        time.sleep(0.5)
    return created


def redis_roles(addresses: list[str], password: str) -> dict[str, str]:
    """host:port -> master, slave or down, as each node says of itself (for the chaos tests)."""
    roles: dict[str, str] = {}
    for address in addresses:
        host, port = address.split(":")
        client = redis.Redis(host=host, port=int(port), password=password, socket_timeout=0.5,
                             socket_connect_timeout=0.5)
        try:
            roles[address] = str(client.info("replication")["role"])
        except redis.RedisError:
            roles[address] = "down"
        finally:
            client.close()
    return roles


def superuser_conninfo(address: str, dbname: str) -> str:
    """The nodes' superuser, for forming the cluster and probing a node: never a service's."""
    host, port = address.split(":")
    return make_conninfo(host=host, port=port, user=POSTGRES_OWNER, dbname=dbname,
                         connect_timeout=1)


def postgres_node_ready(address: str, dbname: str) -> bool:
    """One node (monitor, primary or standby) answers a query."""
    try:
        with psycopg.connect(superuser_conninfo(address, dbname), autocommit=True) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.Error:
        return False


def postgres_roles(addresses: list[str], dbname: str) -> dict[str, str]:
    """host:port -> primary (takes writes), standby (in recovery or read-only) or down."""
    roles: dict[str, str] = {}
    for address in addresses:
        try:
            with psycopg.connect(superuser_conninfo(address, dbname), autocommit=True) as conn:
                row = conn.execute("SELECT pg_is_in_recovery(),"
                                   " current_setting('default_transaction_read_only')").fetchone()
            roles[address] = "primary" if row == (False, "off") else "standby"
        except psycopg.Error:
            roles[address] = "down"
    return roles


def form_postgres(addresses: list[str], user: str, password: str, dbname: str,
                  timeout_s: float = 120.0) -> str:
    """Once pg_auto_failover has a primary: the services' role (a password, the database's
    owner: the migrations create its tables), then every other node streaming as a synchronous
    standby. A standby's first base backup waits for a checkpoint on the primary: one is asked
    for every 2 s until it streams. Returns the primary's address. Idempotent; a node restarted
    meanwhile (pg_autoctl restarts its PostgreSQL once it is created) is asked again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        primary = next((a for a, role in postgres_roles(addresses, dbname).items()
                        if role == "primary"), None)
        if primary is not None:
            try:
                if _own_and_stream(primary, user, password, dbname, len(addresses) - 1):
                    return primary
            except psycopg.OperationalError:
                pass
        time.sleep(2.0)
    raise RuntimeError(f"no PostgreSQL primary with a streaming standby within {timeout_s:.0f} s")


def _own_and_stream(primary: str, user: str, password: str, dbname: str, standbys: int) -> bool:
    """The services' role made (or its password set again) on the primary; whether `standbys`
    stream synchronously, a checkpoint asked for if not."""
    with psycopg.connect(superuser_conninfo(primary, dbname), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        role = sql.Identifier(user)
        conn.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
            sql.SQL("ALTER" if exists else "CREATE"), role, sql.Literal(password)))
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            sql.Identifier(dbname), role))
        streaming = conn.execute(
            "SELECT count(*) FROM pg_stat_replication"
            " WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum')").fetchone()
        if streaming is not None and streaming[0] >= standbys:
            return True
        conn.execute("CHECKPOINT")
        return False
