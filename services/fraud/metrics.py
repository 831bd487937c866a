"""Fraud's metrics, declared once: per-stage time, decisions by action, rule hits, degradations."""

from __future__ import annotations

from prometheus_client import Histogram

from services.common.telemetry import Metrics

STAGES = ("features", "rules", "model", "decide", "shadow", "explain", "record")
PATHS = ("http", "stream")
ACTIONS = ("approve", "review", "decline")
DEPENDENCIES = ("features", "model")
SHADOW_OUTCOMES = ("agreed", "disagreed", "failed")
RISK_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class FraudMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.base = metrics  # for parts that declare their own (the drift monitor)
        self.stage = metrics.latency(
            "stage_duration_seconds",
            "time per scoring stage (features: the Redis round trip and the vector; rules; model: "
            "one ONNX call with its explanation rows; decide: combination and idempotency record)"
            "; one observation per call, which is one transaction on http and a batch on stream",
            ("stage", "path"))
        self.decisions = metrics.counter(
            "decisions", "decisions by action and path", ("action", "path"))
        self.risk = Histogram(
            f"{metrics.service}_risk_score", "risk score of each decision",
            registry=metrics.registry, buckets=RISK_BUCKETS)
        self.rule_hits = metrics.counter("rule_hits", "rules fired, by rule id", ("rule",))
        self.degraded = metrics.counter(
            "degraded_decisions", "decisions made without a dependency, by the one missing",
            ("dependency",))
        self.replays = metrics.counter(
            "idempotent_replays", "requests answered with the decision already made for their id")
        self.policy_reloads = metrics.counter(
            "policy_reloads", "policy file reloads by outcome: loaded, refused", ("outcome",))
        self.published = metrics.counter(
            "decisions_published", "decision events to fraud-decisions by outcome: stored, "
            "failed, dropped (the send queue was full)", ("outcome",))
        self.shadow = metrics.counter(
            "shadow_decisions", "transactions the shadow challenger also scored (never acted "
            "on), by whether its action agreed with production's; failed: it did not answer",
            ("outcome",))
        self.batch_size = Histogram(
            f"{metrics.service}_batch_size_transactions", "transactions per scored batch",
            ("path",), registry=metrics.registry, buckets=(1, 10, 50, 100, 200, 500, 1000))
        for stage in STAGES:
            for path in PATHS:
                self.stage.labels(stage, path)
        for action in ACTIONS:
            for path in PATHS:
                self.decisions.labels(action, path)
        for dependency in DEPENDENCIES:
            self.degraded.labels(dependency)
        for outcome in ("loaded", "refused"):
            self.policy_reloads.labels(outcome)
        for outcome in ("stored", "failed", "dropped"):
            self.published.labels(outcome)
        for outcome in SHADOW_OUTCOMES:
            self.shadow.labels(outcome)
