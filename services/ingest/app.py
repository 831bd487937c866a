"""Ingest's composition root: settings in; publisher, spool, dedupe cache, metrics and routes
wired."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.common import probe
from services.common.bus.deferred import DeferredPublisher
from services.common.bus.ports import Publisher
from services.common.health import Check
from services.common.http import create_service_app
from services.common.redis_client import RedisClient, request_path_redis
from services.common.redis_scripts import warm
from services.common.telemetry import Metrics
from services.ingest.admission import AdmissionLimits
from services.ingest.api import router
from services.ingest.broker import kafka_connector
from services.ingest.dedupe import Dedupe, RedisDedupe
from services.ingest.errors import (
    BatchTooLarge,
    BodyTooLarge,
    IngestError,
    InvalidBatch,
    MalformedBody,
    NothingValid,
    NotStored,
    UnsupportedEncoding,
)
from services.ingest.ingestor import Ingestor
from services.ingest.metrics import IngestMetrics
from services.ingest.schemas import ErrorResponse, FieldError, IngestResponse
from services.ingest.settings import IngestSettings
from services.ingest.spool import Forwarder, Spool, SpoolLimits

logger = logging.getLogger(__name__)

# Every domain error and its status. Nothing a client sends maps to a 5xx; 503 means the broker.
ERROR_STATUS: tuple[tuple[type[IngestError], int], ...] = (
    (MalformedBody, 400),
    (BodyTooLarge, 413),
    (BatchTooLarge, 413),
    (UnsupportedEncoding, 415),
    (InvalidBatch, 422),
    (NothingValid, 422),
    (NotStored, 503),
)


def status_of(error: IngestError) -> int:
    return next(status for kind, status in ERROR_STATUS if isinstance(error, kind))


async def _ingest_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IngestError)
    body: IngestResponse | ErrorResponse
    headers: dict[str, str] = {}
    if isinstance(exc, NothingValid | NotStored):
        body = IngestResponse.of(exc.report, headline=str(exc))
    elif isinstance(exc, InvalidBatch):
        body = ErrorResponse(detail=str(exc), errors=[FieldError.of(p) for p in exc.problems])
    else:
        body = ErrorResponse(detail=str(exc))
    if isinstance(exc, NotStored):
        settings: IngestSettings = request.app.state.settings
        headers["Retry-After"] = str(settings.ingest_retry_after_s)
    return JSONResponse(body.model_dump(mode="json"), status_code=status_of(exc),
                        headers=headers)


def _kafka_check(settings: IngestSettings, deferred: DeferredPublisher | None) -> Check:
    if deferred is None:
        return lambda: True  # a passed-in publisher is its owner's to check

    def kafka_ready() -> bool:
        # Connected first: probing an unreachable broker would still cost the probe's timeout.
        return deferred.connected and probe.kafka_ready(settings.kafka_access(),
                                                        settings.ingest_broker_probe_timeout_s)

    return kafka_ready


def _spool(settings: IngestSettings, publisher_given: bool, spool: Spool | None) -> Spool | None:
    """The spool to use: the one passed in, else one of ingest's own when the setting is on and
    ingest builds its own publisher (a caller passing a publisher passes a spool to have one)."""
    if spool is not None or publisher_given or not settings.ingest_spool_enabled:
        return spool
    return Spool(settings.spool_file(), SpoolLimits(settings.ingest_spool_max_events,
                                                    settings.ingest_spool_max_age_s))


def create_app(settings: IngestSettings, publisher: Publisher | None = None,
               dedupe: Dedupe | None = None, spool: Spool | None = None) -> FastAPI:
    """The service; unit tests pass an in-memory publisher and dedupe (and a spool), which the
    caller owns; the app opens a spool it built and runs the forwarder of any spool."""
    metrics = Metrics(settings.service_name)
    ingest_metrics = IngestMetrics(metrics)

    own_spool = spool is None
    spool = _spool(settings, publisher is not None, spool)
    deferred: DeferredPublisher | None = None
    if publisher is None:
        deferred = DeferredPublisher(kafka_connector(settings),
                                     backoff_max_s=settings.ingest_connect_backoff_max_s)
        publisher = deferred
    ingest_metrics.broker_connected.set_function(
        lambda: float(deferred is None or deferred.connected))
    forwarder: Forwarder | None = None
    if spool is not None:
        forwarder = Forwarder(spool, publisher, ingest_metrics)
        ingest_metrics.spool_depth.set_function(lambda: float(spool.depth()))
        ingest_metrics.spool_oldest_age.set_function(spool.oldest_age_s)

    redis_client: RedisClient | None = None
    if dedupe is None:
        redis_client = request_path_redis(settings)
        dedupe = RedisDedupe(redis_client, settings.ingest_dedupe_window_s,
                             settings.feature_namespace)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if deferred is not None:
            deferred.start()
        if spool is not None and own_spool:
            spool.open()
        if forwarder is not None:
            forwarder.start()  # resumes whatever the spool held at start
        if redis_client is not None:  # the dedupe cache's connections, before ready
            warm(redis_client)
        logger.info("ingest started", extra={"kafka": settings.kafka_bootstrap_servers,
                                             "spool": str(spool.path) if spool else None})
        try:
            yield
        finally:
            # What is still spooled stays on disk: the next start forwards it.
            if forwarder is not None:
                forwarder.stop()
            if spool is not None and own_spool:
                spool.close()
            # Only what this factory built: a passed-in publisher or dedupe belongs to the caller.
            if deferred is not None:
                deferred.close()
            if redis_client is not None:
                redis_client.close()

    app = create_service_app(title="ingest", metrics=metrics, lifespan=lifespan,
                             blas_threads=settings.blas_threads,
                             max_connection_age_s=settings.http_max_connection_age_s,
                             readiness={"kafka": _kafka_check(settings, deferred),
                                        "redis": dedupe.ready})
    app.state.settings = settings
    # With a spool, a stalled bus costs a batch an fsync, not a refusal: it is spilled at
    # ingest's budget instead of the shedding bound (docs/adr/0006-ingest-spool.md).
    stalled_after_s = (settings.ingest_spool_after_s if spool is not None
                       else settings.ingest_shed_after_s)
    app.state.ingestor = Ingestor(publisher, dedupe, ingest_metrics, AdmissionLimits(
        stalled_after_s, settings.ingest_max_in_flight_events), spool=spool)
    app.add_exception_handler(IngestError, _ingest_error)
    app.include_router(router)
    return app
