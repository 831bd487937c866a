"""Promote and rollback over HTTP: Bearer token required, off without one, no request dropped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from services.common.models import ModelRepository
from services.common.models.testing import logistic_model
from services.modelserver.app import create_app
from services.modelserver.settings import ModelServerSettings

TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"inputs": [{"name": "features", "shape": [2, 2], "datatype": "FP32",
                    "data": [1.0, 1.0, 1.0, 1.0]}]}


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    repository = ModelRepository(tmp_path / "models")
    for bias in (-5.0, 5.0, 0.0):
        repository.register("fraud", logistic_model([0.0, 0.0], bias), feature_names=("a", "b"),
                            metrics={}, training_data_hash="h", description=f"bias {bias}")
    return repository


def serve(repository: ModelRepository, token: str | None = TOKEN,
          reload_interval_s: float = 60.0) -> TestClient:
    settings = ModelServerSettings(
        model_repository=repository.root, model_reload_interval_s=reload_interval_s,
        model_server_admin_token=None if token is None else SecretStr(token))
    return TestClient(create_app(settings))


@pytest.fixture
def client(repository: ModelRepository) -> Iterator[TestClient]:
    with serve(repository) as client:
        yield client


def served_version(client: TestClient) -> str:
    response = client.post("/v2/models/fraud/infer", json=BODY)
    assert response.status_code == 200, response.text
    return str(response.json()["model_version"])


def test_admin_routes_answer_403_when_no_token_is_configured(
        repository: ModelRepository) -> None:
    with serve(repository, token=None) as client:
        response = client.post("/v1/admin/models/fraud/promote", json={"version": 2},
                               headers={"Authorization": "Bearer anything"})
        assert response.status_code == 403
        assert "MLSD_MODEL_SERVER_ADMIN_TOKEN" in response.json()["error"]
        assert served_version(client) == "1"  # inference does not need admin


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": TOKEN}])
def test_admin_routes_answer_401_without_the_right_bearer_token(
        client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/v1/admin/models/fraud/rollback", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/admin/models", headers=headers).status_code == 401


def test_promote_swaps_the_served_version_before_it_answers(client: TestClient) -> None:
    response = client.post("/v1/admin/models/fraud/promote", json={"version": 2}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert (body["production_version"], body["serving_version"]) == (2, 2)
    assert served_version(client) == "2"


def test_rollback_serves_the_previous_production_version(client: TestClient) -> None:
    client.post("/v1/admin/models/fraud/promote", json={"version": 3}, headers=AUTH)
    response = client.post("/v1/admin/models/fraud/rollback", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["serving_version"] == 1
    assert [h["action"] for h in response.json()["history"]] == ["promote", "promote",
                                                                 "rollback"]
    assert served_version(client) == "1"


def test_admin_errors_say_what_is_wrong(client: TestClient) -> None:
    unknown_version = client.post("/v1/admin/models/fraud/promote", json={"version": 9},
                                  headers=AUTH)
    unknown_model = client.post("/v1/admin/models/ranker/rollback", headers=AUTH)
    nothing_to_undo = client.post("/v1/admin/models/fraud/rollback", headers=AUTH)
    not_a_version = client.post("/v1/admin/models/fraud/promote", json={"version": 0},
                                headers=AUTH)
    assert (unknown_version.status_code, unknown_version.json()) == (
        404, {"error": "model 'fraud' has no version 9"})
    assert unknown_model.status_code == 404
    assert nothing_to_undo.status_code == 409
    assert not_a_version.status_code == 422
    assert not_a_version.json()["errors"][0]["field"] == "body.version"


def test_the_admin_list_shows_versions_pointer_and_what_is_served(client: TestClient) -> None:
    body = client.get("/v1/admin/models", headers=AUTH).json()
    assert body["models"] == [{"name": "fraud", "versions": [1, 2, 3], "production_version": 1,
                               "serving_version": 1, "history": body["models"][0]["history"]}]


def test_requests_running_through_a_promotion_all_succeed_and_see_the_new_version(
        client: TestClient) -> None:
    seen: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def infer_until_stopped() -> None:
        while not stop.is_set():
            response = client.post("/v2/models/fraud/infer", json=BODY)
            if response.status_code != 200:
                failures.append(response.text)
                continue
            body = response.json()
            labels = next(o["data"] for o in body["outputs"] if o["name"] == "label")
            expected = [1, 1] if body["model_version"] == "2" else [0, 0]
            if labels != expected:
                failures.append(f"v{body['model_version']} answered {labels}")
            seen.append(body["model_version"])

    workers = [threading.Thread(target=infer_until_stopped) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(0.2)
    promoted = client.post("/v1/admin/models/fraud/promote", json={"version": 2}, headers=AUTH)
    time.sleep(0.2)
    stop.set()
    for worker in workers:
        worker.join()

    assert promoted.status_code == 200
    assert failures == []
    assert seen[0] == "1" and seen[-1] == "2"


def test_a_promotion_made_outside_the_server_is_picked_up_by_polling(
        repository: ModelRepository) -> None:
    with serve(repository, reload_interval_s=0.05) as client:
        assert served_version(client) == "1"
        repository.promote("fraud", 3)  # what `python -m services.common.models promote` does
        deadline = time.monotonic() + 5
        while served_version(client) != "3" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert served_version(client) == "3"


def test_a_weak_admin_token_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="at least 24 characters"):
        ModelServerSettings(environment="production", redis_url="redis://redis:6379/0",
                            kafka_bootstrap_servers="kafka:9092",
                            redis_password=SecretStr("r" * 24),
                            kafka_security_protocol="SASL_SSL", kafka_username="mlsd",
                            kafka_password=SecretStr("k" * 24),
                            model_server_admin_token=SecretStr("short"))


def test_server_settings_come_from_mlsd_environment_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_MODEL_SERVER_HOST", "0.0.0.0")
    monkeypatch.setenv("MLSD_MODEL_SERVER_PORT", "9010")
    monkeypatch.setenv("MLSD_MODEL_SERVER_ADMIN_TOKEN", TOKEN)
    settings = ModelServerSettings()
    assert (settings.model_server_host, settings.model_server_port) == ("0.0.0.0", 9010)
    assert settings.model_server_admin_token is not None
    assert settings.model_server_admin_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)
    assert settings.service_name == "modelserver"
    assert np.isclose(settings.model_reload_interval_s, 1.0)
