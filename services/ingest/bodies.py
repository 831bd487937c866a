"""Reading a post: bounded in bytes while it streams in, then in events before any is validated."""

from __future__ import annotations

from fastapi import Request
from pydantic import ValidationError

from services.common.bodies import read_bounded
from services.ingest.batching import FieldProblem
from services.ingest.errors import (
    BatchTooLarge,
    BodyTooLarge,
    InvalidBatch,
    MalformedBody,
    UnsupportedEncoding,
)
from services.ingest.schemas import IngestRequest


async def read_body(request: Request, limit: int) -> bytes:
    """The body as sent, refused by its Content-Length or as soon as it streams past `limit`."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedEncoding(
            f"Content-Encoding {encoding!r} is not supported; send plain JSON")
    return await read_bounded(request, limit, BodyTooLarge)


def decode_batch(body: bytes, max_events: int) -> IngestRequest:
    """The batch, or why the body is not one: not JSON (400), not a batch (422), too many (413)."""
    try:
        request = IngestRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        malformed = next((e for e in errors if e["type"] == "json_invalid"), None)
        if malformed is not None:
            raise MalformedBody(f"the body is not valid JSON: {malformed['msg']}") from exc
        problems = [FieldProblem(".".join(str(p) for p in e["loc"]) or "body", e["msg"])
                    for e in errors]
        summary = "; ".join(f"{p.field}: {p.problem}" for p in problems)
        raise InvalidBatch(f'the body is not a batch {{"events": [...]}}: {summary}',
                           problems) from exc
    if len(request.events) > max_events:
        raise BatchTooLarge(f"the batch has {len(request.events)} events; the limit is "
                            f"{max_events}")
    if not request.events:
        raise InvalidBatch("the batch is empty",
                           [FieldProblem("events", "at least one event is required")])
    return request
