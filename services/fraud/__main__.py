"""Run the fraud API: `python -m services.fraud` (MLSD_FRAUD_PORT, MLSD_FRAUD_WORKERS, ...)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.workers import serve_one_or_workers, worker_app_from
from services.fraud.app import create_app
from services.fraud.settings import FraudSettings

WORKER_APP = "services.fraud.__main__:worker_app"  # what each worker process imports and calls


def worker_app() -> FastAPI:
    return worker_app_from(FraudSettings, create_app)


def main() -> None:
    settings = FraudSettings()
    serve_one_or_workers(create_app, WORKER_APP, settings, settings.fraud_host,
                         settings.fraud_port, settings.fraud_workers)


if __name__ == "__main__":
    main()
