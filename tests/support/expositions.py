"""The /metrics text of every process of the design, from apps built but never started.

Each app comes from its own factory, `create_app(settings)`, and is read with a TestClient that
is not entered, so the lifespan never runs: no Redis, Kafka or trained model is needed, and every
metric a service declares exists by then (metrics are declared in the factory, CONTRIBUTING.md
convention 6).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from services.common.telemetry import Metrics
from services.experiments.app import create_app as create_experiments
from services.experiments.settings import ExperimentsSettings
from services.fraud.app import create_app as create_fraud
from services.fraud.settings import FraudSettings
from services.fraud.stream import create_stream_app as create_fraud_stream
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.lake.app import create_app as create_lake
from services.lake.settings import LakeSettings
from services.modelserver.app import create_app as create_modelserver
from services.modelserver.settings import ModelServerSettings
from services.recommender.app import create_app as create_recommender
from services.recommender.settings import RecommenderSettings
from services.records.app import create_app as create_records
from services.records.settings import RecordsSettings
from services.stream.app import create_app as create_stream
from services.stream.settings import StreamSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS_FILE = REPO_ROOT / "config" / "experiments" / "experiments.toml"

# Prometheus job (infra/prometheus/prometheus.yml) -> the app that job scrapes, given an empty
# model repository. The fraud stream scorer runs as service "fraud_stream" (its __main__).
APPS: dict[str, Callable[[Path], FastAPI]] = {
    "ingest": lambda _: create_ingest(IngestSettings()),
    "model-server": lambda models: create_modelserver(
        ModelServerSettings(model_repository=models)),
    "experiments": lambda _: create_experiments(
        ExperimentsSettings(experiments_file=EXPERIMENTS_FILE)),
    "recommender": lambda models: create_recommender(
        RecommenderSettings(model_repository=models)),
    "fraud": lambda models: create_fraud(FraudSettings(model_repository=models)),
    "fraud-stream": lambda models: create_fraud_stream(
        FraudSettings(service_name="fraud_stream", model_repository=models)),
    "stream": lambda models: create_stream(StreamSettings(model_repository=models)),
    "records": lambda models: create_records(RecordsSettings(model_repository=models)),
    "lake": lambda _: create_lake(LakeSettings()),
}


def give_every_labelled_metric_a_child(registry: CollectorRegistry) -> None:
    """A labelled metric without a child exposes no sample; give it one, so that its sample
    names (`_total`, `_bucket`) are linted and can be looked up. prometheus_client offers no
    public list of a registry's collectors: hence the private attributes (version pinned)."""
    for collector in list(registry._collector_to_names):
        if (isinstance(collector, MetricWrapperBase) and collector._labelnames
                and not collector._metrics):
            collector.labels(*("example" for _ in collector._labelnames))


def exposition(job: str, models: Path) -> tuple[Metrics, str]:
    """The service's metrics and its /metrics text, every metric with at least one sample."""
    app = APPS[job](models)
    metrics: Metrics = app.state.metrics
    client = TestClient(app)  # not entered: the lifespan (Redis, Kafka, models) never runs
    client.get("/healthz")  # the request-latency histogram gets its first child
    give_every_labelled_metric_a_child(metrics.registry)
    return metrics, client.get("/metrics").text


def sample_labels(text: str) -> dict[str, set[str]]:
    """Each sample name in an exposition (`x_total`, `x_bucket`, ...) -> its label names."""
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels
