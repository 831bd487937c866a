"""The smallest app a worker supervisor can serve (tests of services/common/workers.py)."""

from __future__ import annotations

from fastapi import FastAPI


def app() -> FastAPI:
    served = FastAPI()

    @served.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return served
