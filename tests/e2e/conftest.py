"""End-to-end fixtures: a small trained model repository, and real service processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import platform_topics
from services.common.probe import process_ready
from services.common.processes import stop_process
from services.trainer.pipeline import SCALES, TrainerSettings, run_pipeline
from tests.harness import REPO_ROOT, ClusterTopology, ServerProcess, free_port


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make models` on the small world: the ranker's item embeddings feed the watch concern."""
    root = Path(tmp_path_factory.mktemp("e2e-models"))
    settings = TrainerSettings(model_repository=root / "repo", world_dir=root / "worlds",
                               report_dir=root / "reports")
    run_pipeline(settings, SCALES["small"], lambda _: None)
    return settings.model_repository


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout_s: float = 40.0) -> int:
        return stop_process(self.process, timeout_s)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


StartService = Callable[..., ServiceProcess]

PORT_VARIABLES = {"stream": "MLSD_STREAM_PORT", "ingest": "MLSD_INGEST_PORT",
                  "fraud": "MLSD_FRAUD_PORT", "fraud.stream": "MLSD_FRAUD_STREAM_METRICS_PORT",
                  "recommender": "MLSD_RECOMMENDER_PORT", "modelserver": "MLSD_MODEL_SERVER_PORT",
                  "experiments": "MLSD_EXPERIMENTS_PORT", "console": "MLSD_CONSOLE_PORT",
                  "records": "MLSD_RECORDS_PORT", "lake": "MLSD_LAKE_PORT"}


def launch(module: str, log: Path, redis_url: str, kafka: str, model_repository: Path,
           port: int | None = None, **env: str) -> ServiceProcess:
    """`python -m services.<module>` on the harness's servers, ready (or AssertionError)."""
    port = port or free_port()
    environment = {
        **os.environ, "MLSD_REDIS_URL": redis_url, "MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "MLSD_MODEL_REPOSITORY": str(model_repository), PORT_VARIABLES[module]: str(port),
        "MLSD_STREAM_COMMIT_INTERVAL_S": "0.2",
        # Lists in the ranker's order: the exploration slice shuffles a random 5 % of requests,
        # which a test comparing orders would see now and then (its own tests set it).
        "MLSD_RECOMMENDER_EXPLORE_SHARE": "0", **env,
    }
    if module == "ingest":
        # beside the log, not in the repository's .state/: a test's spool dies with the test
        environment.setdefault("MLSD_INGEST_SPOOL_PATH", str(log.with_suffix(".spool.sqlite3")))
    process = subprocess.Popen([sys.executable, "-m", f"services.{module}"], cwd=REPO_ROOT,
                               env=environment, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    service = ServiceProcess(module, process, f"http://127.0.0.1:{port}", log)
    if not process_ready(f"{service.url}/readyz", process, 90):
        service.stop()
        raise AssertionError(f"{module} did not get ready:\n{service.log_tail()}")
    return service


@pytest.fixture
def start_service(redis_server: ServerProcess, kafka_server: ServerProcess, tmp_path: Path,
                  model_repository: Path) -> Iterator[object]:
    """start_service("stream", MLSD_STREAM_CONCERNS="watch-features") -> a ready ServiceProcess."""
    started: list[ServiceProcess] = []

    def start(module: str, **env: str) -> ServiceProcess:
        service = launch(module, tmp_path / f"{module}-{len(started)}.log", redis_server.address,
                         kafka_server.address, model_repository, **env)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="module")
def cluster_topics(cluster_topology: ClusterTopology) -> None:
    ensure_topics(cluster_topology.kafka_admin_access, platform_topics(3, replication_factor=3))


@pytest.fixture
def on_cluster(cluster_topology: ClusterTopology, tmp_path: Path, model_repository: Path,
               cluster_topics: None) -> Iterator[StartService]:
    """on_cluster("stream", ...) -> a ready service whose settings name the cluster topology."""
    started: list[ServiceProcess] = []

    def start(module: str, **env: str) -> ServiceProcess:
        service = launch(module, tmp_path / f"{module}-{len(started)}.log",
                         cluster_topology.redis_url, cluster_topology.kafka_bootstrap,
                         model_repository, **cluster_topology.service_environment(), **env)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def cluster_client(cluster_topology: ClusterTopology) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(cluster_topology.redis_url,
                                   password=cluster_topology.redis_password)
    yield client
    client.close()
