"""The model server's composition root: settings in, repository, cache, watcher and routes wired."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.http import create_service_app
from services.common.models import (
    InvalidInput,
    ModelCache,
    ModelError,
    ModelNotFound,
    ModelRepository,
    ModelUnavailable,
    NothingToRollBack,
    ProtocolError,
    RepositoryWatcher,
)
from services.common.telemetry import Metrics
from services.modelserver.api import AdminDisabled, Unauthorized, admin, oip
from services.modelserver.bodies import RequestTooLarge, UnsupportedEncoding
from services.modelserver.metrics import ServingMetrics
from services.modelserver.serving import ModelServer
from services.modelserver.settings import ModelServerSettings

logger = logging.getLogger(__name__)

# Every domain error and its status, most specific first; the body is always {"error": "..."}.
ERROR_STATUS: tuple[tuple[type[ModelError], int], ...] = (
    (ModelNotFound, 404),
    (InvalidInput, 400),
    (ProtocolError, 400),
    (Unauthorized, 401),
    (AdminDisabled, 403),
    (NothingToRollBack, 409),
    (RequestTooLarge, 413),
    (UnsupportedEncoding, 415),
    (ModelUnavailable, 503),
)
# The protocol answers "not ready" with a 4xx (KServe v2: "a 4xx status code indicating false").
READINESS_PATHS = ("/v2/health/ready",)


def status_of(error: ModelError, path: str) -> int:
    if isinstance(error, ModelUnavailable) and (path in READINESS_PATHS or path.endswith("/ready")):
        return 400
    return next((status for kind, status in ERROR_STATUS if isinstance(error, kind)), 500)


async def _model_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelError)
    status = status_of(exc, request.url.path)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status >= 500:
        logger.warning("model error", extra={"path": request.url.path, "error": str(exc)})
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    # An unknown /v2 path or method still answers in the protocol's error shape.
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith("/v2"):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=exc.headers)
    return await http_exception_handler(request, exc)


def create_app(settings: ModelServerSettings) -> FastAPI:
    metrics = Metrics(settings.service_name)
    serving_metrics = ServingMetrics(metrics)
    repository = ModelRepository(settings.model_repository)
    cache = ModelCache(repository, watch_all=True, listener=serving_metrics,
                       max_other_versions=settings.model_server_max_other_versions)
    watcher = RepositoryWatcher(cache.refresh, settings.model_reload_interval_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(cache.refresh)  # every production model, before traffic
        logger.info("models loaded", extra={"repository": str(repository.root),
                                            "serving": cache.loaded()})
        watcher.start()
        try:
            yield
        finally:
            watcher.stop()

    app = create_service_app(title="model server", metrics=metrics, lifespan=lifespan,
                             blas_threads=settings.blas_threads,
                             max_connection_age_s=settings.http_max_connection_age_s,
                             readiness={"models": cache.is_ready})
    app.state.settings = settings
    app.state.model_server = ModelServer(repository, cache, serving_metrics)
    app.add_exception_handler(ModelError, _model_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(oip)
    app.include_router(admin)
    return app
