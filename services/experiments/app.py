"""The experiments service's composition root: settings in; store, cache, exposures, counts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import psycopg
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.common.bus.deferred import off_path_publishing
from services.common.bus.ports import Publisher
from services.common.features import FeatureStoreUnavailable
from services.common.http import create_service_app
from services.common.records.pool import unopened_pool
from services.common.records.settings import PostgresSettings
from services.common.redis_client import RedisClient, request_path_redis
from services.common.telemetry import Metrics
from services.designs.experiments.cache import DefinitionCache
from services.designs.experiments.definitions import load_definitions_file
from services.designs.experiments.exposures import ExposureLog
from services.designs.experiments.records import ExperimentHistory, PostgresExperimentHistory
from services.designs.experiments.store import DefinitionStore, RedisDefinitionStore
from services.experiments.api import admin, router
from services.experiments.counts import CountsReader, RedisCountsReader
from services.experiments.errors import (
    ConflictingChange,
    ExperimentsError,
    KeyMismatch,
    NotPoolable,
    UnknownExperiment,
)
from services.experiments.guardrails import GuardrailWatch
from services.experiments.metrics import ExperimentsMetrics
from services.experiments.service import ExperimentsService
from services.experiments.settings import ExperimentsSettings

logger = logging.getLogger(__name__)

ERROR_STATUS: tuple[tuple[type[ExperimentsError], int], ...] = (
    (UnknownExperiment, 404),
    (ConflictingChange, 409),
    (KeyMismatch, 422),
    (NotPoolable, 422),
)
RETRY_AFTER_S = 1


async def _request_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ExperimentsError)
    status = next(status for kind, status in ERROR_STATUS if isinstance(exc, kind))
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _record_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("postgres unavailable", extra={"path": request.url.path, "error": repr(exc)})
    return JSONResponse({"detail": f"the record of experiments did not answer: "
                                   f"{type(exc).__name__}; nothing was changed"},
                        status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("redis unavailable", extra={"path": request.url.path, "error": repr(exc)})
    return JSONResponse({"detail": f"redis did not answer: {type(exc).__name__}"},
                        status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def create_app(settings: ExperimentsSettings, *, redis_client: RedisClient | None = None,
               store: DefinitionStore | None = None, counts: CountsReader | None = None,
               publisher: Publisher | None = None, history: ExperimentHistory | None = None,
               postgres: PostgresSettings | None = None) -> FastAPI:
    """The service; tests may pass a Redis client, a store, a counts reader, a publisher or the
    change history, which they own (the history otherwise: PostgreSQL, MLSD_POSTGRES_* or
    `postgres`)."""
    metrics = Metrics(settings.service_name)
    experiments_metrics = ExperimentsMetrics(metrics)
    in_file = load_definitions_file(settings.experiments_file)  # a bad file stops start-up
    client = redis_client or request_path_redis(settings, settings.experiments_redis_timeout_s)
    store = store or RedisDefinitionStore(client, settings.feature_namespace)
    cache = DefinitionCache(
        store, settings.experiments_refresh_interval_s, seed=in_file, fallback=in_file,
        on_refresh=lambda outcome: experiments_metrics.refreshes.labels(outcome).inc())
    experiments_metrics.definitions_age.set_function(
        lambda: age if (age := cache.seconds_since_refresh()) is not None else -1.0)
    publishing = off_path_publishing(
        settings, publisher, topic=settings.experiments_exposures_topic,
        capacity=settings.experiments_publish_queue,
        probe_timeout_s=settings.experiments_broker_probe_timeout_s,
        delivery_timeout_s=settings.experiments_delivery_timeout_s,
        on_outcome=lambda outcome, n: experiments_metrics.published.labels(outcome).inc(n))
    background = publishing.queue
    # the record of definitions and their changes: opened in the background, needed by writes
    record_pool = unopened_pool(postgres or PostgresSettings(), settings.service_name)
    exposures = ExposureLog(
        client, background, settings.feature_namespace, source=settings.service_name,
        topic=settings.experiments_exposures_topic,
        ttl=timedelta(days=settings.experiments_exposure_dedupe_days),
        memory_size=settings.experiments_exposure_memory)

    counts = counts or RedisCountsReader(client, settings.feature_namespace)
    service = ExperimentsService(
        store=store, cache=cache, exposures=exposures, counts=counts, metrics=experiments_metrics,
        history=history or PostgresExperimentHistory(record_pool),
        plot_points=settings.experiments_plot_points)
    guardrails = GuardrailWatch(
        cache.running, counts.counts, lambda key, actor: service.set_status(key, "stopped", actor),
        settings.experiments_guardrail_interval_s,
        on_stop=lambda breach: experiments_metrics.guardrail_stops.labels(
            breach.experiment, breach.metric).inc())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if publishing.connection is not None:
            publishing.connection.start()
        if history is None:
            record_pool.open(wait=False)
        cache.start()
        if settings.experiments_guardrail_interval_s > 0:
            guardrails.start()
        logger.info("experiments started", extra={
            "source": cache.source, "experiments": [d.key for d in cache.all()]})
        try:
            yield
        finally:
            guardrails.close()
            cache.close()
            background.close()  # sends what is queued, then closes the publisher
            record_pool.close()
            if redis_client is None:
                client.close()

    app = create_service_app(title="experiments", metrics=metrics, lifespan=lifespan,
                             blas_threads=settings.blas_threads,
                             max_connection_age_s=settings.http_max_connection_age_s,
                             readiness={"redis": lambda: bool(client.ping()),
                                        "definitions": lambda: cache.version is not None})
    app.state.settings = settings
    app.state.experiments = service
    app.state.guardrails = guardrails
    app.add_exception_handler(ExperimentsError, _request_error)
    app.add_exception_handler(redis.RedisError, _redis_unavailable)
    app.add_exception_handler(FeatureStoreUnavailable, _redis_unavailable)
    app.add_exception_handler(psycopg.Error, _record_unavailable)
    app.include_router(router)
    app.include_router(admin)
    return app
