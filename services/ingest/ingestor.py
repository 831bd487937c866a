"""The use case: validate a batch, skip what was stored before, publish the rest, wait for acks."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from services.common.bus.ports import Delivery, OutboundMessage, Publisher
from services.ingest.admission import AdmissionLimits, InFlight, refusal
from services.ingest.batching import (
    BatchReport,
    plan_publication,
    refused,
    tally,
    validate_batch,
)
from services.ingest.dedupe import Dedupe, DedupeUnavailable
from services.ingest.errors import NothingValid, NotStored, Shed
from services.ingest.metrics import IngestMetrics

logger = logging.getLogger(__name__)


class Ingestor:
    """Blocking (it waits for the broker): the route runs it on a worker thread."""

    def __init__(self, publisher: Publisher, dedupe: Dedupe, metrics: IngestMetrics,
                 limits: AdmissionLimits, in_flight: InFlight | None = None) -> None:
        self._publisher = publisher
        self._dedupe = dedupe
        self._metrics = metrics
        self._limits = limits
        self._in_flight = in_flight or InFlight()

    def ingest(self, raw_events: Sequence[object]) -> BatchReport:
        """The per-event report; raises NotStored if the broker missed any valid event, Shed
        (a NotStored) if the batch was refused unsent while the bus is stalled, and NothingValid
        if every event was rejected."""
        self._metrics.batch_size.observe(len(raw_events))
        batch = validate_batch(raw_events)
        stored_before = self._stored_before([v.id for v in batch.valid])
        publication = plan_publication(batch.valid, stored_before)
        if publication.publish:
            reason = refusal(self._in_flight.state(), len(publication.publish), self._limits)
            if reason is not None:
                report = refused(batch, publication, reason)
                self._count(report)
                raise Shed(report, reason)
        deliveries = self._publish([v.message for v in publication.publish])
        report = tally(batch, publication, deliveries)
        # Only what the broker acknowledged is remembered: a failed event must be publishable
        # again when the client retries.
        self._remember([v.id for v in report.accepted])
        self._count(report)
        if report.failed:
            logger.warning("events not acknowledged", extra={
                "failed": len(report.failed), "accepted": len(report.accepted),
                "error": report.failed[0].error})
            raise NotStored(report)
        if not report.stored_any:
            raise NothingValid(report)
        return report

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
        for failed in report.failed:
            self._metrics.count(failed.valid.event_type.name, "failed" if failed.sent else "shed")
        for rejected in report.rejected:
            self._metrics.count(rejected.type, "rejected")
