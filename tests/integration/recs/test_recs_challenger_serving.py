"""A challenger ranker served to its variation: definitions in the real Redis, the challenger
version loaded on demand from a real model repository by the in-process ONNX runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from services.common.breaker import BreakerSet, CircuitBreaker
from services.common.models import LocalModelClient
from services.common.models.testing import logistic_model
from services.common.telemetry import Metrics
from services.designs.experiments.assignment import assign
from services.designs.experiments.cache import DefinitionCache
from services.designs.experiments.definitions import parse_definition
from services.designs.experiments.store import RedisDefinitionStore
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.recommender.candidates import CandidateSizes
from services.recommender.catalog import LiveCatalog
from services.recommender.metrics import RecommenderMetrics
from services.recommender.service import CacheUse, ListPolicy, RecommenderService
from services.recommender.variants import ExperimentVariant
from tests import recommender_world as world
from tests.support.recs import FakeStore

pytestmark = pytest.mark.integration


def definition(key: str, status: str, treatment: dict[str, Any]) -> Any:
    return parse_definition({
        "key": key, "status": status, "hash_attribute": "user_id", "hash_version": 2,
        "variations": [{"name": "control", "weight": 0.5, "payload": {"algorithm": "ranker"}},
                       {"name": "treatment", "weight": 0.5, "payload": treatment}]})


class Spy(LocalModelClient):
    """The real client, remembering which version each call asked for."""

    asked: list[int | None]

    def predict(self, model_name: str, rows: Any, *, version: int | None = None) -> Any:
        self.asked.append(version)
        return super().predict(model_name, rows, version=version)


def test_the_treatment_is_ranked_by_the_challenger_version_and_the_control_by_production(
        redis_client: redis.Redis, tmp_path: Path) -> None:
    repository = world.repository(tmp_path / "models")      # v1: production, scores cf_score
    challenger = repository.register(                       # v2: the opposite, not promoted
        "ranker", logistic_model([-4.0] + [0.0] * (len(RANKER_FEATURE_NAMES) - 1)),
        feature_names=RANKER_FEATURE_NAMES, metrics={}, training_data_hash="test",
        description="challenger", extra_files={"embeddings.npz": world.embeddings_npz()})
    store = RedisDefinitionStore(redis_client, "it-challenger")
    store.put(definition("rec-algorithm", "stopped", {"algorithm": "blend"}))
    test = definition("ranker-v2-r1", "running",
                      {"algorithm": "ranker", "ranker_version": challenger})
    store.put(test)
    definitions = DefinitionCache(store)
    definitions.refresh()
    users = FakeStore()
    model = Spy(repository, reload_interval_s=None)
    model.asked = []
    catalog = LiveCatalog(repository, "ranker", lambda items: users, 60.0)
    catalog.refresh()
    service = RecommenderService(
        catalog=catalog, store_for=lambda items: users, model=model, model_name="ranker",
        metrics=RecommenderMetrics(Metrics("it_chal")),
        choose_variant=ExperimentVariant(definitions, "rec-algorithm", "treatment", None),
        impressions=None,
        policy=ListPolicy(candidates=CandidateSizes(10, 10, 5), cache_ttl_s=300,
                          default_max_maturity=4, fallback_max_maturity=1),
        redis_breakers=BreakerSet.single("redis", 100), model_breaker=CircuitBreaker("model", 100))

    lists = {}
    for n in range(12):
        user = f"u{n}"
        users.users[user] = world.user(["t0", "t1", "t2", "t3", "t4"], user_id=user)
        answer = service.recommend(user, 5, CacheUse(read=False, write=False))
        assert answer.fallbacks == [] and answer.experiment == "ranker-v2-r1"
        assert answer.variant == assign(test, user).variation
        lists[answer.variant] = [item.content_id for item in answer.items]
    expected = [challenger if assign(test, f"u{n}").variation == "treatment" else None
                for n in range(12)]
    assert model.asked == [1 if v is None else v for v in expected]   # production is v1
    # the same user state, two rankers that disagree: two different lists
    assert set(lists) == {"control", "treatment"} and lists["control"] != lists["treatment"]
    assert len(lists["control"]) == len(lists["treatment"]) == 5
    model.close()
