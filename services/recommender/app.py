"""Recommender's composition root: settings in; catalog, feature store, model, impressions wired."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI

from services.common.breaker import CircuitBreaker
from services.common.bus.deferred import off_path_publishing
from services.common.bus.ports import Publisher
from services.common.drift_monitor import DriftMonitor
from services.common.http import create_service_app
from services.common.models import ModelClient, ModelRepository, create_model_client
from services.common.models.errors import ModelError
from services.common.redis_client import (
    async_request_path_redis,
    background_redis,
    node_breakers,
    node_of,
    request_path_redis,
)
from services.common.redis_scripts import warm
from services.common.telemetry import Metrics
from services.designs.experiments.cache import DefinitionCache
from services.designs.experiments.definitions import load_definitions_file
from services.designs.experiments.exposures import ExposureLog
from services.designs.experiments.store import RedisDefinitionStore
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.designs.recs.keys import history_key, trending_key
from services.designs.recs.list_cache import RedisListCache
from services.designs.recs.redis_store import CACHE_PUT
from services.designs.recs.titles import RedisCatalogTitles
from services.recommender.api import router
from services.recommender.candidates import CandidateSizes
from services.recommender.catalog import LiveCatalog, store_factory
from services.recommender.impressions import ImpressionLog
from services.recommender.metrics import RecommenderMetrics
from services.recommender.rerank import RerankPolicy
from services.recommender.service import ListPolicy, RecommenderService
from services.recommender.settings import RecommenderSettings
from services.recommender.shadow import ShadowMetrics, ShadowRanker
from services.recommender.variants import ExperimentVariant, VariantChooser, fixed_variant

logger = logging.getLogger(__name__)

# Rows of each request the drift window keeps: a request scores ~160 candidates of one user, and
# the 10,000-row window of whole requests held ~60 users, too few for the one-value-a-user
# columns (services/common/drift_monitor.py); 10 a request spread it over 1,000 users.
DRIFT_ROWS_PER_REQUEST = 10


def breaker(name: str, settings: RecommenderSettings) -> CircuitBreaker:
    """After fail_max consecutive failures the dependency is skipped for reset_s, then one trial
    call decides: an outage costs a few deadlines, not one per request."""
    return CircuitBreaker(name, fail_max=settings.recommender_breaker_fail_max,
                          reset_s=settings.recommender_breaker_reset_s)


def shadow_ranker(settings: RecommenderSettings, model: ModelClient,
                  metrics: ShadowMetrics) -> ShadowRanker | None:
    """The candidate in shadow, if one is named; a version the registry does not hold is a
    configuration error, refused at start rather than counted as failures forever."""
    version = settings.recommender_shadow_version
    if version is None:
        return None
    registered = ModelRepository(settings.model_repository).versions(
        settings.recommender_model_name)
    if version not in registered:
        raise ValueError(f"MLSD_RECOMMENDER_SHADOW_VERSION={version}: "
                         f"{settings.recommender_model_name} has versions {registered}")
    return ShadowRanker(model=model, model_name=settings.recommender_model_name,
                        version=version, share=settings.recommender_shadow_share,
                        metrics=metrics, capacity=settings.recommender_shadow_queue)


def create_app(settings: RecommenderSettings, *, model: ModelClient | None = None,
               publisher: Publisher | None = None,
               choose_variant: VariantChooser | None = None) -> FastAPI:
    """The service; tests may pass a model client, a publisher or a variant chooser they own."""
    metrics = Metrics(settings.service_name)
    rec_metrics = RecommenderMetrics(metrics)
    request_redis = request_path_redis(settings, settings.recommender_redis_timeout_s)
    refresh_redis = background_redis(settings)
    # The cache hit's read, made on the event loop (its connections open on the server's loop).
    list_cache = RedisListCache(
        async_request_path_redis(settings, settings.recommender_redis_timeout_s),
        settings.feature_namespace)
    own_model = model is None
    model = model or create_model_client(
        settings, expected_features={settings.recommender_model_name: RANKER_FEATURE_NAMES})
    catalog = LiveCatalog(ModelRepository(settings.model_repository),
                          settings.recommender_model_name,
                          store_factory(refresh_redis, settings.feature_namespace),
                          settings.recommender_stats_refresh_s,
                          RedisCatalogTitles(refresh_redis, settings.feature_namespace))
    publishing = off_path_publishing(
        settings, publisher, topic=settings.recommender_impressions_topic,
        capacity=settings.recommender_publish_queue,
        probe_timeout_s=settings.recommender_broker_probe_timeout_s,
        delivery_timeout_s=settings.recommender_delivery_timeout_s,
        on_outcome=lambda outcome, n: rec_metrics.impressions.labels(outcome).inc(n))
    impressions = publishing.queue
    definitions: DefinitionCache | None = None
    if choose_variant is None and settings.recommender_experiment:
        in_file = load_definitions_file(settings.recommender_experiments_file)
        definitions = DefinitionCache(
            RedisDefinitionStore(refresh_redis, settings.feature_namespace),
            settings.recommender_experiments_refresh_s, seed=in_file, fallback=in_file)
        choose_variant = ExperimentVariant(
            definitions, settings.recommender_experiment, settings.recommender_default_variant,
            ExposureLog(request_redis, impressions, settings.feature_namespace,
                        source="recommender"),
            lambda experiment, variation: rec_metrics.exposures.labels(experiment,
                                                                       variation).inc())
    # A breaker per master, placed by the user's keys; the trending list, which every read
    # includes, by its own key (on a cluster it lives on one master for every user).
    redis_breakers = node_breakers(
        request_redis, "feature-store", settings.recommender_breaker_fail_max,
        settings.recommender_breaker_reset_s,
        key_of=lambda user_id: history_key(user_id, settings.feature_namespace))
    trending = trending_key(settings.feature_namespace)
    # Declared with or without a shadow: its series read 0 rather than vanish between runs.
    shadow = shadow_ranker(settings, model, ShadowMetrics(metrics))
    service = RecommenderService(
        catalog=catalog,
        store_for=store_factory(request_redis, settings.feature_namespace),
        model=model, model_name=settings.recommender_model_name, metrics=rec_metrics,
        choose_variant=choose_variant or fixed_variant(settings.recommender_default_variant),
        impressions=ImpressionLog(impressions, settings.recommender_impressions_topic),
        policy=ListPolicy(
            candidates=CandidateSizes(settings.recommender_cf_candidates,
                                      settings.recommender_content_candidates,
                                      settings.recommender_trending_candidates),
            default_max_maturity=settings.recommender_default_max_maturity,
            fallback_max_maturity=settings.recommender_fallback_max_maturity,
            cache_ttl_s=settings.recommender_cache_ttl_s,
            rerank=RerankPolicy(settings.recommender_diversity_weight,
                                settings.recommender_genre_cap_share,
                                settings.recommender_discovery_slot),
            new_release_days=settings.recommender_new_release_days,
            cache_enabled=settings.recommender_cache_enabled,
            log_features=settings.recommender_log_features,
            explore_share=settings.recommender_explore_share),
        redis_breakers=redis_breakers,
        trending_part=lambda: redis_breakers.located(node_of(request_redis, trending)),
        model_breaker=breaker("model", settings), shadow=shadow, list_cache=list_cache,
        # The experiment's chooser may log an exposure (Redis); the fixed default does no I/O.
        settled_variant=(choose_variant.settled if isinstance(choose_variant, ExperimentVariant)
                         else None),
        drift=DriftMonitor(repository=ModelRepository(settings.model_repository),
                           model_name=settings.recommender_model_name,
                           feature_names=RANKER_FEATURE_NAMES, metrics=metrics,
                           rows_per_call=DRIFT_ROWS_PER_REQUEST))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if publishing.connection is not None:
            publishing.connection.start()
        catalog.start()
        if definitions is not None:
            definitions.start()
        # before ready: Redis's connections and script, and the ranker loaded and run once
        # (loaded on a worker's first personal list otherwise, on that request's clock)
        warm(request_redis, (CACHE_PUT,))
        warm_ranker(model, settings.recommender_model_name)
        logger.info("recommender started", extra={"model_loaded": catalog.loaded})
        try:
            yield
        finally:
            catalog.close()
            if definitions is not None:
                definitions.close()
            impressions.close()  # sends what is queued, then closes the deferred publisher
            if shadow is not None:
                shadow.close()
            if own_model:
                model.close()
            request_redis.close()
            await list_cache.close()
            refresh_redis.close()

    # Ready once a ranker's artifacts are loaded: without them there is no catalog to rank.
    app = create_service_app(title="recommender", metrics=metrics, lifespan=lifespan,
                             blas_threads=settings.blas_threads,
                             gc_young_threshold=settings.gc_young_threshold,
                             max_connection_age_s=settings.http_max_connection_age_s,
                             threads=settings.recommender_http_threads,
                             readiness={"catalog": lambda: catalog.loaded})
    app.state.settings = settings
    app.state.recommender = service
    app.include_router(router)
    return app


def warm_ranker(model: ModelClient, name: str) -> None:
    """The ranker loaded and run once on a row of zeros; without one (a stack with no trained
    ranker), the service starts and blends as it would have."""
    try:
        model.predict(name, np.zeros((1, len(RANKER_FEATURE_NAMES)), dtype=np.float32))
    except ModelError as exc:
        logger.warning("ranker not warmed", extra={"model": name, "error": str(exc)})
