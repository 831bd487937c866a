"""Real redis-server, Kafka and PostgreSQL processes on free loopback ports, for tests and
benchmarks.

Each caller gets its own servers in a folder it chooses, so tests and benchmarks never touch the
data of a running `make run` stack. A server that cannot start raises ServerDidNotStart with
the end of its log: the caller fails, it never skips.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from services.common.kafka_access import KafkaAccess
from services.common.loopback import free_port
from services.common.probe import kafka_ready, redis_ready
from services.common.processes import stop_process
from services.common.records.pool import postgres_ready
from services.common.records.settings import PostgresSettings
from services.devstack.cluster import (
    POSTGRES_DATA_NODES,
    TOOLING_KAFKA_USERNAME,
    ClusterSecrets,
    form_postgres,
    form_redis_cluster,
    kafka_cluster_id,
    kafka_node_ready,
    postgres_node_ready,
    postgres_roles,
    redis_node_ready,
    set_up_kafka_users,
    superuser_conninfo,
)
from services.devstack.kafka_cds import ensure_archive

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServerDidNotStart(RuntimeError):
    """A real server the tests need could not be started: the run must fail, not skip."""


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    address: str
    extra: dict[str, str] = field(default_factory=dict)
    # PostgreSQL's SIGTERM waits for every client to disconnect; its SIGINT is the fast shutdown
    stop_signal: signal.Signals = signal.SIGTERM

    def stop(self, timeout_s: float = 30.0) -> None:
        stop_process(self.process, timeout_s, self.stop_signal)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _start(name: str, script: Path, env: dict[str, str], log_path: Path, address: str,
           ready: Callable[[], bool], timeout_s: float) -> ServerProcess:
    log = log_path.open("wb")
    process = subprocess.Popen(  # the script execs the server: one process to stop
        [str(script)], env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        cwd=REPO_ROOT, start_new_session=True,
    )
    server = ServerProcess(name, process, log_path, address)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerDidNotStart(
                f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        if ready():
            return server
        time.sleep(0.25)
    server.stop()
    raise ServerDidNotStart(f"{name} not ready after {timeout_s:.0f} s:\n{server.log_tail()}")


def start_redis(workdir: Path, timeout_s: float = 20.0) -> ServerProcess:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    data_dir = workdir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    return _start(
        "redis-server", REPO_ROOT / "infra/redis/start.sh",
        {"REDIS_PORT": str(port), "REDIS_DATA_DIR": str(data_dir)},
        workdir / "redis.log", url, lambda: redis_ready(url, timeout_s=0.5), timeout_s,
    )


def start_kafka(workdir: Path, partitions: int = 3, timeout_s: float = 90.0) -> ServerProcess:
    port, controller_port = free_port(), free_port()
    bootstrap = f"127.0.0.1:{port}"
    env = {
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller_port),
        "KAFKA_DATA_DIR": str(workdir / "kafka"),
        "KAFKA_PARTITIONS": str(partitions),
    }
    return _start(
        "kafka", REPO_ROOT / "infra/kafka/start.sh", env, workdir / "kafka.log", bootstrap,
        lambda: kafka_ready(bootstrap, timeout_s=2.0), timeout_s,
    )


def start_postgres(workdir: Path, timeout_s: float = 60.0) -> ServerProcess:
    """A PostgreSQL cluster created for this caller (initdb on first start, by the same script
    `make run` uses); `extra["port"]` is its port, for PostgresSettings(postgres_port=...)."""
    port = free_port()
    # As root the server runs as the postgres user, which must reach its data folder: pytest's
    # temporary folders are closed to other users, so the cluster lives in a folder of its own.
    data_root = Path(tempfile.mkdtemp(prefix="mlsd-postgres-"))
    data_root.chmod(0o711)
    settings = PostgresSettings(postgres_port=port)
    server = _start(
        "postgres", REPO_ROOT / "infra/postgres/start.sh",
        {"MLSD_POSTGRES_PORT": str(port), "POSTGRES_DATA_DIR": str(data_root / "data"),
         "MLSD_POSTGRES_USER": settings.postgres_user, "MLSD_POSTGRES_DB": settings.postgres_db,
         "MLSD_POSTGRES_PASSWORD": settings.postgres_password.get_secret_value()},
        workdir / "postgres.log", settings.address,
        lambda: postgres_ready(settings, timeout_s=1.0), timeout_s)
    server.extra["port"] = str(port)
    server.extra["data_root"] = str(data_root)
    server.stop_signal = signal.SIGINT
    return server


def start_redis_cluster(workdir: Path, timeout_s: float = 20.0) -> ServerProcess:
    """A one-node Redis Cluster owning all 16,384 slots: the cluster client's real code path."""
    port, bus_port = free_port(), free_port()  # the default bus port, port + 10000, may be > 65535
    log_path = workdir / "redis-cluster.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
             "--cluster-enabled", "yes", "--cluster-port", str(bus_port),
             "--cluster-config-file", str(workdir / "nodes.conf"),
             "--save", "", "--appendonly", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = ServerProcess("redis-cluster", process, log_path, f"redis://127.0.0.1:{port}/0")
    deadline = time.monotonic() + timeout_s
    try:
        while not redis_ready(server.address, timeout_s=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServerDidNotStart(f"redis-cluster did not start:\n{server.log_tail()}")
            time.sleep(0.1)
        node = redis.Redis(port=port)
        node.cluster("ADDSLOTSRANGE", 0, 16383)
        while node.cluster("INFO")["cluster_state"] != "ok":
            if time.monotonic() > deadline:
                raise ServerDidNotStart(f"redis-cluster slots not ok:\n{server.log_tail()}")
            time.sleep(0.1)
        node.close()
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def redis_url(given: str | None) -> Iterator[str]:
    """`given` when a benchmark was pointed at a Redis, else a throwaway redis-server's URL."""
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory() as workdir:
        server = start_redis(Path(workdir))
        try:
            yield server.address
        finally:
            server.stop()


@dataclass
class _Node:
    """How to (re)start one node of a cluster topology: the chaos tests kill and restart them."""

    name: str
    script: Path
    env: dict[str, str]
    log_path: Path
    address: str
    ready: Callable[[], bool]

    def launch(self) -> ServerProcess:
        log = self.log_path.open("ab")
        process = subprocess.Popen(  # the script execs the server: one process to stop or kill
            [str(self.script)], env={**os.environ, **self.env}, stdout=log,
            stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True)
        return ServerProcess(self.name, process, self.log_path, self.address)


@dataclass
class ClusterTopology:
    """3 KRaft Kafka nodes authenticating every client (SASL/SCRAM), a user per service, and a
    3-master, 3-replica Redis Cluster with a password, on free loopback ports: `make
    run-cluster`'s topology, started by the same node scripts."""

    nodes: dict[str, _Node]
    servers: dict[str, ServerProcess]
    secrets: ClusterSecrets
    kafka_names: list[str]
    redis_names: list[str]

    @property
    def redis_password(self) -> str:
        return self.secrets.redis_password

    @property
    def kafka_bootstrap(self) -> str:
        """The brokers' addresses alone: a client needs kafka_access (the credentials) too."""
        return ",".join(self.nodes[name].address for name in self.kafka_names)

    @property
    def kafka_access(self) -> KafkaAccess:
        """The brokers and the tests' own user (`chaos`: produces to and reads every topic of
        the platform, reads every service group's lag; creates and deletes nothing)."""
        return self.kafka_access_of(TOOLING_KAFKA_USERNAME)

    def kafka_access_of(self, username: str) -> KafkaAccess:
        """The brokers and a user of kafka_principals (a service's own)."""
        return self.secrets.kafka_access(self.kafka_bootstrap, username)

    @property
    def kafka_admin_access(self) -> KafkaAccess:
        """The brokers and the nodes' own credentials (`broker`, the authorizer's super user):
        for granting ACLs and adding users, never for a service."""
        return self.secrets.kafka_admin_access(self.kafka_bootstrap)

    @property
    def redis_addresses(self) -> list[str]:
        return [self.nodes[name].address for name in self.redis_names]

    @property
    def redis_url(self) -> str:
        return f"redis://{self.redis_addresses[0]}/0"

    def service_environment(self) -> dict[str, str]:
        """The MLSD_* settings that point a service at this topology; each service logs in to
        Kafka as its own user (its service_name), its password read from the users' folder."""
        access = self.kafka_access
        return {"MLSD_REDIS_URL": self.redis_url, "MLSD_REDIS_CLUSTER": "true",
                "MLSD_REDIS_PASSWORD": self.redis_password,
                "MLSD_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
                "MLSD_KAFKA_REPLICATION_FACTOR": "3",
                "MLSD_KAFKA_SECURITY_PROTOCOL": access.security_protocol,
                "MLSD_KAFKA_SASL_MECHANISM": access.sasl_mechanism,
                "MLSD_KAFKA_USERS_DIR": str(self.secrets.kafka_users_dir),
                **({"MLSD_KAFKA_SSL_CAFILE": str(self.secrets.kafka_ca_file)}
                   if self.secrets.kafka_ca_file else {})}

    def gc_logs(self, name: str) -> list[Path]:
        """A Kafka node's GC logs (-Xlog:gc, infra/kafka/cluster-node.sh), one a start."""
        pattern = Path(self.nodes[name].env["KAFKA_NODE_GC_LOG"])
        return sorted(pattern.parent.glob(pattern.name.replace("%p", "*")))

    def kill(self, name: str) -> None:
        """kill -9: no shutdown, no flush, as a crash."""
        server = self.servers[name]
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()

    def restart(self, name: str, timeout_s: float = 90.0) -> None:
        self.servers[name] = self.nodes[name].launch()
        _await_ready([self.servers[name]], [self.nodes[name]], timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """All nodes told at once (one by one, each broker would wait out its own shutdown)."""
        running = [s for s in self.servers.values() if s.process.poll() is None]
        for server in running:
            server.process.send_signal(server.stop_signal)
        for server in running:
            server.stop(timeout_s)


def _await_ready(servers: list[ServerProcess], nodes: list[_Node], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for server, node in zip(servers, nodes, strict=True):
        while not node.ready():
            if server.process.poll() is not None:
                raise ServerDidNotStart(
                    f"{node.name} exited with {server.process.returncode}:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise ServerDidNotStart(f"{node.name} not ready:\n{server.log_tail()}")
            time.sleep(0.25)


def start_cluster_topology(workdir: Path, redis_password: str, kafka_nodes: int = 3,
                           redis_masters: int = 3, partitions: int = 3,
                           timeout_s: float = 120.0, tls: bool = False,
                           kafka_env: dict[str, str] | None = None) -> ClusterTopology:
    """Every node launched at once (a KRaft node is ready only once a quorum of voters runs),
    then the Redis nodes formed into one cluster by `redis-cli --cluster create` (none when
    redis_masters is 0). The Kafka passwords (each user's and the nodes' own) are drawn for
    this topology, in `workdir`. `tls`: the brokers' client and replication listener SASL_SSL,
    with a CA and a certificate made for this topology. The Kafka nodes use the checkout's
    class data sharing archive, made first when missing (services/devstack/kafka_cds.py), as
    `make run-cluster`'s do; kafka_env is added to each Kafka node's environment
    (benchmarks/broker_start.py's JVM settings)."""
    if kafka_nodes:
        ensure_archive()
    kafka_ports = [(free_port(), free_port()) for _ in range(kafka_nodes)]
    voters = ",".join(f"{n}@127.0.0.1:{c}" for n, (_, c) in enumerate(kafka_ports, start=1))
    cluster_secrets = ClusterSecrets.load_or_create(workdir / "secrets", redis_password,
                                                    kafka_cluster_id(), tls=tls)
    tls_env = {"KAFKA_TLS_DIR": str(cluster_secrets.kafka_tls_dir)} if tls else {}
    nodes: dict[str, _Node] = {}
    for n, (port, controller) in enumerate(kafka_ports, start=1):
        address = f"127.0.0.1:{port}"
        nodes[f"kafka-{n}"] = _Node(
            f"kafka-{n}", REPO_ROOT / "infra/kafka/cluster-node.sh",
            {"KAFKA_NODE_ID": str(n), "KAFKA_CLUSTER_ID": cluster_secrets.kafka_cluster_id,
             "KAFKA_VOTERS": voters,
             "KAFKA_NODE_PORT": str(port), "KAFKA_NODE_CONTROLLER_PORT": str(controller),
             "KAFKA_NODE_DATA_DIR": str(workdir / f"kafka-{n}"),
             "KAFKA_NODE_GC_LOG": str(workdir / f"kafka-{n}-gc-%p.log"),
             "KAFKA_PARTITIONS": str(partitions),
             "KAFKA_BROKER_PASSWORD": cluster_secrets.kafka_broker_password, **tls_env,
             **(kafka_env or {})},
            workdir / f"kafka-{n}.log", address,
            functools.partial(kafka_node_ready, cluster_secrets.kafka_admin_access(address)))
    for n in range(1, redis_masters * 2 + 1):
        address = f"127.0.0.1:{free_port()}"
        nodes[f"redis-{n}"] = _Node(
            f"redis-{n}", REPO_ROOT / "infra/redis/cluster-node.sh",
            {"REDIS_NODE": str(n), "REDIS_NODE_PORT": address.split(":")[1],
             "REDIS_NODE_BUS_PORT": str(free_port()),
             "REDIS_NODE_DATA_DIR": str(workdir / f"redis-{n}"),
             "MLSD_REDIS_PASSWORD": redis_password},
            workdir / f"redis-{n}.log", address,
            functools.partial(redis_node_ready, address, redis_password))
    servers = {name: node.launch() for name, node in nodes.items()}
    topology = ClusterTopology(nodes, servers, cluster_secrets,
                               [n for n in nodes if n.startswith("kafka-")],
                               [n for n in nodes if n.startswith("redis-")])
    try:
        _await_ready(list(servers.values()), list(nodes.values()), timeout_s)
        if topology.kafka_names:  # as make run-cluster: a user per service, limited by ACLs
            set_up_kafka_users(cluster_secrets, topology.kafka_bootstrap)
        if topology.redis_names:
            form_redis_cluster(topology.redis_addresses, 1, redis_password)
    except BaseException:
        topology.stop()
        raise
    return topology


@dataclass
class PostgresFormation:
    """The cluster topology's PostgreSQL: pg_auto_failover's monitor and two data nodes, a
    primary and its synchronous hot standby, started by infra/postgres/ha-node.sh (as
    `make run-cluster` starts them) on free loopback ports. `settings` names both data nodes:
    a client reaches whichever is primary."""

    nodes: dict[str, _Node]
    servers: dict[str, ServerProcess]
    settings: PostgresSettings
    data_root: Path
    data_names: list[str]

    def address(self, name: str) -> str:
        return self.nodes[name].address

    def roles(self) -> dict[str, str]:
        """node name -> primary, standby or down."""
        by_address = postgres_roles([self.address(n) for n in self.data_names],
                                    self.settings.postgres_db)
        return {name: by_address[self.address(name)] for name in self.data_names}

    def primary(self) -> str | None:
        return next((n for n, role in self.roles().items() if role == "primary"), None)

    def server_version(self) -> str:
        with psycopg.connect(self.settings.conninfo("harness"), autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"

    def failover_timing(self) -> dict[str, str]:
        """The monitor's health checks and timeouts, and each node's network partition timeout
        (after which a primary cut off from the monitor and the standby demotes itself)."""
        monitor = self.nodes["postgres-monitor"].address
        with psycopg.connect(superuser_conninfo(monitor, "pg_auto_failover"),
                             autocommit=True) as conn:
            rows = conn.execute("SELECT name, setting || coalesce(unit, '') FROM pg_settings"
                                " WHERE name LIKE 'pgautofailover.%'").fetchall()
        timing = {str(name): str(value) for name, value in rows}
        for name in self.data_names:
            folder = Path(self.nodes[name].env["PG_HA_DIR"]) / "autoctl"
            for config in folder.glob("config/pg_autoctl/**/pg_autoctl.cfg"):
                for line in config.read_text().splitlines():
                    if line.startswith("network_partition_timeout"):
                        timing[f"{name}.network_partition_timeout_s"] = line.split("=")[1].strip()
        return timing

    def kill(self, name: str) -> None:
        """kill -9 the node whole, as a lost machine: pg_autoctl and the PostgreSQL it runs (the
        postmaster and its backends), so nothing restarts it."""
        server = self.servers[name]
        pid_file = Path(self.nodes[name].env["PG_HA_DIR"]) / "data" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        os.killpg(server.process.pid, signal.SIGKILL)
        if postmaster is not None:
            with suppress(ProcessLookupError):  # if pg_autoctl gave it a group of its own
                os.killpg(postmaster, signal.SIGKILL)
            with suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)
        server.process.wait()

    def restart(self, name: str, timeout_s: float = 90.0) -> None:
        """The node started again: pg_autoctl asks the monitor and rejoins as the standby."""
        self.servers[name] = self.nodes[name].launch()
        _await_ready([self.servers[name]], [self.nodes[name]], timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """The data nodes, then the monitor (pg_autoctl stops its PostgreSQL fast on SIGTERM)."""
        for group in (self.data_names, ["postgres-monitor"]):
            running = [self.servers[n] for n in group
                       if n in self.servers and self.servers[n].process.poll() is None]
            for server in running:
                server.process.send_signal(signal.SIGTERM)
            for server in running:
                server.stop(timeout_s)


def start_postgres_formation(workdir: Path, timeout_s: float = 180.0) -> PostgresFormation:
    """The monitor first, then the data nodes one after the other (the first registered is the
    primary, the second its standby, from a base backup), then the services' role and the
    standby's synchronous streaming (form_postgres)."""
    # As root the nodes run as the postgres user, which must reach their folders (pytest's are
    # closed to other users): a folder of their own, as start_postgres.
    data_root = Path(tempfile.mkdtemp(prefix="mlsd-postgres-ha-"))
    data_root.chmod(0o711)
    settings = PostgresSettings()
    monitor_port = free_port()
    nodes: dict[str, _Node] = {}

    def node(name: str, role: str, port: int, dbname: str) -> _Node:
        folder = data_root / name
        folder.mkdir()
        folder.chmod(0o755)
        address = f"127.0.0.1:{port}"
        return _Node(name, REPO_ROOT / "infra/postgres/ha-node.sh",
                     {"PG_HA_ROLE": role, "PG_HA_NAME": name, "PG_HA_PORT": str(port),
                      "PG_HA_DIR": str(folder), "PG_HA_MONITOR_PORT": str(monitor_port),
                      "MLSD_POSTGRES_DB": settings.postgres_db},
                     workdir / f"{name}.log", address,
                     functools.partial(postgres_node_ready, address, dbname))

    nodes["postgres-monitor"] = node("postgres-monitor", "monitor", monitor_port,
                                     "pg_auto_failover")
    data_names = [f"postgres-{n}" for n in range(1, POSTGRES_DATA_NODES + 1)]
    for name in data_names:
        nodes[name] = node(name, "node", free_port(), settings.postgres_db)
    hosts = ",".join(nodes[name].address for name in data_names)
    formation = PostgresFormation(nodes, {}, PostgresSettings(postgres_hosts=hosts), data_root,
                                  data_names)
    try:
        for name in ["postgres-monitor", data_names[0]]:
            formation.servers[name] = nodes[name].launch()
            _await_ready([formation.servers[name]], [nodes[name]], timeout_s)
        for name in data_names[1:]:  # ready once its base backup is done: formed below
            formation.servers[name] = nodes[name].launch()
        form_postgres([nodes[name].address for name in data_names], settings.postgres_user,
                      settings.postgres_password.get_secret_value(), settings.postgres_db,
                      timeout_s)
    except BaseException:
        formation.stop()
        raise
    return formation
