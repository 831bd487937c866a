"""The model server's metrics, declared once: inference latency and counts per model version."""

from __future__ import annotations

from prometheus_client import Histogram

from services.common.models import ModelError, OnnxModel
from services.common.telemetry import LATENCY_BUCKETS_S, Metrics

# A small model answers in tens of microseconds: the platform's buckets start at 1 ms, so add
# finer ones below them (the budgets, 50 and 100 ms, stay bucket edges).
INFERENCE_BUCKETS_S = (0.00005, 0.0001, 0.00025, 0.0005, *LATENCY_BUCKETS_S)


class ServingMetrics:
    """modelserver_inference_* by model and version, and model loads (a CacheListener)."""

    def __init__(self, metrics: Metrics) -> None:
        self.inference_duration = Histogram(
            f"{metrics.service}_inference_duration_seconds",
            "ONNX Runtime time for one inference request (one batch), decoding excluded",
            ("model", "version"), registry=metrics.registry, buckets=INFERENCE_BUCKETS_S)
        self.requests = metrics.counter(
            "inference_requests", "Inference requests by outcome (ok, invalid, unavailable)",
            ("model", "version", "outcome"))
        self.rows = metrics.counter("inference_rows", "Rows (batch elements) inferred",
                                    ("model", "version"))
        self.loads = metrics.counter("model_loads", "Model version loads by outcome",
                                     ("model", "outcome"))
        self.load_duration = metrics.latency("model_load_duration_seconds",
                                             "Time to load and warm up one model version",
                                             ("model",))
        self.production_version = metrics.gauge("production_version",
                                                "The production version being served",
                                                ("model",))

    def loaded(self, model: OnnxModel, production: bool) -> None:
        self.loads.labels(model.name, "ok").inc()
        self.load_duration.labels(model.name).observe(model.load_seconds)
        if production:
            self.production_version.labels(model.name).set(model.version)

    def load_failed(self, name: str, version: int, error: ModelError) -> None:
        self.loads.labels(name, "failed").inc()
