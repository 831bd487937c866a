"""Two HTTP servers for the side-by-side run: our feature read behind the platform's service
shell, and the floor, an empty FastAPI endpoint on the same uvicorn stack.

    .venv/bin/python benchmarks/peers/our_servers.py features --port 8101 --redis-url redis://...
    .venv/bin/python benchmarks/peers/our_servers.py empty --port 8102

`features` is our service path for a feature read: the project has no standalone feature server
(fraud and recommender read the store in process), so this is what one would be, built as our
services are: `create_service_app` (request metrics, probes, 422s, frozen start-up heap), one
route that translates, the store on a request-path Redis client, uvicorn without access log.
It takes Feast's feature-server request body, so both servers get the same bytes:

    POST /get-online-features {"features": ["view:feature", ...], "entities": {"user": [...]}}

`empty` answers `{}` to a POST on any path, reading the body but none of its fields: what
FastAPI and uvicorn cost with nothing behind them.
"""

from __future__ import annotations

import argparse
from typing import Any

import shapes  # sibling module: this folder is on sys.path when run as a script
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.common.features import InvalidEntity, RedisFeatureStore, UnknownFeature
from services.common.http import create_service_app
from services.common.redis_client import request_path_redis
from services.common.settings import PlatformSettings
from services.common.telemetry import Metrics

PATH = "/get-online-features"


class ReadRequest(BaseModel):
    features: list[str] = Field(min_length=1, max_length=500)
    entities: dict[str, list[str]] = Field(min_length=1, max_length=1)


class ReadResponse(BaseModel):
    rows: list[dict[str, Any]]   # per entity: ref -> value
    missing: list[list[str]]     # per entity: the refs served from defaults


def features_app(settings: PlatformSettings) -> FastAPI:
    client = request_path_redis(settings, timeout_s=1.0)
    store = RedisFeatureStore(client, shapes.catalog(), namespace=shapes.NAMESPACE)
    app = create_service_app(title="feature read (benchmark)", metrics=Metrics("features"),
                             readiness={"redis": lambda: bool(client.ping())})

    @app.exception_handler(UnknownFeature)
    @app.exception_handler(InvalidEntity)
    async def bad_reference(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 422)

    @app.post(PATH)
    def read(body: ReadRequest) -> ReadResponse:
        ((entity, ids),) = body.entities.items()
        rows = store.read([{entity: i} for i in ids], body.features)
        return ReadResponse(rows=[dict(r.values) for r in rows],
                            missing=[r.missing for r in rows])

    return app


def empty_app() -> FastAPI:
    app = FastAPI()

    @app.post("/{path:path}")  # any path: it stands in for the feature and the model servers
    async def empty(request: Request) -> dict[str, str]:
        await request.body()  # the server receives the body either way
        return {}

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=("features", "empty"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    app = (features_app(PlatformSettings(redis_url=args.redis_url, log_level="WARNING"))
           if args.which == "features" else empty_app())
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
