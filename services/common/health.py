"""Liveness and readiness: /healthz says the process runs, /readyz that its dependencies answer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

logger = logging.getLogger(__name__)

Check = Callable[[], bool]
"""A readiness check: True when the dependency answers; it owns its own short timeout."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def run_checks(checks: Mapping[str, Check]) -> list[CheckResult]:
    results = []
    for name, check in checks.items():
        try:
            ok = check()
            detail = "ok" if ok else "not ready"
        except Exception as exc:  # a failing probe is a 'not ready', never a crash of /readyz
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append(CheckResult(name, ok, detail))
    return results


def health_router(checks: Mapping[str, Check]) -> APIRouter:
    """Routes for probes: /healthz (always 200 while the process serves) and /readyz."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="the process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="dependencies answer and models are loaded",
                responses={503: {"description": "a dependency is not ready"}})
    async def readyz() -> JSONResponse:
        results = await run_in_threadpool(run_checks, checks)
        ready = all(r.ok for r in results)
        if not ready:
            logger.warning("not ready", extra={"checks": {r.name: r.detail for r in results}})
        body = {"status": "ready" if ready else "not ready",
                "checks": {r.name: r.detail for r in results}}
        return JSONResponse(body, status_code=200 if ready else 503)

    return router
