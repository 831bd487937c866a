"""Run the recommender: `python -m services.recommender` (MLSD_RECOMMENDER_HOST, PORT, WORKERS)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.http import serve
from services.common.telemetry import configure_logging
from services.common.workers import serve_workers
from services.recommender.app import create_app
from services.recommender.settings import RecommenderSettings

WORKER_APP = "services.recommender.__main__:worker_app"  # what each worker process imports


def worker_app() -> FastAPI:
    """One worker's app, built in the worker from the same environment as the others."""
    settings = RecommenderSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    return create_app(settings)


def main() -> None:
    settings = RecommenderSettings()
    if settings.recommender_workers == 1 and not settings.workers_supervised:
        serve(create_app, settings, settings.recommender_host, settings.recommender_port)
    else:
        serve_workers(WORKER_APP, settings, settings.recommender_host,
                      settings.recommender_port, settings.recommender_workers)


if __name__ == "__main__":
    main()
