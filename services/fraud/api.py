"""Routes: POST /v1/score, a transaction in, a decision with its reasons out; GET
/v1/decisions/{transaction_id}, a recorded decision with every reason."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from services.common.bodies import read_bounded
from services.designs.payloads import TransactionId
from services.fraud.errors import BodyTooLarge, MalformedBody
from services.fraud.schemas import ErrorResponse, RecordedDecision, ScoreRequest, ScoreResponse
from services.fraud.service import FraudService


# Async dependencies run inline on the event loop: a sync one would cost a thread hop each.
async def service(request: Request) -> FraudService:
    value: FraudService = request.app.state.fraud
    return value


Service = Annotated[FraudService, Depends(service)]

# The body is read by hand (bounded while it streams), so FastAPI is told its schema here.
_REQUEST_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": ScoreRequest.model_json_schema()}}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "the body is not JSON"},
    413: {"model": ErrorResponse, "description": "the body is over the size limit"},
    422: {"description": "a field is missing, mistyped or out of range; `errors` names each"},
}

router = APIRouter(tags=["fraud"])


def parse_request(body: bytes) -> ScoreRequest:
    try:
        return ScoreRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        malformed = next((e for e in errors if e["type"] == "json_invalid"), None)
        if malformed is not None:
            raise MalformedBody(f"the body is not valid JSON: {malformed['msg']}") from exc
        raise RequestValidationError(errors) from exc


@router.post("/v1/score", responses=RESPONSES, openapi_extra=_REQUEST_BODY,
             response_model=ScoreResponse,
             summary="decide on a transaction: approve, review or decline, with the reasons")
async def score(request: Request) -> Response:
    # The hot path skips FastAPI's dependency solving and its validation of the returned model
    # (the answer is built here from a decision, already the schema's shape): a few per cent
    # of the service's CPU a request under load (benchmarks/fraud_http_cpu.py).
    start = time.perf_counter()
    fraud: FraudService = request.app.state.fraud
    body = await read_bounded(request, fraud.max_body_bytes, BodyTooLarge)
    transaction = parse_request(body).to_transaction()
    fraud.check_clock(transaction)
    # Scored off the event loop by the scoring thread, with the requests that queued meanwhile.
    scored = await asyncio.wrap_future(fraud.submit(transaction))
    answer = ScoreResponse.from_scored(scored, (time.perf_counter() - start) * 1000)
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get("/v1/decisions/{transaction_id:path}", responses={
    404: {"model": ErrorResponse, "description": "no decision recorded for this id"},
    422: {"description": "an id that is empty, over 128 characters or holds a control character"},
    503: {"model": ErrorResponse, "description": "the recorded decisions cannot be read"}},
    summary="a recorded decision with all its reasons; an approval's ML factors computed now")
async def recorded_decision(transaction_id: TransactionId, fraud: Service) -> RecordedDecision:
    start = time.perf_counter()
    decision, computed, served_from = await run_in_threadpool(fraud.recorded, transaction_id)
    answer = ScoreResponse.of(transaction_id, decision, replayed=True,
                              processing_ms=(time.perf_counter() - start) * 1000)
    return RecordedDecision(**answer.model_dump(), factors_computed_now=computed,
                            served_from=served_from)


