"""Fraud's composition root: the scoring pipeline both entry points run, wired from settings.

    model = fraud_model_client(settings)
    scorer = build_scorer(settings, FraudMetrics(metrics), fraud_store(settings, client), model)
    # the stream scorer adds shadow_version=settings.fraud_shadow_version (a challenger)

The HTTP service (app.py: create_app) and the stream scorer (stream.py: create_stream_app) each
build their own clients and lifecycle around this one scorer, so neither imports the other.
"""

from __future__ import annotations

from services.common.breaker import BreakerSet
from services.common.drift_monitor import DriftMonitor
from services.common.models import ModelClient, ModelRepository, create_model_client
from services.common.redis_client import RedisClient, node_breakers
from services.designs.fraud.copies import StateCopies
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.fraud.metrics import FraudMetrics
from services.fraud.policy_file import PolicyFile
from services.fraud.scorer import FraudScorer, ReferenceCache
from services.fraud.settings import FraudSettings
from services.fraud.state_store import FraudStore, RedisFraudStore


def feature_store_breakers(settings: FraudSettings, client: RedisClient) -> BreakerSet:
    """After fail_max consecutive failures a Redis master (the one Redis server) is skipped for
    reset_s, then one trial call decides whether to close again: an outage costs a few
    deadlines, not every one, and a dead master only the transactions with keys on it."""
    return node_breakers(client, "feature-store", fail_max=settings.fraud_breaker_fail_max,
                         reset_s=settings.fraud_breaker_reset_s)


def fraud_store(settings: FraudSettings, client: RedisClient) -> RedisFraudStore:
    """The card state on this client, behind its breakers, keeping fraud_log_copies."""
    return RedisFraudStore(client, settings.feature_namespace,
                           StateCopies(settings.fraud_log_copies),
                           feature_store_breakers(settings, client))


def fraud_model_client(settings: FraudSettings) -> ModelClient:
    """In process or the model server (MLSD_MODEL_BACKEND); refuses a model whose features are
    not the catalog's FRAUD_FEATURES."""
    return create_model_client(
        settings, expected_features={settings.fraud_model_name: FRAUD_FEATURE_NAMES})


def build_scorer(settings: FraudSettings, metrics: FraudMetrics, store: FraudStore,
                 model: ModelClient, shadow_version: int | None = None) -> FraudScorer:
    """The pipeline both paths share: the policy file (re-read as it changes), the store (behind
    its breakers: fraud_store), the model with its references for ML factors, drift on
    /metrics. Only the stream scorer passes a shadow version: a challenger costs its
    throughput, never the HTTP path's 50 ms."""
    policy = PolicyFile(settings.fraud_policy_path, settings.fraud_policy_check_interval_s,
                        on_reload=lambda outcome: metrics.policy_reloads.labels(outcome).inc())
    repository = (ModelRepository(settings.model_repository)
                  if settings.model_backend == "local" else None)
    return FraudScorer(store=store, model=model, policy=policy.engine,
                       references=ReferenceCache(repository, settings.fraud_model_name),
                       metrics=metrics,
                       model_name=settings.fraud_model_name,
                       idempotency_window_s=settings.fraud_idempotency_window_s,
                       drift=DriftMonitor(repository=repository,
                                          model_name=settings.fraud_model_name,
                                          feature_names=FRAUD_FEATURE_NAMES, metrics=metrics.base,
                                          window=settings.fraud_drift_window),
                       shadow_version=shadow_version)
