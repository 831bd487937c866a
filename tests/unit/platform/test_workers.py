"""serve_one_or_workers: a service that may run several workers runs one in its own process
unless more are asked for or a supervisor must be able to add them; worker_app_from builds
each worker's app from the environment."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from services.common import workers
from services.common.settings import PlatformSettings

FACTORY = "services.example.__main__:worker_app"


def create_app(settings: PlatformSettings) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    return app


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    calls: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(workers, "serve", lambda *args: calls.append(("one process", args)))
    monkeypatch.setattr(workers, "serve_workers",
                        lambda *args: calls.append(("workers", args)))
    return calls


def test_one_worker_runs_in_the_services_own_process(
        started: list[tuple[str, tuple[Any, ...]]]) -> None:
    settings = PlatformSettings()
    workers.serve_one_or_workers(create_app, FACTORY, settings, "127.0.0.1", 8040, 1)
    assert started == [("one process", (create_app, settings, "127.0.0.1", 8040))]


def test_more_workers_run_under_the_supervisor_each_from_the_factory(
        started: list[tuple[str, tuple[Any, ...]]]) -> None:
    settings = PlatformSettings()
    workers.serve_one_or_workers(create_app, FACTORY, settings, "127.0.0.1", 8040, 3)
    assert started == [("workers", (FACTORY, settings, "127.0.0.1", 8040, 3))]


def test_one_supervised_worker_runs_under_the_supervisor_so_more_can_be_added(
        started: list[tuple[str, tuple[Any, ...]]]) -> None:
    settings = PlatformSettings(workers_supervised=True)
    workers.serve_one_or_workers(create_app, FACTORY, settings, "127.0.0.1", 8040, 1)
    assert started == [("workers", (FACTORY, settings, "127.0.0.1", 8040, 1))]


def test_a_workers_app_is_built_from_settings_read_in_the_worker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_SERVICE_NAME", "example_worker")
    configured: list[str] = []
    monkeypatch.setattr(workers, "configure_logging",
                        lambda service, level, as_json: configured.append(service))
    app = workers.worker_app_from(PlatformSettings, create_app)
    assert app.state.settings.service_name == "example_worker"
    assert configured == ["example_worker"]
