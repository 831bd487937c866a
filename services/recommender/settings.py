"""Recommender's settings: the platform's and the models', its address, deadlines, sizes, cache."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from services.common.bus import topics
from services.common.models import ModelSettings
from services.common.settings import workers_field
from services.designs.recs.keys import REC_CACHE_TTL_S


class RecommenderSettings(ModelSettings):
    """MLSD_RECOMMENDER_HOST, MLSD_RECOMMENDER_PORT, ... (and MLSD_MODEL_*, MLSD_REDIS_URL)."""

    service_name: str = Field("recommender", pattern=r"^[a-z][a-z0-9_]*$")
    # One batch call per request either way. In process by default: on this 2-core machine the
    # HTTP hop to the model server costs more CPU than the ranker itself (docs/recommendations.md
    # has the side-by-side run); MLSD_MODEL_BACKEND=remote calls the model server instead.
    model_timeout_s: float = Field(0.05, gt=0, description="one ranker call; past it the blend "
                                                           "answers without the ranker")
    recommender_host: str = "127.0.0.1"
    recommender_port: int = Field(8030, ge=1, le=65535)
    recommender_workers: int = workers_field("recommender_port", 2)
    recommender_http_threads: int = Field(
        4, ge=1, le=200, description="requests scored at once (the rest wait their turn); the "
                                     "work is CPU under one interpreter lock, and 4 threads "
                                     "gave a lower p99 than anyio's 40 (docs/recommendations.md)")
    recommender_model_name: str = "ranker"
    recommender_default_variant: Literal["control", "treatment"] = Field(
        "treatment", description="the algorithm when no experiment assigns one (control: the "
                                 "blend, treatment: the ranker)")
    recommender_experiment: str | None = Field(
        "rec-algorithm", description="the experiment that assigns the algorithm; empty: none")
    recommender_experiments_file: Path = Field(
        Path("config/experiments/experiments.toml"),
        description="definitions used until Redis answers (and stored there when absent)")
    recommender_experiments_refresh_s: float = Field(2.0, gt=0)
    recommender_redis_timeout_s: float = Field(
        0.03, gt=0, le=1, description="deadline of one Redis round trip; past it: fallback")
    recommender_breaker_fail_max: int = Field(5, ge=1)
    recommender_breaker_reset_s: float = Field(5.0, gt=0)
    recommender_stats_refresh_s: float = Field(
        5.0, gt=0, description="how often the popularity and trending snapshot of every title "
                               "is re-read, and the production ranker checked for a new version")
    recommender_cache_ttl_s: int = Field(REC_CACHE_TTL_S, gt=0)
    recommender_cache_enabled: bool = Field(
        True, description="false: every answer computed (to measure the uncached path)")
    recommender_cf_candidates: int = Field(100, ge=1, le=1000)
    recommender_content_candidates: int = Field(50, ge=0, le=1000)
    recommender_trending_candidates: int = Field(50, ge=0, le=1000)
    recommender_default_max_maturity: int = Field(
        4, ge=0, le=4, description="maturity limit of a user without a stored profile (4: R)")
    recommender_fallback_max_maturity: int = Field(
        1, ge=0, le=4, description="Redis down, the profile unknown: only titles up to this "
                                   "level (1: PG), so a kids profile never sees an R title")
    recommender_diversity_weight: float = Field(
        0.1, ge=0, le=1, description="MMR: weight of (1 - genre similarity to the titles "
                                     "already picked), against relevance scaled to [0, 1]")
    recommender_genre_cap_share: float = Field(
        0.7, gt=0, le=1, description="no genre in more than this share of a list (while the "
                                     "candidates allow)")
    recommender_new_release_days: float = Field(
        30.0, ge=0, le=365, description="cold start: one slot for a title released (or added "
                                        "to the catalog) this many days ago at most; 0: none")
    recommender_discovery_slot: bool = Field(
        True, description="one title outside the user's top genres in a personalized list")
    recommender_log_features: bool = Field(
        True, description="each impression carries its listed titles' ranker features as "
                          "served, for training to join clicks to (docs/model-lifecycle.md)")
    recommender_explore_share: float = Field(
        0.05, ge=0, le=1, description="share of computed lists shown in a random order, so "
                                      "logged clicks can tell the slot's effect from the "
                                      "title's (services/recommender/explore.py); 0: none")
    recommender_shadow_version: int | None = Field(
        None, ge=1, description="a registered ranker version scored in shadow on sampled "
                                "requests, never shown (none: no shadow)")
    recommender_shadow_share: float = Field(
        0.1, gt=0, le=1, description="the share of computed, personalized requests the shadow "
                                     "ranker scores")
    recommender_shadow_queue: int = Field(1_000, gt=0, description="shadow jobs waiting; past "
                                                                    "it a job is dropped")
    recommender_impressions_topic: str = topics.REC_IMPRESSIONS
    recommender_publish_queue: int = Field(10_000, gt=0)
    recommender_broker_probe_timeout_s: float = Field(2.0, gt=0)
    recommender_delivery_timeout_s: float = Field(5.0, gt=0, le=60)
