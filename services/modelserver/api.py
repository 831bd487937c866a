"""Routes: the Open Inference Protocol under /v2, promote and rollback under /v1/admin."""

from __future__ import annotations

import hmac
import importlib.metadata
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from services.common.models import ModelError, ModelUnavailable
from services.common.models.oip import HEADER_LENGTH, WireInferenceRequest, decode_request
from services.common.models.oip import encode_response as encode_inference
from services.modelserver.bodies import read_body
from services.modelserver.schemas import (
    ErrorResponse,
    LiveResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ModelsResponse,
    ModelStatus,
    PromoteRequest,
    ReadyResponse,
    ServerMetadataResponse,
)
from services.modelserver.serving import ModelServer
from services.modelserver.settings import ModelServerSettings

SERVER_NAME = "mlsd-modelserver"
EXTENSIONS = ["binary_tensor_data"]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "malformed request or tensors"},
    404: {"model": ErrorResponse, "description": "no such model or version"},
}


class AdminDisabled(ModelError):
    """No admin token is configured, so admin routes are off (HTTP 403)."""


class Unauthorized(ModelError):
    """The request's Bearer token is missing or wrong (HTTP 401)."""


# Dependencies are async so FastAPI runs them inline: a sync one costs a thread hop per request.
async def server(request: Request) -> ModelServer:
    model_server: ModelServer = request.app.state.model_server
    return model_server


async def settings(request: Request) -> ModelServerSettings:
    value: ModelServerSettings = request.app.state.settings
    return value


Server = Annotated[ModelServer, Depends(server)]
Settings = Annotated[ModelServerSettings, Depends(settings)]


async def require_admin(request: Request, config: Settings) -> None:
    token = config.model_server_admin_token
    if token is None:
        raise AdminDisabled("admin routes are off: set MLSD_MODEL_SERVER_ADMIN_TOKEN to enable")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(),
                                                             token.get_secret_value().encode()):
        raise Unauthorized("a valid 'Authorization: Bearer <token>' header is required")


Admin = Annotated[None, Depends(require_admin)]

oip = APIRouter(tags=["open inference protocol"], responses=ERRORS)
admin = APIRouter(prefix="/v1/admin", tags=["admin"])


# --- health and metadata ---------------------------------------------------------------------
@oip.get("/v2/health/live")
async def live() -> LiveResponse:
    return LiveResponse(live=True)


@oip.get("/v2/health/ready")
def ready(model_server: Server) -> ReadyResponse:
    if not model_server.cache.is_ready():
        raise ModelUnavailable("production models are still loading")
    return ReadyResponse(ready=True)


@oip.get("/v2")
async def server_metadata() -> ServerMetadataResponse:
    try:
        version = importlib.metadata.version("ml-system-design")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return ServerMetadataResponse(name=SERVER_NAME, version=version, extensions=EXTENSIONS)


@oip.get("/v2/models/{name}")
def model_metadata(name: str, model_server: Server) -> ModelMetadataResponse:
    return ModelMetadataResponse.of(*model_server.metadata(name))


@oip.get("/v2/models/{name}/versions/{version}")
def version_metadata(name: str, version: str, model_server: Server) -> ModelMetadataResponse:
    return ModelMetadataResponse.of(*model_server.metadata(name, version))


@oip.get("/v2/models/{name}/ready")
async def model_ready(name: str, model_server: Server) -> ModelReadyResponse:
    return await _ready(model_server, name, None)


@oip.get("/v2/models/{name}/versions/{version}/ready")
async def version_ready(name: str, version: str, model_server: Server) -> ModelReadyResponse:
    return await _ready(model_server, name, version)


async def _ready(model_server: ModelServer, name: str, version: str | None) -> ModelReadyResponse:
    # The first call for a version loads it (builds a session): off the event loop.
    model = await run_in_threadpool(model_server.model, name, version)
    return ModelReadyResponse(name=model.name, ready=True)


# --- inference -------------------------------------------------------------------------------
_INFER_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": WireInferenceRequest.model_json_schema()},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@oip.post("/v2/models/{name}/infer", openapi_extra=_INFER_BODY)
async def infer(name: str, request: Request, model_server: Server, config: Settings) -> Response:
    return await _infer(request, model_server, config, name, None)


@oip.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=_INFER_BODY)
async def infer_version(name: str, version: str, request: Request, model_server: Server,
                        config: Settings) -> Response:
    return await _infer(request, model_server, config, name, version)


async def _infer(request: Request, model_server: ModelServer, config: ModelServerSettings,
                 name: str, version: str | None) -> Response:
    body = await read_body(request, config.model_server_max_request_bytes)
    call = decode_request(body, request.headers.get(HEADER_LENGTH))
    # Inline, not in a thread: a batch takes tens of microseconds to a few milliseconds, less
    # than a thread hop costs; the process is one core's worth, scale by running more of them.
    result = model_server.infer(name, version, call)
    content, headers = encode_inference(result.model.name, result.model.version, call.id,
                                        result.outputs, call.wants_binary)
    return Response(content, headers=headers)


# --- admin -----------------------------------------------------------------------------------
@admin.get("/models")
def list_models(_: Admin, model_server: Server) -> ModelsResponse:
    return ModelsResponse(models=[ModelStatus.of(s) for s in model_server.states()])


@admin.post("/models/{name}/promote")
async def promote(name: str, body: PromoteRequest, _: Admin,
                  model_server: Server) -> ModelStatus:
    # Loading the new version builds a session: off the event loop, answered once swapped.
    return ModelStatus.of(await run_in_threadpool(model_server.promote, name, body.version))


@admin.post("/models/{name}/rollback")
async def rollback(name: str, _: Admin, model_server: Server) -> ModelStatus:
    return ModelStatus.of(await run_in_threadpool(model_server.rollback, name))
