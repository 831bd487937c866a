"""Run the recommender: `python -m services.recommender` (MLSD_RECOMMENDER_HOST, PORT, WORKERS)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.workers import serve_one_or_workers, worker_app_from
from services.recommender.app import create_app
from services.recommender.settings import RecommenderSettings

WORKER_APP = "services.recommender.__main__:worker_app"  # what each worker process imports


def worker_app() -> FastAPI:
    return worker_app_from(RecommenderSettings, create_app)


def main() -> None:
    settings = RecommenderSettings()
    serve_one_or_workers(create_app, WORKER_APP, settings, settings.recommender_host,
                         settings.recommender_port, settings.recommender_workers)


if __name__ == "__main__":
    main()
