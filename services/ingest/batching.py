"""The pure core of ingest: validate a batch event by event, choose what to publish, tally it."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from services.common.bus.envelope import Event
from services.common.bus.ports import Delivery, OutboundMessage
from services.designs.payloads import EVENT_TYPES, EventType

# What a client sent is echoed back in rejections; bound it so a hostile body cannot make the
# response much larger than the request.
MAX_ECHOED_CHARS = 128
MAX_PROBLEMS_PER_EVENT = 10
KNOWN_TYPES = ", ".join(sorted(EVENT_TYPES))


@dataclass(frozen=True)
class FieldProblem:
    field: str  # dotted path inside the event ("data.user_id", "time"); "" for the whole event
    problem: str


@dataclass(frozen=True)
class Rejected:
    """An event that failed validation; `type` is set only when it names a known event type."""

    index: int
    id: str | None
    type: str | None
    problems: tuple[FieldProblem, ...]


@dataclass(frozen=True)
class Valid:
    """An event whose envelope and payload are valid, as it will be published."""

    index: int
    event: Event
    event_type: EventType
    message: OutboundMessage

    @property
    def id(self) -> str:
        return self.event.id


@dataclass(frozen=True)
class Failed:
    """A valid event the broker did not acknowledge: it may or may not be stored, unless it was
    never sent (`sent` False: refused while the bus was stalled, admission.py)."""

    valid: Valid
    error: str
    sent: bool = True


@dataclass(frozen=True)
class ValidatedBatch:
    valid: list[Valid]
    rejected: list[Rejected]


@dataclass(frozen=True)
class Publication:
    """Which valid events to publish, and which were stored before (earlier post or batch)."""

    publish: list[Valid]
    duplicates: list[Valid]


@dataclass(frozen=True)
class BatchReport:
    """Every event of a batch in exactly one outcome."""

    accepted: list[Valid]  # acknowledged by the broker now
    duplicates: list[Valid]  # stored by an earlier post (or earlier in this batch): not republished
    rejected: list[Rejected]
    failed: list[Failed]
    # held durably in ingest's spool, forwarded to the broker once it acknowledges (spool.py)
    spooled: list[Valid] = field(default_factory=list)

    @property
    def stored_any(self) -> bool:
        return bool(self.accepted or self.duplicates or self.spooled)


def _echo(value: object) -> str | None:
    return value[:MAX_ECHOED_CHARS] if isinstance(value, str) else None


def _problems(error: ValidationError, prefix: str = "") -> list[FieldProblem]:
    return [FieldProblem(f"{prefix}{'.'.join(str(p) for p in e['loc'])}"[:MAX_ECHOED_CHARS],
                         e["msg"])
            for e in error.errors(include_url=False, include_input=False)]


def _bounded(problems: list[FieldProblem]) -> tuple[FieldProblem, ...]:
    if len(problems) <= MAX_PROBLEMS_PER_EVENT:
        return tuple(problems)
    more = len(problems) - MAX_PROBLEMS_PER_EVENT + 1
    return (*problems[:MAX_PROBLEMS_PER_EVENT - 1], FieldProblem("", f"and {more} more problems"))


def validate_event(index: int, raw: object) -> Valid | Rejected:
    """The envelope by Event, the payload by its type's model; every problem is reported at once."""
    if not isinstance(raw, dict):
        return Rejected(index, None, None, (FieldProblem("", "an event must be a JSON object"),))
    problems: list[FieldProblem] = []
    envelope: Event | None = None
    try:
        envelope = Event.model_validate(raw)
    except ValidationError as exc:
        problems += _problems(exc)

    raw_type = raw.get("type")
    event_type = EVENT_TYPES.get(raw_type) if isinstance(raw_type, str) else None
    if event_type is None and not any(p.field == "type" for p in problems):
        problems.append(FieldProblem(
            "type", f"unknown event type {_echo(raw_type)!r}; known: {KNOWN_TYPES}"))

    data: dict[str, Any] | None = None
    raw_data = raw.get("data")
    if event_type is not None and isinstance(raw_data, dict):
        try:
            data = event_type.payload.model_validate(raw_data).model_dump(mode="json")
        except ValidationError as exc:
            problems += _problems(exc, prefix="data.")

    if problems or envelope is None or event_type is None or data is None:
        known = event_type.name if event_type is not None else None
        return Rejected(index, _echo(raw.get("id")), known, _bounded(problems))
    # Publish the payload as its model writes it (canonical types and formats), so consumers
    # read exactly what was validated here.
    event = envelope.model_copy(update={"data": data})
    key = str(data[event_type.key_field])
    return Valid(index, event, event_type, OutboundMessage.of(event_type.topic, key, event))


def validate_batch(raw_events: Sequence[object]) -> ValidatedBatch:
    valid: list[Valid] = []
    rejected: list[Rejected] = []
    for index, raw in enumerate(raw_events):
        outcome = validate_event(index, raw)
        if isinstance(outcome, Valid):
            valid.append(outcome)
        else:
            rejected.append(outcome)
    return ValidatedBatch(valid, rejected)


def plan_publication(valid: Sequence[Valid], stored_before: Collection[str]) -> Publication:
    """An id names one event: the first valid occurrence is published, any later one is a duplicate,
    whatever its data, as is an id the dedupe cache remembers."""
    publish: list[Valid] = []
    duplicates: list[Valid] = []
    planned: set[str] = set()
    for event in valid:
        if event.id in stored_before or event.id in planned:
            duplicates.append(event)
        else:
            planned.add(event.id)
            publish.append(event)
    return Publication(publish, duplicates)


def tally(batch: ValidatedBatch, publication: Publication,
          deliveries: Sequence[Delivery]) -> BatchReport:
    """Each published event is accepted only if its own delivery was acknowledged."""
    accepted: list[Valid] = []
    failed: list[Failed] = []
    for event, delivery in zip(publication.publish, deliveries, strict=True):
        if delivery.ok:
            accepted.append(event)
        else:
            failed.append(Failed(event, delivery.error or "not acknowledged"))
    return BatchReport(accepted, publication.duplicates, batch.rejected, failed)


def refused(batch: ValidatedBatch, publication: Publication, reason: str) -> BatchReport:
    """The report of a batch refused before anything was sent: every event it would have
    published failed, unsent; its duplicates are still stored (an earlier post did it)."""
    return BatchReport([], publication.duplicates, batch.rejected,
                       [Failed(event, reason, sent=False) for event in publication.publish])


def spooled(batch: ValidatedBatch, publication: Publication) -> BatchReport:
    """The report of a batch stored in the spool instead of sent: every event it would have
    published is spooled."""
    return BatchReport([], publication.duplicates, batch.rejected, [],
                       spooled=list(publication.publish))


def spool_failures(report: BatchReport) -> BatchReport:
    """A report whose failed events were then stored in the spool."""
    return BatchReport(report.accepted, report.duplicates, report.rejected, [],
                       spooled=[*report.spooled, *(f.valid for f in report.failed)])
