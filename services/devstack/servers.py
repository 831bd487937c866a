"""Real redis-server, Kafka and PostgreSQL processes on free loopback ports, for tests and
benchmarks.

Each caller gets its own servers in a folder it chooses, so tests and benchmarks never touch the
data of a running `make run` stack. A server that cannot start raises ServerDidNotStart with
the end of its log: the caller fails, it never skips.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from services.common.probe import kafka_ready, redis_ready
from services.common.records.pool import postgres_ready
from services.common.records.settings import PostgresSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServerDidNotStart(RuntimeError):
    """A real server the tests need could not be started: the run must fail, not skip."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
