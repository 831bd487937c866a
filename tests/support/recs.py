"""Recommender test fakes: the online store, the ranker, the impressions log, and a service rig."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import redis

from services.common.breaker import BreakerSet, CircuitBreaker
from services.common.features import FeatureStoreUnavailable
from services.common.models import Prediction
from services.common.models.errors import ModelUnavailable
from services.common.telemetry import Metrics
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.redis_store import TRENDING_TOP_N
from services.designs.recs.state import ItemStats, UserOnlineState
from services.recommender.candidates import CandidateSizes
from services.recommender.catalog import LiveCatalog
from services.recommender.metrics import RecommenderMetrics
from services.recommender.schemas import (
    ServedList,
)
from services.recommender.service import ListPolicy, RecommenderService
from services.recommender.variants import Assignment, fixed_variant
from tests import recommender_world as world


class FakeStore:
    """The online state in dicts; `down` makes every call fail like a dead Redis.

    As on a cluster, a user's keys and the trending list can live on different masters
    (`master_of(user_id)`, `trending_master`): a read reaching a master in `refusing` fails as a
    dead one does (a refused connection), in `slow` as a slow one does (a timeout)."""

    def __init__(self) -> None:
        self.users: dict[str, UserOnlineState] = {}
        self.cache: dict[tuple[str, int], bytes] = {}
        self.stats = world.stats()
        self.down = False
        self.reads = 0
        self.head_reads = 0   # reads that asked for the trending head
        self.master_of: Callable[[str], str] = lambda user_id: "redis"
        self.trending_master = "redis"
        self.refusing: set[str] = set()
        self.slow: set[str] = set()

    def _check(self) -> None:
        if self.down:
            raise FeatureStoreUnavailable("redis did not answer: connection refused")

    def _reach(self, masters: set[str]) -> None:
        if masters & self.refusing:
            raise FeatureStoreUnavailable("redis did not answer: connection refused") \
                from redis.ConnectionError("Connection refused")
        if masters & self.slow:
            raise FeatureStoreUnavailable("redis did not answer: Timeout reading from socket") \
                from redis.TimeoutError("Timeout reading from socket")

    def read_user(self, user_id: str, trending_n: int = TRENDING_TOP_N) -> UserOnlineState:
        self._check()
        self.head_reads += trending_n > 0
        self._reach({self.master_of(user_id), *([self.trending_master] if trending_n else [])})
        self.reads += 1
        state = self.users.get(user_id, UserOnlineState(user_id, (), 0, None, ()))
        return state if trending_n else replace(state, trending=())

    def cached_recommendations(self, user_id: str, k: int) -> bytes | None:
        self._check()
        return self.cache.get((user_id, k))

    def cache_recommendations(self, user_id: str, k: int, payload: bytes, ttl_s: int,
                              if_watch_count: int | None) -> bool:
        self._check()
        current = self.users.get(user_id)
        if if_watch_count is not None and (current.watch_count if current else 0) != if_watch_count:
            return False
        self.cache[(user_id, k)] = payload
        return True

    def read_item_stats(self, now_s: float) -> ItemStats:
        self._check()
        return self.stats


class FakeModel:
    """The ranker: p = sigmoid(4 x cf_score), or down."""

    def __init__(self) -> None:
        self.down = False
        self.calls: list[tuple[int, int | None]] = []
        self.rows: list[Any] = []

    def predict(self, model_name: str, rows: Any, *, version: int | None = None) -> Prediction:
        if self.down:
            raise ModelUnavailable("model server did not answer")
        self.calls.append((len(rows), version))
        self.rows.append(rows)
        p1 = 1 / (1 + np.exp(-4.0 * rows[:, 0]))
        probabilities = np.column_stack([1 - p1, p1])
        return Prediction(model_name, version or 1, {"probabilities": probabilities})

    def ready(self, model_name: str) -> bool:
        return not self.down

    def close(self) -> None:
        pass


class FakeImpressions:
    def __init__(self) -> None:
        self.recorded: list[tuple[ServedList, str, Assignment]] = []
        self.latencies_ms: list[float] = []

    def record(self, listed: ServedList, request_id: str, assignment: Assignment,
               latency_ms: float) -> None:
        self.recorded.append((listed, request_id, assignment))
        self.latencies_ms.append(latency_ms)


class FakeListCache:
    """The event loop's read of the same cache FakeStore keeps."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.reads = 0
        self.late = False    # as an event loop held up past the deadline: a timeout

    async def cached_recommendations(self, user_id: str, k: int) -> bytes | None:
        self.reads += 1
        if self.late:
            raise FeatureStoreUnavailable("redis did not answer: Timeout reading from socket")
        return self.store.cached_recommendations(user_id, k)


class Rig:
    def __init__(self, root: Path, variant: str = "treatment", explore_share: float = 0.0,
                 on_loop: bool = False,
                 settled_variant: Callable[[str], Assignment | None] | None = None,
                 redis_fail_max: int = 100, masters: Callable[[str], str] | None = None,
                 trending_master: str | None = None) -> None:
        """`masters` (user id -> master) and `trending_master`: a cluster's breakers, one per
        master, the store's keys placed alike; without them one server and one breaker."""
        self.store = FakeStore()
        self.list_cache = FakeListCache(self.store) if on_loop else None
        self.model = FakeModel()
        self.impressions = FakeImpressions()
        self.redis_breakers = BreakerSet.single("redis", redis_fail_max)
        self.redis_breaker = self.redis_breakers.part("redis")  # the one breaker of every user
        trending_part = None
        if masters is not None and trending_master is not None:
            self.redis_breakers = BreakerSet("redis", masters, redis_fail_max)
            self.store.master_of, self.store.trending_master = masters, trending_master
            trending_part = lambda: trending_master  # noqa: E731
        self.registry = Metrics("recommender_test")
        self.metrics = RecommenderMetrics(self.registry)
        self.catalog = LiveCatalog(world.repository(root), "ranker", self._store_for, 60.0)
        self.catalog.refresh()
        self.service = RecommenderService(
            catalog=self.catalog, store_for=self._store_for, model=self.model,
            model_name="ranker", metrics=self.metrics, choose_variant=fixed_variant(variant),
            impressions=self.impressions,  # type: ignore[arg-type]
            policy=ListPolicy(candidates=CandidateSizes(10, 10, 5), cache_ttl_s=300,
                              default_max_maturity=4, fallback_max_maturity=1,
                              explore_share=explore_share),
            redis_breakers=self.redis_breakers,
            model_breaker=CircuitBreaker("model", 100), list_cache=self.list_cache,
            settled_variant=settled_variant, trending_part=trending_part)

    def _store_for(self, items: ItemArtifacts) -> FakeStore:
        return self.store

    def count(self, name: str, **labels: str) -> float:
        value = self.registry.registry.get_sample_value(f"recommender_test_{name}", labels)
        return value or 0.0
