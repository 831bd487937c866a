"""The experiments service's metrics, declared once: assignments, exposures, refreshes,
guardrail stops."""

from __future__ import annotations

from services.common.telemetry import Metrics
from services.designs.experiments.assignment import Assignment
from services.designs.experiments.exposures import Outcome as ExposureOutcome

NOT_IN = "none"  # the variation label of an assignment that puts the unit in no variation


class ExperimentsMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.assignments = metrics.counter(
            "assignments", "assignments answered, by experiment and variation (none: the unit "
            "is in no variation)", ("experiment", "variation"))
        self.exposures = metrics.counter(
            "exposures", "exposure events queued for the exposures topic (first exposure of a "
            "bucketed unit), by experiment and variation", ("experiment", "variation"))
        self.exposures_skipped = metrics.counter(
            "exposures_skipped", "exposures not queued: duplicate (logged before), dropped (the "
            "send queue was full)", ("reason",))
        self.published = metrics.counter(
            "exposures_published", "exposure events by broker outcome: stored, failed, dropped",
            ("outcome",))
        self.refreshes = metrics.counter(
            "definition_refreshes", "definition refreshes from Redis: loaded (a new version), "
            "unchanged, failed (the last good set stays)", ("outcome",))
        self.definitions_age = metrics.gauge(
            "definitions_age_seconds", "seconds since Redis last answered a definitions refresh "
            "(-1: never)")
        self.guardrail_stops = metrics.counter(
            "guardrail_stops", "experiments stopped by a breached guardrail, by experiment and "
            "metric", ("experiment", "metric"))
        for reason in ("duplicate", "dropped"):
            self.exposures_skipped.labels(reason)
        for outcome in ("stored", "failed", "dropped"):
            self.published.labels(outcome)
        for outcome in ("loaded", "unchanged", "failed"):
            self.refreshes.labels(outcome)

    def assigned(self, assignment: Assignment) -> None:
        self.assignments.labels(assignment.experiment, assignment.variation or NOT_IN).inc()

    def recorded(self, assignment: Assignment, outcome: ExposureOutcome) -> None:
        if outcome == "logged":
            assert assignment.variation is not None
            self.exposures.labels(assignment.experiment, assignment.variation).inc()
        elif outcome in ("duplicate", "dropped"):
            self.exposures_skipped.labels(outcome).inc()
