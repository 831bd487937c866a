"""Ingest's metrics, declared once: events by type and outcome, publish latency, batch sizes,
the spool."""

from __future__ import annotations

from prometheus_client import Histogram

from services.common.telemetry import Metrics
from services.designs.payloads import EVENT_TYPES

OUTCOMES = ("accepted", "duplicate", "rejected", "failed", "shed", "spooled")
UNKNOWN_TYPE = "unknown"  # a rejected event's type label when it names no known type
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class IngestMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.events = metrics.counter(
            "events", "events by type and outcome: accepted, duplicate, rejected, failed, shed "
            "(refused unsent while the bus was stalled), spooled (stored in ingest's spool, "
            "forwarded later)",
            ("type", "outcome"))
        self.publish_duration = metrics.latency(
            "publish_duration_seconds",
            "time from sending a batch to Kafka to every acknowledgement (acks=all), by outcome",
            ("outcome",))
        self.batch_size = Histogram(
            f"{metrics.service}_batch_size_events", "events per posted batch",
            registry=metrics.registry, buckets=BATCH_BUCKETS)
        self.dedupe_errors = metrics.counter(
            "dedupe_errors",
            "dedupe cache calls that failed (events were published without the check)",
            ("operation",))
        self.broker_connected = metrics.gauge(
            "broker_connected", "1 once the Kafka producer is built, 0 before")
        self.spool_forwarded = metrics.counter(
            "spool_forwarded_events", "spooled events the broker acknowledged, by type (each "
            "deleted from the spool after)", ("type",))
        self.spool_depth = metrics.gauge(
            "spool_depth_events", "events held in ingest's spool, waiting for the broker")
        self.spool_oldest_age = metrics.gauge(
            "spool_oldest_age_seconds", "how long the spool's oldest event has waited for the "
            "broker (0 when empty)")
        # Every series exists from the start, so a rate() over a fresh process is 0, not absent.
        for event_type in EVENT_TYPES:
            for outcome in OUTCOMES:
                self.events.labels(event_type, outcome)
            self.spool_forwarded.labels(event_type)
        self.events.labels(UNKNOWN_TYPE, "rejected")
        for operation in ("stored", "remember"):
            self.dedupe_errors.labels(operation)

    def count(self, event_type: str | None, outcome: str, n: int = 1) -> None:
        if n:
            self.events.labels(event_type or UNKNOWN_TYPE, outcome).inc(n)

    def forwarded(self, event_type: str, n: int) -> None:
        self.spool_forwarded.labels(event_type).inc(n)
