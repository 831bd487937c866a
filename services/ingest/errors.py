"""What can go wrong with a post, as domain errors; app.py maps each to its HTTP status once."""

from __future__ import annotations

from collections.abc import Sequence

from services.ingest.batching import BatchReport, FieldProblem


class IngestError(Exception):
    """Base of every error ingest answers with a 4xx or a 503."""


class BodyTooLarge(IngestError):
    """The body is over the byte limit (HTTP 413), found before its JSON is parsed."""


class BatchTooLarge(IngestError):
    """The batch has more events than allowed (HTTP 413), found before any is validated."""


class UnsupportedEncoding(IngestError):
    """A Content-Encoding ingest does not undo (HTTP 415)."""


class MalformedBody(IngestError):
    """The body is not JSON (HTTP 400)."""


class InvalidBatch(IngestError):
    """The body is JSON but not a batch: no `events` list, or an empty one (HTTP 422)."""

    def __init__(self, message: str, problems: Sequence[FieldProblem]) -> None:
        super().__init__(message)
        self.problems = list(problems)


class NothingValid(IngestError):
    """Every event of the batch was rejected (HTTP 422 with the per-event report)."""

    def __init__(self, report: BatchReport) -> None:
        super().__init__("no event of the batch is valid")
        self.report = report


class NotStored(IngestError):
    """The broker did not acknowledge some valid events (HTTP 503 Retry-After, per-event report)."""

    def __init__(self, report: BatchReport,
                 message: str = "the event bus did not acknowledge every valid event; retry "
                                "the batch (events stored already come back as duplicates)"
                 ) -> None:
        super().__init__(message)
        self.report = report


class Shed(NotStored):
    """Refused before sending: the bus is not acknowledging (HTTP 503 Retry-After, per-event
    report); a retry after Retry-After is the client's way through."""

    def __init__(self, report: BatchReport, reason: str) -> None:
        super().__init__(report, f"ingest is refusing new writes for now: {reason}; retry the "
                                 "batch after Retry-After (events stored already come back as "
                                 "duplicates)")
        self.reason = reason
