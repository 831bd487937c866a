"""The FastAPI shell every service shares: latency middleware, /metrics, probes, clear 422s."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

import anyio.to_thread
import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from services.common.connections import RecycleConnections
from services.common.health import Check, health_router
from services.common.settings import PlatformSettings
from services.common.telemetry import Metrics, RequestMetricsMiddleware, configure_logging

SettingsT = TypeVar("SettingsT", bound=PlatformSettings)


class Lifespan(Protocol):
    def __call__(self, app: FastAPI) -> AbstractAsyncContextManager[Any]: ...


def _describe(error: Mapping[str, Any]) -> dict[str, Any]:
    location = ".".join(str(part) for part in error.get("loc", ()))
    return {"field": location, "problem": error.get("msg", "invalid"), "type": error.get("type")}


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_describe(e) for e in exc.errors()]
    summary = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)
    return JSONResponse({"detail": f"invalid request: {summary}", "errors": errors}, 422)


def _frozen_after_start(lifespan: Lifespan | None, threads: int | None,
                        blas_threads: int, gc_young_threshold: int | None) -> Lifespan:
    """Run the service's start-up, then freeze the heap: the objects loaded at start (numpy,
    models) leave the garbage collector's view, so full collections stop costing tens of ms on
    the request path (docs/feature-store.md measured 40-60 ms pauses without it).

    Before that, the youngest generation's collection threshold is set (`gc_young_threshold`,
    None: Python's): a stream batch's thousands of live objects were traversed at every 700
    allocations, ~8 % of a scorer's time (docs/fraud.md). And numpy's BLAS is held to
    `blas_threads`. A request's matrix products are small (one user against a few thousand
    titles), and OpenBLAS's extra thread, spinning between them, nearly doubled the CPU of an
    uncached recommendation (benchmarks/results/recs_cpu.json: 2.4 against 4.6 ms);
    parallelism here comes from processes.

    `threads` caps the pool that runs blocking handlers (anyio's default: 40). A CPU-bound
    handler gains nothing from 40 threads taking turns at one interpreter lock, and every
    request in flight waits longer for its turn."""

    @asynccontextmanager
    async def frozen(app: FastAPI) -> AsyncIterator[None]:
        threadpool_limits(limits=blas_threads, user_api="blas")
        if gc_young_threshold is not None:
            gc.set_threshold(gc_young_threshold, *gc.get_threshold()[1:])
        if threads is not None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        if lifespan is None:
            gc.freeze()
            yield
            return
        async with lifespan(app):
            gc.freeze()
            yield

    return frozen


def create_service_app(
    *,
    title: str,
    metrics: Metrics,
    readiness: Mapping[str, Check],
    lifespan: Lifespan | None = None,
    version: str = "0.1.0",
    threads: int | None = None,
    blas_threads: int = 1,
    gc_young_threshold: int | None = None,
    max_connection_age_s: float = 0.0,
) -> FastAPI:
    """A FastAPI app with the platform's middleware and routes; the service adds its own router.
    `threads`: how many requests run their blocking handler at once (None: anyio's 40);
    `blas_threads`: numpy's BLAS threads in this process (PlatformSettings.blas_threads);
    `gc_young_threshold`: the garbage collector's first threshold (PlatformSettings'; None:
    Python's);
    `max_connection_age_s`: recycle kept-alive connections past this age (0: never;
    PlatformSettings.http_max_connection_age_s)."""
    app = FastAPI(title=title, version=version,
                  lifespan=_frozen_after_start(lifespan, threads, blas_threads,
                                               gc_young_threshold))
    app.state.metrics = metrics  # what /metrics exposes; tests read the registry through it
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics, router=app.router)
    if max_connection_age_s > 0:
        app.add_middleware(RecycleConnections, max_age_s=max_connection_age_s)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(health_router(readiness))

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.exposed()), media_type=CONTENT_TYPE_LATEST)

    return app


def blocking_lifespan(start: Callable[[], None], stop: Callable[[], None]) -> Lifespan:
    """A lifespan whose start-up and shutdown block (consumer threads, clients, broker probes):
    both run on a worker thread, so the event loop keeps answering /healthz meanwhile."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(start)
        try:
            yield
        finally:
            await run_in_threadpool(stop)

    return lifespan


def serve(create_app: Callable[[SettingsT], FastAPI], settings: SettingsT, host: str,
          port: int) -> None:
    """`python -m services.<name>`: the platform's JSON logs, then the app under uvicorn (no
    access log: the request-latency middleware already counts every request)."""
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
