"""What the local stack runs, where, and how to tell each part is healthy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.common.kafka_access import KafkaAccess
from services.common.probe import http_ready, kafka_ready, redis_ready
from services.common.records.pool import postgres_ready
from services.common.records.settings import PostgresSettings
from services.common.settings import PlatformSettings
from services.console.settings import ConsoleSettings
from services.devstack.cluster import (
    HOST,
    ClusterSecrets,
    ClusterSettings,
    kafka_node_ready,
    postgres_node_ready,
    redis_node_ready,
)
from services.experiments.settings import ExperimentsSettings
from services.fraud.settings import FraudSettings
from services.ingest.settings import IngestSettings
from services.lake.settings import LakeSettings
from services.modelserver.settings import ModelServerSettings
from services.recommender.settings import RecommenderSettings
from services.records.settings import RecordsSettings
from services.stream.settings import StreamSettings


@dataclass(frozen=True)
class Part:
    name: str  # the process in infra/supervisord.conf: [program:NAME], or NAME-N of numprocs
    address: str
    probe: Callable[[], bool]


def _http(name: str, host: str, port: int) -> Part:
    url = f"http://{host}:{port}"
    return Part(name, url, lambda: http_ready(f"{url}/readyz"))


def stack_parts(settings: PlatformSettings) -> list[Part]:
    """`make run`'s parts in start order: one Redis, PostgreSQL, one Kafka, the services."""
    postgres = PostgresSettings()
    return [
        Part("redis", settings.redis_url, lambda: redis_ready(settings.redis_url)),
        Part("postgres", postgres.address, lambda: postgres_ready(postgres)),
        Part("kafka", settings.kafka_bootstrap_servers,
             lambda: kafka_ready(settings.kafka_access())),
        *service_parts(),
    ]


def cluster_infra_parts(cluster: ClusterSettings, secrets: ClusterSecrets) -> list[Part]:
    """`make run-cluster`'s nodes (named as supervisord.cluster.conf names its processes): what
    must answer before the clusters are formed and the services started. PostgreSQL's data nodes
    come last: the standby answers once formed (form_postgres)."""
    monitor = f"{HOST}:{cluster.postgres_monitor_port}"
    return [
        *(_redis_node(n, address, secrets.redis_password)
          for n, address in enumerate(cluster.redis_addresses(), start=1)),
        Part("postgres-monitor", monitor,
             lambda: postgres_node_ready(monitor, "pg_auto_failover")),
        *(_kafka_node(n, secrets.kafka_admin_access(address))
          for n, address in enumerate(cluster.kafka_addresses(), start=1)),
        *(_postgres_node(n, address)
          for n, address in enumerate(cluster.postgres_addresses(), start=1)),
    ]


def _postgres_node(n: int, address: str) -> Part:
    return Part(f"postgres-{n}", address,
                lambda: postgres_node_ready(address, PostgresSettings().postgres_db))


def _redis_node(n: int, address: str, password: str) -> Part:
    return Part(f"redis-{n}", address, lambda: redis_node_ready(address, password))


def _kafka_node(n: int, access: KafkaAccess) -> Part:
    return Part(f"kafka-{n}", access.bootstrap_servers, lambda: kafka_node_ready(access))


def service_parts() -> list[Part]:
    """The services in start order, in both topologies. A new service appends its Part (probing
    its /readyz) here."""
    model_server = ModelServerSettings()
    stream = StreamSettings()
    lake = LakeSettings()
    ingest = IngestSettings()
    fraud = FraudSettings()
    recommender = RecommenderSettings()
    experiments = ExperimentsSettings()
    console = ConsoleSettings()
    records = RecordsSettings()
    return [
        _http("model-server", model_server.model_server_host, model_server.model_server_port),
        _http("records", records.records_host, records.records_port),
        _http("ingest", ingest.ingest_host, ingest.ingest_port),
        _http("stream", stream.stream_host, stream.stream_port),
        _http("lake", lake.lake_host, lake.lake_port),
        _http("experiments", experiments.experiments_host, experiments.experiments_port),
        _http("fraud", fraud.fraud_host, fraud.fraud_port),
        *(_http(f"fraud-stream-{port}", fraud.fraud_host, port)
          for port in fraud.fraud_stream_ports()),
        _http("recommender", recommender.recommender_host, recommender.recommender_port),
        _http("console", console.console_host, console.console_port),
    ]


def supervisor_environment(fraud: FraudSettings) -> dict[str, str]:
    """What infra/supervisord.conf reads from its environment: how many fraud scorers to run,
    and the first one's port (set here from the settings, so their defaults are the defaults);
    and that the services start with the infrastructure (the cluster topology holds them back)."""
    return {"MLSD_SERVICES_AUTOSTART": "true",
            "MLSD_FRAUD_STREAM_PROCESSES": str(fraud.fraud_stream_processes),
            "MLSD_FRAUD_STREAM_METRICS_PORT": str(fraud.fraud_stream_metrics_port)}
