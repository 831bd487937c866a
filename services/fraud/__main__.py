"""Run the fraud API: `python -m services.fraud` (MLSD_FRAUD_PORT, MLSD_FRAUD_WORKERS, ...)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.http import serve
from services.common.telemetry import configure_logging
from services.common.workers import serve_workers
from services.fraud.app import create_app
from services.fraud.settings import FraudSettings

WORKER_APP = "services.fraud.__main__:worker_app"  # what each worker process imports and calls


def worker_app() -> FastAPI:
    """One worker's app, built in the worker: settings and clients are not shared across
    processes, each reads the same environment."""
    settings = FraudSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    return create_app(settings)


def main() -> None:
    settings = FraudSettings()
    if settings.fraud_workers == 1 and not settings.workers_supervised:
        serve(create_app, settings, settings.fraud_host, settings.fraud_port)
    else:
        serve_workers(WORKER_APP, settings, settings.fraud_host, settings.fraud_port,
                      settings.fraud_workers)


if __name__ == "__main__":
    main()
