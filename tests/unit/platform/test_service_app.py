"""The shared service shell: probes, /metrics, request latency by route, clear 422s, JSON logs."""

import gc
import json
import logging

import anyio.to_thread
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from threadpoolctl import threadpool_info, threadpool_limits  # type: ignore[import-untyped]

from services.common.http import create_service_app
from services.common.telemetry import LATENCY_BUCKETS_S, Metrics, configure_logging


class ScoreRequest(BaseModel):
    amount: float = Field(gt=0)


def make_app(dependency_up: bool = True) -> tuple[FastAPI, Metrics]:
    metrics = Metrics("demo")
    app = create_service_app(title="demo", metrics=metrics,
                             readiness={"redis": lambda: dependency_up})

    @app.get("/v1/users/{user_id}")
    def user(user_id: str) -> dict[str, str]:
        return {"user_id": user_id}

    @app.post("/v1/score")
    def score(request: ScoreRequest) -> dict[str, float]:
        return {"amount": request.amount}

    return app, metrics


def test_healthz_answers_while_the_process_runs() -> None:
    app, _ = make_app(dependency_up=False)
    assert TestClient(app).get("/healthz").json() == {"status": "ok"}


def test_readyz_is_503_and_names_the_dependency_that_is_down() -> None:
    app, _ = make_app(dependency_up=False)
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"redis": "not ready"}


def test_readyz_treats_a_crashing_check_as_not_ready() -> None:
    metrics = Metrics("demo")

    def broken() -> bool:
        raise ConnectionError("refused")

    app = create_service_app(title="demo", metrics=metrics, readiness={"redis": broken})
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    assert "ConnectionError: refused" in response.json()["checks"]["redis"]


def test_request_latency_is_recorded_by_route_template_not_by_raw_path() -> None:
    app, metrics = make_app()
    client = TestClient(app)
    for user in ("u1", "u2", "u3"):
        client.get(f"/v1/users/{user}")
    count = metrics.registry.get_sample_value(
        "demo_http_request_duration_seconds_count",
        {"method": "GET", "route": "/v1/users/{user_id}", "status": "200"})
    assert count == 3


def test_metrics_endpoint_exposes_the_budget_buckets() -> None:
    app, _ = make_app()
    client = TestClient(app)
    client.get("/v1/users/u1")
    text = client.get("/metrics").text
    assert 'demo_http_request_duration_seconds_bucket{le="0.05"' in text
    assert 'demo_http_request_duration_seconds_bucket{le="0.1"' in text
    assert {0.005, 0.01, 0.025, 0.05, 0.1, 0.25} <= set(LATENCY_BUCKETS_S)


def test_an_invalid_body_gets_a_422_that_names_the_field() -> None:
    app, _ = make_app()
    response = TestClient(app).post("/v1/score", json={"amount": -3})
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["field"] == "body.amount"
    assert "body.amount: Input should be greater than 0" in body["detail"]


def test_logs_are_one_json_object_per_line_with_the_service_name(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("fraud", "INFO", json_logs=True)
    logging.getLogger("services.fraud").info("decided", extra={"action": "approve"})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["service"] == "fraud"
    assert record["message"] == "decided"
    assert record["action"] == "approve"
    assert record["level"] == "INFO"


def test_routes_of_included_routers_are_labelled_by_their_template() -> None:
    app, metrics = make_app()
    TestClient(app).get("/healthz")
    count = metrics.registry.get_sample_value(
        "demo_http_request_duration_seconds_count",
        {"method": "GET", "route": "/healthz", "status": "200"})
    assert count == 1


def test_threads_caps_how_many_blocking_handlers_run_at_once() -> None:
    def limit_app(threads: int | None) -> FastAPI:
        app = create_service_app(title="t", metrics=Metrics(f"threads_{threads or 0}"),
                                 readiness={}, threads=threads)

        @app.get("/limit")
        async def limit() -> int:
            return int(anyio.to_thread.current_default_thread_limiter().total_tokens)
        return app

    with TestClient(limit_app(4)) as client:
        assert client.get("/limit").json() == 4
    with TestClient(limit_app(None)) as client:
        assert client.get("/limit").json() == 40      # anyio's default, untouched


def test_blas_threads_hold_numpy_to_the_setting_once_started() -> None:
    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    assert np.ones((2, 2)) @ np.ones(2) is not None  # numpy (and its BLAS) loaded
    assert blas_threads(), "numpy ships a BLAS threadpoolctl can see"
    before = max(blas_threads())
    try:
        for wanted in (2, 1):
            app = create_service_app(title="t", metrics=Metrics(f"blas_{wanted}"),
                                     readiness={}, blas_threads=wanted)
            with TestClient(app):
                assert blas_threads() == {wanted}
    finally:
        threadpool_limits(limits=before, user_api="blas")


def test_the_young_generation_threshold_is_set_once_started_and_the_others_kept() -> None:
    before = gc.get_threshold()
    try:
        app = create_service_app(title="t", metrics=Metrics("gc_young"), readiness={},
                                 gc_young_threshold=12_345)
        assert gc.get_threshold() == before  # nothing until the service starts
        with TestClient(app):
            assert gc.get_threshold() == (12_345, *before[1:])
    finally:
        gc.set_threshold(*before)
