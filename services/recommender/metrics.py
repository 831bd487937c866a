"""Recommender's metrics, declared once: per-stage time, answers by source, fallbacks, cache."""

from __future__ import annotations

from typing import Literal

from prometheus_client import Histogram

from services.common.telemetry import Metrics

STAGES = ("cache", "features", "candidates", "rank", "rerank", "served_features")
SERVED_FROM = ("cache", "computed", "fallback")
VARIANTS = ("control", "treatment")
FALLBACKS = ("feature_store", "model", "catalog")
CACHE_RESULTS = ("hit", "miss", "error")
TrendingSource = Literal["request", "snapshot"]
TRENDING_SOURCES: tuple[TrendingSource, ...] = ("request", "snapshot")


class RecommenderMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.stage = metrics.latency(
            "stage_duration_seconds",
            "time per stage of one request (cache: lookup; features: the user's one Redis round "
            "trip and vectors; candidates: sources and filter; rank: the ranker call or the "
            "blend; rerank: diversity, rules, explanations; served_features: the listed "
            "titles' ranker features for the impression)", ("stage",))
        self.responses = metrics.counter(
            "responses", "answers by where they came from and the variant that built them",
            ("served_from", "variant"))
        self.fallbacks = metrics.counter(
            "fallbacks", "answers made without a dependency, by the one missing", ("dependency",))
        self.cache = metrics.counter(
            "cache_lookups", "response-cache lookups by result (hit ratio: hit / (hit + miss))",
            ("result",))
        self.trending_heads = metrics.counter(
            "trending_heads", "reads of a user's state by where the trending list's head came "
            "from: request (read with the user's keys), snapshot (its master failed or was "
            "skipped: the catalog snapshot's order, seconds old; the answer is not a fallback)",
            ("source",))
        self.personalization = metrics.counter(
            "personalization", "computed lists by how much history the user had: full, light, "
            "cold", ("level",))
        self.impressions = metrics.counter(
            "impressions_published", "impression events to rec-impressions by outcome: stored, "
            "failed, dropped (the send queue was full)", ("outcome",))
        self.exposures = metrics.counter(
            "exposures", "A/B exposures logged (a unit's first bucketing into an experiment "
            "this process saw), by experiment and variation", ("experiment", "variation"))
        self.candidates = Histogram(
            f"{metrics.service}_candidates", "candidates per computed list (after the filter)",
            registry=metrics.registry, buckets=(10, 50, 100, 150, 200, 250, 300, 400))
        for stage in STAGES:
            self.stage.labels(stage)
        for served in SERVED_FROM:
            for variant in VARIANTS:
                self.responses.labels(served, variant)
        for dependency in FALLBACKS:
            self.fallbacks.labels(dependency)
        for result in CACHE_RESULTS:
            self.cache.labels(result)
        for source in TRENDING_SOURCES:
            self.trending_heads.labels(source)
        for level in ("full", "light", "cold"):
            self.personalization.labels(level)
        for outcome in ("stored", "failed", "dropped"):
            self.impressions.labels(outcome)
