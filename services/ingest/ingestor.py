"""The use case: validate a batch, skip what was stored before, publish the rest (or spool it)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence

from services.common.bus.ports import Delivery, OutboundMessage, Publisher
from services.ingest.admission import AdmissionLimits, InFlight, refusal
from services.ingest.batching import (
    BatchReport,
    Publication,
    Valid,
    ValidatedBatch,
    plan_publication,
    refused,
    spool_failures,
    spooled,
    tally,
    validate_batch,
)
from services.ingest.dedupe import Dedupe, DedupeUnavailable
from services.ingest.errors import NothingValid, NotStored, Shed
from services.ingest.metrics import IngestMetrics
from services.ingest.spool import Spool, SpoolFull

logger = logging.getLogger(__name__)


class Ingestor:
    """Blocking (it waits for the broker, or the spool's fsync): the route runs it on a worker
    thread. With a spool, a batch the bus cannot take now is stored there instead of refused."""

    def __init__(self, publisher: Publisher, dedupe: Dedupe, metrics: IngestMetrics,
                 limits: AdmissionLimits, in_flight: InFlight | None = None,
                 spool: Spool | None = None) -> None:
        self._publisher = publisher
        self._dedupe = dedupe
        self._metrics = metrics
        self._limits = limits
        self._in_flight = in_flight or InFlight()
        self._spool = spool

    def ingest(self, raw_events: Sequence[object]) -> BatchReport:
        """The per-event report; raises NotStored if the broker missed any valid event (and the
        spool could not take it), Shed (a NotStored) if the batch was refused unsent while the
        bus is stalled, and NothingValid if every event was rejected."""
        self._metrics.batch_size.observe(len(raw_events))
        batch = validate_batch(raw_events)
        stored_before = self._stored_before([v.id for v in batch.valid])
        publication = plan_publication(batch.valid, stored_before)
        if publication.publish:
            if self._spool is not None and self._spool.depth():
                # Behind the events already spooled, so each key's events reach the bus in the
                # order they were accepted.
                return self._to_spool(batch, publication, "the spool holds earlier events")
            reason = refusal(self._in_flight.state(), len(publication.publish), self._limits)
            if reason is not None:
                return self._to_spool(batch, publication, reason)
        deliveries = self._publish([v.message for v in publication.publish])
        report = tally(batch, publication, deliveries)
        # Only what the broker acknowledged is remembered: a failed event must be publishable
        # again when the client retries.
        self._remember([v.id for v in report.accepted])
        if report.failed and self._spool is not None:
            report = self._spool_failed(report)
        self._count(report)
        if report.failed:
            logger.warning("events not acknowledged", extra={
                "failed": len(report.failed), "accepted": len(report.accepted),
                "error": report.failed[0].error})
            raise NotStored(report)
        if not report.stored_any:
            raise NothingValid(report)
        return report

    def _to_spool(self, batch: ValidatedBatch, publication: Publication,
                  why: str) -> BatchReport:
        """Store the batch's events in the spool (202), or refuse it (Shed, 503) when there is
        no spool or it is past a bound."""
        problem = why if self._spool is None else self._append(publication.publish)
        if problem is not None:
            report = refused(batch, publication, problem)
            self._count(report)
            raise Shed(report, problem)
        report = spooled(batch, publication)
        # Stored, durably: a retry of these ids is a duplicate, as for an acknowledged event.
        self._remember([v.id for v in report.spooled])
        self._count(report)
        return report

    def _spool_failed(self, report: BatchReport) -> BatchReport:
        """Failed events (sent, not acknowledged: the broker may hold some) go to the spool; a
        copy the broker did store arrives twice, and consumers dedupe by event id."""
        if self._append([f.valid for f in report.failed]) is not None:
            return report
        stored = spool_failures(report)
        self._remember([v.id for v in stored.spooled])
        return stored

    def _append(self, events: Sequence[Valid]) -> str | None:
        """Spool the events; None once they are durable, else why they could not be."""
        assert self._spool is not None
        try:
            self._spool.append([v.message for v in events], [v.event_type.name for v in events])
        except SpoolFull as exc:
            return str(exc)
        except (sqlite3.Error, OSError) as exc:  # a full or broken disk: refuse, never a 2xx
            logger.error("spool write failed", extra={"error": str(exc)})
            return f"the spool could not store the batch ({type(exc).__name__})"
        return None

    def _stored_before(self, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        try:
            return self._dedupe.stored(event_ids)
        except DedupeUnavailable as exc:
            # Never fail a post for the cache: a duplicate may reach Kafka, and consumers
            # dedupe by event id anyway.
            self._dedupe_failed("stored", exc)
            return set()

    def _remember(self, event_ids: list[str]) -> None:
        if not event_ids:
            return
        try:
            self._dedupe.remember(event_ids)
        except DedupeUnavailable as exc:
            self._dedupe_failed("remember", exc)

    def _dedupe_failed(self, operation: str, exc: DedupeUnavailable) -> None:
        self._metrics.dedupe_errors.labels(operation).inc()
        logger.warning("dedupe cache unavailable, publishing without it",
                       extra={"operation": operation, "error": str(exc)})

    def _publish(self, messages: list[OutboundMessage]) -> list[Delivery]:
        if not messages:
            return []
        start = time.perf_counter()
        ticket = self._in_flight.enter(len(messages))
        try:
            deliveries = self._publisher.publish(messages)
        finally:
            self._in_flight.leave(ticket)
        outcome = "ok" if all(d.ok for d in deliveries) else "failed"
        self._metrics.publish_duration.labels(outcome).observe(time.perf_counter() - start)
        return deliveries

    def _count(self, report: BatchReport) -> None:
        for valid in report.accepted:
            self._metrics.count(valid.event_type.name, "accepted")
        for valid in report.duplicates:
            self._metrics.count(valid.event_type.name, "duplicate")
        for valid in report.spooled:
            self._metrics.count(valid.event_type.name, "spooled")
        for failed in report.failed:
            self._metrics.count(failed.valid.event_type.name, "failed" if failed.sent else "shed")
        for rejected in report.rejected:
            self._metrics.count(rejected.type, "rejected")
