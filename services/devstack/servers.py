"""Real redis-server, Kafka and PostgreSQL processes on free loopback ports, for tests and
benchmarks.

Each caller gets its own servers in a folder it chooses, so tests and benchmarks never touch the
data of a running `make run` stack. A server that cannot start raises ServerDidNotStart with
the end of its log: the caller fails, it never skips.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from services.common.bus.acls import grant, service_acls
from services.common.kafka_access import KafkaAccess
from services.common.loopback import free_port
from services.common.probe import kafka_ready, redis_ready
from services.common.records.pool import postgres_ready
from services.common.records.settings import PostgresSettings
from services.devstack.cluster import (
    KAFKA_USERNAME,
    ClusterSecrets,
    form_redis_cluster,
    kafka_cluster_id,
    kafka_node_ready,
    redis_node_ready,
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
        if self.process.poll() is not None:
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

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
    """3 KRaft Kafka nodes authenticating every client (SASL/SCRAM) and a 3-master, 3-replica
    Redis Cluster with a password, on free loopback ports: `make run-cluster`'s topology,
    started by the same node scripts."""

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
        """The brokers and the services' credentials."""
        return self.secrets.kafka_access(self.kafka_bootstrap)

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
        """The MLSD_* settings that point a service at this topology."""
        access = self.kafka_access
        return {"MLSD_REDIS_URL": self.redis_url, "MLSD_REDIS_CLUSTER": "true",
                "MLSD_REDIS_PASSWORD": self.redis_password,
                "MLSD_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
                "MLSD_KAFKA_REPLICATION_FACTOR": "3",
                "MLSD_KAFKA_SECURITY_PROTOCOL": access.security_protocol,
                "MLSD_KAFKA_SASL_MECHANISM": access.sasl_mechanism,
                "MLSD_KAFKA_USERNAME": access.username or "",
                "MLSD_KAFKA_PASSWORD": self.secrets.kafka_password}

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
                           timeout_s: float = 120.0,
                           kafka_env: dict[str, str] | None = None) -> ClusterTopology:
    """Every node launched at once (a KRaft node is ready only once a quorum of voters runs),
    then the Redis nodes formed into one cluster by `redis-cli --cluster create` (none when
    redis_masters is 0). The Kafka passwords (the services' and the nodes' own) are drawn for
    this topology. The Kafka nodes use the checkout's class data sharing archive, made first
    when missing (services/devstack/kafka_cds.py), as `make run-cluster`'s do; kafka_env is
    added to each Kafka node's environment (benchmarks/broker_start.py's JVM settings)."""
    if kafka_nodes:
        ensure_archive()
    kafka_ports = [(free_port(), free_port()) for _ in range(kafka_nodes)]
    voters = ",".join(f"{n}@127.0.0.1:{c}" for n, (_, c) in enumerate(kafka_ports, start=1))
    cluster_secrets = ClusterSecrets(redis_password, kafka_cluster_id(),
                                     secrets.token_urlsafe(24), secrets.token_urlsafe(24))
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
             "KAFKA_BROKER_PASSWORD": cluster_secrets.kafka_broker_password,
             "MLSD_KAFKA_USERNAME": KAFKA_USERNAME,
             "MLSD_KAFKA_PASSWORD": cluster_secrets.kafka_password, **(kafka_env or {})},
            workdir / f"kafka-{n}.log", address,
            functools.partial(kafka_node_ready, cluster_secrets.kafka_access(address)))
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
        if topology.kafka_names:  # as make run-cluster: the services' user limited by ACLs
            grant(topology.kafka_admin_access, service_acls(KAFKA_USERNAME))
        if topology.redis_names:
            form_redis_cluster(topology.redis_addresses, 1, redis_password)
    except BaseException:
        topology.stop()
        raise
    return topology
