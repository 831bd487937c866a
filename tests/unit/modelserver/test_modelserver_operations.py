"""Operating the model server: per-model metrics, readiness that tells the truth, clean logs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.common.models import ModelRepository
from services.common.models.testing import logistic_model
from services.modelserver.app import create_app
from services.modelserver.settings import ModelServerSettings

BODY = {"inputs": [{"name": "features", "shape": [3, 2], "datatype": "FP32",
                    "data": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}]}


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    repository = ModelRepository(tmp_path / "models")
    repository.register("fraud", logistic_model([0.1, 0.2]), feature_names=("a", "b"),
                        metrics={}, training_data_hash="h", description="d")
    return repository


def test_inference_latency_requests_and_rows_are_counted_per_model_version(
        repository: ModelRepository) -> None:
    with TestClient(create_app(ModelServerSettings(model_repository=repository.root))) as client:
        client.post("/v2/models/fraud/infer", json=BODY)
        client.post("/v2/models/fraud/infer", json=BODY)
        client.post("/v2/models/fraud/infer", json={**BODY, "outputs": [{"name": "nope"}]})
        text = client.get("/metrics").text

    assert 'modelserver_inference_duration_seconds_count{model="fraud",version="1"} 2.0' in text
    assert 'modelserver_inference_duration_seconds_bucket{le="0.0001",model="fraud"' in text
    assert ('modelserver_inference_requests_total{model="fraud",outcome="ok",version="1"} 2.0'
            in text)
    assert ('modelserver_inference_requests_total{model="fraud",outcome="invalid",version="1"}'
            ' 1.0') in text
    assert 'modelserver_inference_rows_total{model="fraud",version="1"} 6.0' in text
    assert 'modelserver_model_loads_total{model="fraud",outcome="ok"} 1.0' in text
    assert 'modelserver_production_version{model="fraud"} 1.0' in text


def test_requests_for_unknown_models_do_not_create_metric_labels(
        repository: ModelRepository) -> None:
    with TestClient(create_app(ModelServerSettings(model_repository=repository.root))) as client:
        for name in ("a", "b", "c"):
            client.post(f"/v2/models/{name}/infer", json=BODY)
        text = client.get("/metrics").text
    assert 'model="a"' not in text


def test_a_production_version_that_cannot_load_makes_the_server_not_ready(
        repository: ModelRepository) -> None:
    repository.model_path("fraud", 1).write_bytes(b"truncated")
    with TestClient(create_app(ModelServerSettings(model_repository=repository.root))) as client:
        readyz = client.get("/readyz")
        protocol_ready = client.get("/v2/health/ready")
        model_ready = client.get("/v2/models/fraud/ready")
        infer = client.post("/v2/models/fraud/infer", json=BODY)
        text = client.get("/metrics").text

    assert readyz.status_code == 503 and readyz.json()["checks"] == {"models": "not ready"}
    # The protocol says "not ready" with a 4xx; inference on it is a 503 (try again later).
    assert protocol_ready.status_code == 400 and "error" in protocol_ready.json()
    assert model_ready.status_code == 400
    assert infer.status_code == 503 and "cannot load fraud v1" in infer.json()["error"]
    assert 'modelserver_model_loads_total{model="fraud",outcome="failed"} 1.0' in text


def test_an_empty_repository_is_ready_with_nothing_to_serve(tmp_path: Path) -> None:
    with TestClient(create_app(ModelServerSettings(model_repository=tmp_path))) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/v2/models/fraud").status_code == 404


def test_a_model_registered_while_the_server_runs_is_served_after_the_next_poll(
        tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path)
    settings = ModelServerSettings(model_repository=tmp_path, model_reload_interval_s=0.05)
    with TestClient(create_app(settings)) as client:
        repository.register("ranker", logistic_model([1.0, 1.0]), feature_names=("a", "b"),
                            metrics={}, training_data_hash="h", description="d")
        response = client.post("/v2/models/ranker/infer", json=BODY)
    assert response.status_code == 200
    assert response.json()["model_version"] == "1"
