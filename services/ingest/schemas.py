"""What crosses the wire: IngestRequest in; IngestResponse (per event) or ErrorResponse out."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from services.common.bus.envelope import Event
from services.designs.payloads import EVENT_TYPES
from services.ingest.batching import BatchReport, FieldProblem


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A payload's schema with its nested models written in place: it is embedded in another
    document, where its own `#/$defs/...` references would point at nothing."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve({**defs[ref.removeprefix("#/$defs/")],
                                **{k: v for k, v in node.items() if k != "$ref"}})
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node
    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _event_schema() -> dict[str, Any]:
    """The envelope with each type's payload, for readers of the OpenAPI document and fuzzers."""
    envelope = Event.model_json_schema()
    variants = []
    for name, event_type in sorted(EVENT_TYPES.items()):
        properties = {**envelope["properties"], "type": {"const": name},
                      "data": _inlined(event_type.payload.model_json_schema())}
        variants.append({**envelope, "title": f"{name} event", "properties": properties})
    return {"oneOf": variants}


class IngestRequest(BaseModel):
    """POST /v1/events. Each event is validated on its own, so `events` is read as any JSON here:
    one bad event is rejected by itself instead of failing the whole batch."""

    model_config = ConfigDict(extra="forbid")

    events: Annotated[list[Any], WithJsonSchema({
        "type": "array", "minItems": 1, "items": _event_schema(),
        "description": "1 to MLSD_INGEST_MAX_BATCH_EVENTS (500) events"})]


class FieldError(BaseModel):
    field: str = Field(description="dotted path inside the event, e.g. data.user_id")
    problem: str

    @classmethod
    def of(cls, problem: FieldProblem) -> FieldError:
        return cls(field=problem.field, problem=problem.problem)


class RejectedEvent(BaseModel):
    index: int = Field(description="position of the event in the posted batch, from 0")
    id: str | None = Field(description="the event's id as sent, if it had a string id")
    errors: list[FieldError]


NOT_ACKNOWLEDGED = "not acknowledged by the event bus"
NOT_SENT = "not sent: the event bus is not acknowledging writes now; retry after Retry-After"


class FailedEvent(BaseModel):
    index: int
    id: str
    problem: str


class IngestResponse(BaseModel):
    """Every posted event in exactly one of accepted, duplicates, rejected, failed. `accepted`
    and `duplicates` are stored (on Kafka, or for `spooled`, a subset of `accepted`, durably in
    ingest's spool until the broker acknowledges them); `rejected` and `failed` are not (a
    failed event may be retried as it is)."""

    detail: str
    accepted: list[str] = Field(description="ids stored for this post: acknowledged by the "
                                            "broker, or held in ingest's durable spool (below)")
    duplicates: list[str] = Field(
        description="ids stored before (within the dedupe window or earlier in this batch); "
                    "not published again")
    rejected: list[RejectedEvent]
    failed: list[FailedEvent]
    spooled: list[str] = Field(
        default_factory=list,
        description="ids among `accepted` stored durably in ingest's spool while the event bus "
                    "was not acknowledging; ingest forwards them once it does")

    @classmethod
    def of(cls, report: BatchReport, headline: str | None = None) -> IngestResponse:
        stored = len(report.accepted) + len(report.spooled)
        counts = (f"{stored} accepted, {len(report.duplicates)} duplicate, "
                  f"{len(report.rejected)} rejected, {len(report.failed)} failed")
        if report.spooled:
            counts += f" ({len(report.spooled)} of the accepted in ingest's spool)"
        return cls(
            detail=f"{headline}: {counts}" if headline else counts,
            accepted=[v.id for v in (*report.accepted, *report.spooled)],
            duplicates=[v.id for v in report.duplicates],
            rejected=[RejectedEvent(index=r.index, id=r.id,
                                    errors=[FieldError.of(p) for p in r.problems])
                      for r in report.rejected],
            spooled=[v.id for v in report.spooled],
            failed=[FailedEvent(index=f.valid.index, id=f.valid.id,
                                problem=NOT_ACKNOWLEDGED if f.sent else NOT_SENT)
                    for f in report.failed],
        )


class ErrorResponse(BaseModel):
    """A request refused as a whole (size, encoding, not JSON, not a batch)."""

    detail: str
    errors: list[FieldError] = Field(default_factory=list)
