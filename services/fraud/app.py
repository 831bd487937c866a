"""The fraud HTTP service: the scorer (wiring.py) behind its API, its decision log, its record."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.common.bus.deferred import off_path_publishing
from services.common.bus.ports import Publisher
from services.common.http import create_service_app
from services.common.models import ModelClient
from services.common.records.pool import unopened_pool
from services.common.records.settings import PostgresSettings
from services.common.redis_client import request_path_redis
from services.common.redis_scripts import warm
from services.common.telemetry import Metrics
from services.designs.fraud.records import PostgresDecisionRecords
from services.fraud.api import router
from services.fraud.errors import (
    BodyTooLarge,
    DecisionNotFound,
    DecisionsUnavailable,
    FraudRequestError,
    MalformedBody,
    TimestampTooFarAhead,
)
from services.fraud.metrics import FraudMetrics
from services.fraud.record import DecisionRecord
from services.fraud.schemas import ErrorResponse
from services.fraud.service import FraudService
from services.fraud.settings import FraudSettings
from services.fraud.state_store import STORE_SCRIPTS, FraudStore
from services.fraud.wiring import build_scorer, fraud_model_client, fraud_store

logger = logging.getLogger(__name__)

ERROR_STATUS: tuple[tuple[type[FraudRequestError], int], ...] = (
    (MalformedBody, 400),
    (BodyTooLarge, 413),
    (TimestampTooFarAhead, 422),
    (DecisionNotFound, 404),
    (DecisionsUnavailable, 503),
)


async def _request_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FraudRequestError)
    status = next(status for kind, status in ERROR_STATUS if isinstance(exc, kind))
    return JSONResponse(ErrorResponse(detail=str(exc)).model_dump(), status_code=status)


def create_app(settings: FraudSettings, *, store: FraudStore | None = None,
               model: ModelClient | None = None, publisher: Publisher | None = None,
               record: DecisionRecord | None = None) -> FastAPI:
    """The service; tests may pass a store, a model client, a publisher or the record of
    decisions (PostgreSQL otherwise, MLSD_POSTGRES_*), which they own."""
    metrics = Metrics(settings.service_name)
    fraud_metrics = FraudMetrics(metrics)
    redis_client = request_path_redis(settings, settings.fraud_redis_timeout_s)
    own_model, own_store = model is None, store is None
    model = model or fraud_model_client(settings)
    scorer = build_scorer(settings, fraud_metrics,
                          store or fraud_store(settings, redis_client), model)
    publishing = off_path_publishing(
        settings, publisher, topic=settings.fraud_decisions_topic,
        capacity=settings.fraud_publish_queue,
        probe_timeout_s=settings.fraud_broker_probe_timeout_s,
        delivery_timeout_s=settings.fraud_delivery_timeout_s,
        on_outcome=lambda outcome, n: fraud_metrics.published.labels(outcome).inc(n))
    decisions = publishing.queue
    # the record of decisions, for GET /v1/decisions past the window: opened in the background
    record_pool = unopened_pool(PostgresSettings(), settings.service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if publishing.connection is not None:
            publishing.connection.start()
        if record is None:
            record_pool.open(wait=False)
        if own_store:  # connections to every master and the scripts there, before ready
            warm(redis_client, STORE_SCRIPTS)
        scorer.warm_up()
        logger.info("fraud started", extra={"policy": str(settings.fraud_policy_path)})
        try:
            yield
        finally:
            app.state.fraud.close()  # scores what is queued (its decisions go on the queue)
            decisions.close()  # sends what is queued, then closes the deferred publisher
            if own_model:
                model.close()
            record_pool.close()
            redis_client.close()

    app = create_service_app(title="fraud", metrics=metrics, lifespan=lifespan,
                             blas_threads=settings.blas_threads,
                             gc_young_threshold=settings.gc_young_threshold,
                             max_connection_age_s=settings.http_max_connection_age_s,
                             threads=settings.fraud_http_threads,
                             readiness={"policy": lambda: True})
    app.state.settings = settings
    app.state.fraud = FraudService(scorer, decisions, settings.fraud_decisions_topic,
                                   max_body_bytes=settings.fraud_max_body_bytes,
                                   max_future_s=settings.fraud_max_future_s,
                                   max_batch=settings.fraud_http_max_batch,
                                   record=record or PostgresDecisionRecords(record_pool))
    app.add_exception_handler(FraudRequestError, _request_error)
    app.include_router(router)
    return app
