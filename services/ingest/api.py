"""Routes: POST /v1/events, a batch of typed events in, the per-event outcome out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.concurrency import run_in_threadpool

from services.ingest.bodies import decode_batch, read_body
from services.ingest.ingestor import Ingestor
from services.ingest.schemas import ErrorResponse, IngestRequest, IngestResponse
from services.ingest.settings import IngestSettings


# Dependencies are async so FastAPI runs them inline: a sync one costs a thread hop per request.
async def ingestor(request: Request) -> Ingestor:
    value: Ingestor = request.app.state.ingestor
    return value


async def settings(request: Request) -> IngestSettings:
    value: IngestSettings = request.app.state.settings
    return value


IngestorDep = Annotated[Ingestor, Depends(ingestor)]
Settings = Annotated[IngestSettings, Depends(settings)]

# The body is read by hand (bounded while it streams), so FastAPI is told its schema here.
_REQUEST_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": IngestRequest.model_json_schema()}}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "the body is not JSON"},
    413: {"model": ErrorResponse, "description": "the body or the batch is over its limit"},
    415: {"model": ErrorResponse, "description": "a Content-Encoding other than identity"},
    422: {"model": IngestResponse | ErrorResponse,
          "description": "every event was rejected (IngestResponse), or the body is not a batch "
                         "(ErrorResponse)"},
    503: {"model": IngestResponse,
          "description": "the event bus did not acknowledge some valid events, or ingest refused "
                         "the batch unsent while the bus is not acknowledging; retry after "
                         "Retry-After seconds (events stored already come back as duplicates)"},
}

router = APIRouter(tags=["events"])


@router.post("/v1/events", status_code=status.HTTP_202_ACCEPTED, responses=RESPONSES,
             openapi_extra=_REQUEST_BODY,
             summary="publish a batch of events; 202 once the broker stored each accepted one")
async def post_events(request: Request, ingest: IngestorDep, config: Settings) -> IngestResponse:
    body = await read_body(request, config.ingest_max_body_bytes)
    batch = decode_batch(body, config.ingest_max_batch_events)
    # Waiting for the broker's acknowledgements blocks: off the event loop.
    return IngestResponse.of(await run_in_threadpool(ingest.ingest, batch.events))
