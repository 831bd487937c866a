"""The prediction client: one interface, in-process or over HTTP, failures as domain errors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.common.models import (
    FeatureMismatch,
    InvalidInput,
    LocalModelClient,
    ModelClient,
    ModelNotFound,
    ModelRepository,
    ModelSettings,
    ModelUnavailable,
    RemoteModelClient,
    VersionNotFound,
    create_model_client,
)
from services.common.models.testing import expected_probability, logistic_model
from services.modelserver.app import create_app
from services.modelserver.settings import ModelServerSettings

FEATURES = ("amount", "velocity", "distance")
WEIGHTS = [0.3, -0.2, 0.1]
ROWS = np.random.default_rng(5).normal(size=(8, 3)).astype(np.float32)


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    repository = ModelRepository(tmp_path / "models")
    for bias in (0.0, 1.0):
        repository.register("fraud", logistic_model(WEIGHTS, bias), feature_names=FEATURES,
                            metrics={}, training_data_hash="h", description=f"bias {bias}")
    return repository


def forward_to(client: TestClient, calls: list[str] | None = None) -> httpx.MockTransport:
    """An httpx transport that hands each request to the in-process app."""

    def handle(request: httpx.Request) -> httpx.Response:
        if calls is not None:
            calls.append(f"{request.method} {request.url.path}")
        answer = client.request(request.method, request.url.path, content=request.content,
                                headers=dict(request.headers))
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return httpx.MockTransport(handle)


@pytest.fixture
def server(repository: ModelRepository) -> Iterator[TestClient]:
    app = create_app(ModelServerSettings(model_repository=repository.root))
    with TestClient(app) as client:
        yield client


MakeClient = Callable[..., ModelClient]


@pytest.fixture(params=["local", "remote-binary", "remote-json"])
def make_client(request: pytest.FixtureRequest, repository: ModelRepository,
                server: TestClient) -> Iterator[MakeClient]:
    clients: list[ModelClient] = []

    def make(**kwargs: object) -> ModelClient:
        client: ModelClient
        if request.param == "local":
            client = LocalModelClient(repository, reload_interval_s=None, **kwargs)  # type: ignore[arg-type]
        else:
            client = RemoteModelClient("http://modelserver", transport=forward_to(server),
                                       binary=request.param == "remote-binary",
                                       **kwargs)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_every_backend_answers_with_the_production_version_and_its_outputs(
        make_client: MakeClient) -> None:
    prediction = make_client().predict("fraud", ROWS)
    assert prediction.model_name == "fraud"
    assert prediction.model_version == 1
    np.testing.assert_allclose(prediction.outputs["probabilities"][:, 1],
                               expected_probability(ROWS, WEIGHTS), rtol=1e-5)
    assert prediction.outputs["label"].dtype == np.int64


def test_every_backend_answers_from_an_explicit_version(make_client: MakeClient) -> None:
    prediction = make_client().predict("fraud", ROWS, version=2)
    assert prediction.model_version == 2
    np.testing.assert_allclose(prediction.outputs["probabilities"][:, 1],
                               expected_probability(ROWS, WEIGHTS, 1.0), rtol=1e-5)


def test_every_backend_reports_an_unknown_model_or_version_as_not_found(
        make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(ModelNotFound):
        client.predict("ranker", ROWS)
    with pytest.raises(VersionNotFound):
        client.predict("fraud", ROWS, version=7)


def test_every_backend_reports_the_wrong_number_of_features_as_invalid_input(
        make_client: MakeClient) -> None:
    with pytest.raises(InvalidInput, match="shape"):
        make_client().predict("fraud", np.zeros((2, 5), np.float32))


def test_rows_must_be_a_matrix(make_client: MakeClient) -> None:
    with pytest.raises(InvalidInput, match="2-D"):
        make_client().predict("fraud", np.zeros(3, np.float32))


def test_every_backend_refuses_a_model_trained_on_other_features_than_the_catalogs(
        make_client: MakeClient) -> None:
    client = make_client(expected_features={"fraud": ("velocity", "amount", "distance")})
    with pytest.raises(FeatureMismatch, match="the same names in another order"):
        client.predict("fraud", ROWS)
    assert isinstance(FeatureMismatch("x"), ModelUnavailable)  # so services degrade on it


def test_every_backend_is_ready_for_a_served_model_and_not_for_an_unknown_one(
        make_client: MakeClient) -> None:
    client = make_client()
    assert client.ready("fraud")
    assert not client.ready("ranker")


def test_the_remote_client_checks_each_answering_version_once(
        repository: ModelRepository, server: TestClient) -> None:
    calls: list[str] = []
    client = RemoteModelClient("http://modelserver", transport=forward_to(server, calls),
                               expected_features={"fraud": FEATURES})
    for _ in range(3):
        client.predict("fraud", ROWS)
    assert calls.count("GET /v2/models/fraud/versions/1") == 1
    assert calls.count("GET /v2/models/fraud") == 1  # the input tensor's name, read once
    assert calls.count("POST /v2/models/fraud/infer") == 3


def failing(error: Exception) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        raise error

    return httpx.MockTransport(handle)


def answering(status: int, body: bytes, headers: dict[str, str] | None = None
              ) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # model metadata: one input called features
            return httpx.Response(200, json={"inputs": [{"name": "features"}]})
        return httpx.Response(status, content=body, headers=headers)

    return httpx.MockTransport(handle)


@pytest.mark.parametrize(("transport", "message"), [
    (failing(httpx.ConnectError("connection refused")), "unreachable"),
    (failing(httpx.ReadTimeout("slow")), "did not answer .* within 100 ms"),
    (answering(500, b"Internal Server Error"), "answered 500"),
    (answering(503, b'{"error": "fraud has no production version"}'), "no production version"),
    (answering(200, b"not json"), "malformed body"),
    (answering(200, b'{"model_name": "fraud", "model_version": "one", "outputs": []}'),
     "malformed body"),
])
def test_the_remote_client_turns_server_trouble_into_model_unavailable(
        transport: httpx.MockTransport, message: str) -> None:
    client = RemoteModelClient("http://modelserver", timeout_s=0.1, transport=transport)
    with pytest.raises(ModelUnavailable, match=message):
        client.predict("fraud", ROWS)


def test_the_remote_client_is_not_ready_while_the_server_is_down() -> None:
    client = RemoteModelClient("http://modelserver",
                               transport=failing(httpx.ConnectError("connection refused")))
    assert not client.ready("fraud")


def test_the_local_client_follows_a_promotion_without_a_restart(
        repository: ModelRepository) -> None:
    with LocalModelClient(repository, reload_interval_s=0.05) as client:
        assert client.predict("fraud", ROWS).model_version == 1
        repository.promote("fraud", 2)
        deadline = time.monotonic() + 5
        while client.predict("fraud", ROWS).model_version != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.predict("fraud", ROWS).model_version == 2


def test_settings_choose_the_backend(tmp_path: Path) -> None:
    local = create_model_client(ModelSettings(model_repository=tmp_path))
    remote = create_model_client(ModelSettings(model_backend="remote",
                                               model_server_url="http://modelserver:8010"))
    assert isinstance(local, LocalModelClient)
    assert isinstance(remote, RemoteModelClient)
    local.close()
    remote.close()


def test_settings_are_read_from_mlsd_environment_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_MODEL_BACKEND", "remote")
    monkeypatch.setenv("MLSD_MODEL_SERVER_URL", "http://models.internal:8010")
    monkeypatch.setenv("MLSD_MODEL_TIMEOUT_S", "0.02")
    monkeypatch.setenv("MLSD_MODEL_REPOSITORY", "/srv/models")
    settings = ModelSettings()
    assert settings.model_backend == "remote"
    assert settings.model_server_url == "http://models.internal:8010"
    assert settings.model_timeout_s == 0.02
    assert settings.model_repository == Path("/srv/models")


def test_production_refuses_a_remote_backend_on_loopback() -> None:
    with pytest.raises(ValidationError, match="MLSD_MODEL_SERVER_URL must name a real host"):
        ModelSettings(environment="production", redis_url="redis://redis:6379/0",
                      kafka_bootstrap_servers="kafka:9092", model_backend="remote",
                      redis_password="r" * 24, kafka_security_protocol="SASL_SSL",
                      kafka_username="mlsd", kafka_password="k" * 24)
