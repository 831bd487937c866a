"""The use case: one user's list, through cache, features, candidates, rank and rerank.

    cache ──hit──▶ answer      (from_cache: on the event loop, the stored bytes as the body)
      │miss                   (recommend: the rest, in a thread)
    features: read_user (one Redis round trip) ─ down ─▶ popular snapshot (fallback)
      │        the trending head's master down ─▶ the user's keys alone, the snapshot's trending
      │
    candidates: collaborative · content · trending (cold: popular + trending + new) → filter
      │
    rank: control = weighted blend │ treatment = ranker on the model server ─ down ─▶ blend
      │
    rerank: MMR diversity, genre cap, discovery slot → explanations → cache, impression

Every dependency failure degrades the answer and is named in `fallbacks`; nothing raises.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import numpy as np
from pydantic import ValidationError

from services.common.arrays import BoolArray, Float32Array, FloatArray, IntArray
from services.common.breaker import BreakerSet, CircuitBreaker, CircuitOpen
from services.common.drift_monitor import DriftMonitor
from services.common.features import FeatureStoreUnavailable
from services.common.models import ModelClient
from services.common.models.errors import ModelError
from services.common.redis_client import UNCOVERED, refused
from services.designs.recs.features import ranker_features
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.redis_store import TRENDING_TOP_N
from services.designs.recs.state import (
    ItemStats,
    UserOnlineState,
    UserVectors,
    trending_rows,
    trending_values,
    user_vectors,
)
from services.recommender.candidates import (
    Candidates,
    CandidateSizes,
    Source,
    collaborative_scores,
    content_scores,
    eligible_mask,
    new_releases,
    ordered_eligible,
    top_eligible,
    union,
)
from services.recommender.catalog import CatalogSnapshot, LiveCatalog
from services.recommender.explain import explain_all
from services.recommender.explore import explored, shuffled_order
from services.recommender.impressions import ImpressionLog, served_features
from services.recommender.metrics import RecommenderMetrics, TrendingSource
from services.recommender.rerank import (
    RerankPolicy,
    min_max,
    mmr,
    with_discovery_slot,
    with_new_release_slot,
)
from services.recommender.schemas import (
    Fallback,
    RecommendationsResponse,
    RecommendedItem,
    ServedFrom,
    ServedList,
    cached_response_json,
)
from services.recommender.scoring import Personalization, blend, personalization
from services.recommender.shadow import ShadowJob, ShadowRanker
from services.recommender.variants import Assignment, VariantChooser

logger = logging.getLogger(__name__)

POPULAR_POOL = 200  # the fallback and cold-start pool, before the rerank
NEW_RELEASE_POOL = 20  # the newest releases a cold-start list may take one of
RERANK_POOL_PER_SLOT = 5  # MMR chooses among the 5k most relevant candidates (at least 50)
RERANK_POOL_MIN = 50


def explained_items(items: ItemArtifacts, found: Candidates, positions: IntArray,
                    relevance: FloatArray, discovery: frozenset[int], watched: IntArray,
                    cold: bool) -> list[RecommendedItem]:
    """The picked candidates (positions into `found`, in list order) as the API shows them."""
    rows = found.rows[positions]
    explained = explain_all(rows, [found.sources[p] for p in positions],
                            [p in discovery for p in positions.tolist()], watched, items, cold)
    return [RecommendedItem(content_id=items.title_ids[row], title=items.name(row),
                            genres=items.genres_of(row), score=round(float(relevance[p]), 6),
                            recommendation_type=why.type, explanation=why.text)
            for row, p, why in zip(rows.tolist(), positions.tolist(), explained, strict=True)]


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1e3, 3)


def _ready(rows: Float32Array) -> Callable[[], Float32Array]:
    return lambda: rows


def _title_ids(items: ItemArtifacts, rows: IntArray) -> list[str]:
    return [items.title_ids[row] for row in rows.tolist()]


def ranker_for(assignment: Assignment, production: int) -> int | None:
    """The ranker version that orders this assignment's lists: the challenger a variation
    names, else production's; None for the blend."""
    if assignment.algorithm != "ranker":
        return None
    return assignment.ranker_version if assignment.ranker_version is not None else production


def built_as_now(listed: ServedList, ranker: int | None, artifacts: str) -> bool:
    """Whether a stored list is what the user would get now: built on the same ranker
    artifacts (`artifacts`: ItemArtifacts.ranker_digest; candidates and features come from
    them) and ordered by the ranker that would order it now (`ranker`, None: the blend). Not
    the experiment's name: after a promotion, the lists the challenger built for its treatment
    are production's answer; a list the old production ranker built is a miss in every arm.

    A cold list is ordered by no ranker in either arm (the blend of popularity and trending), and
    stays cold while it lives: the user's first watch deletes it. Catalog titles merged in since
    do not invalidate a list (they did not before either): it shows them when it expires."""
    if not listed.artifacts or listed.artifacts != artifacts:
        return False
    if listed.personalization == "cold":
        return listed.ranked_by is None
    return listed.ranked_by == ranker


def as_assigned(listed: ServedList, assignment: Assignment) -> ServedList:
    """The list under this request's experiment and variant (a list another experiment's arm
    built stays the same list; the answer and the metrics say the user's arm now)."""
    if (listed.variant, listed.experiment) == (assignment.variant, assignment.experiment):
        return listed
    return listed.model_copy(update={"variant": assignment.variant,
                                     "experiment": assignment.experiment})


class UserStore(Protocol):
    """What a request needs from the online state (RedisRecsStore; a fake in unit tests)."""

    def read_user(self, user_id: str, trending_n: int = TRENDING_TOP_N) -> UserOnlineState:
        """`trending_n=0`: the user's keys alone, without the trending head."""
        ...

    def cached_recommendations(self, user_id: str, k: int) -> bytes | None: ...

    def cache_recommendations(self, user_id: str, k: int, payload: bytes, ttl_s: int,
                              if_watch_count: int | None) -> bool: ...


class ListCache(Protocol):
    """The response cache read on the event loop (RedisListCache; a fake in unit tests)."""

    async def cached_recommendations(self, user_id: str, k: int) -> bytes | None: ...


@dataclass(frozen=True)
class CacheUse:
    """What one request lets the response cache do: a client's `Cache-Control: no-cache` asks
    for a list computed now (read: False), `no-store` for one not kept (write: False)."""

    read: bool = True
    write: bool = True

    @classmethod
    def from_header(cls, cache_control: str | None) -> CacheUse:
        directives = {part.strip().lower().split("=", 1)[0]
                      for part in (cache_control or "").split(",")}
        return cls(read="no-cache" not in directives, write="no-store" not in directives)


@dataclass(frozen=True)
class CacheLookup:
    """What the event loop did with a request: answered it (`body`), or hands it to recommend()
    with `then`, which no longer reads the cache if the loop has read it already, and `part`,
    the master of the user's keys if the loop has placed them (None: recommend() places them)."""

    body: bytes | None
    then: CacheUse
    part: str | None = None


@dataclass(frozen=True, kw_only=True)
class ListPolicy:
    """How a list is built and kept: candidates per source, maturity limits, the rerank, the
    cold-start slot, the list cache, and what each impression carries."""

    candidates: CandidateSizes
    default_max_maturity: int    # a user without a stored profile
    fallback_max_maturity: int   # Redis down: the profile is unknown, so a list anyone may see
    cache_ttl_s: int             # a cached list's life
    rerank: RerankPolicy = field(default_factory=RerankPolicy)
    new_release_days: float = 30.0  # cold start: one slot for a title out this recently (0: off)
    cache_enabled: bool = True
    log_features: bool = True  # impressions carry the listed titles' ranker features
    explore_share: float = 0.0  # lists shown in a random order (services/recommender/explore.py)


class RecommenderService:
    def __init__(self, *, catalog: LiveCatalog, store_for: Callable[[ItemArtifacts], UserStore],
                 model: ModelClient, model_name: str, metrics: RecommenderMetrics,
                 choose_variant: VariantChooser, impressions: ImpressionLog | None,
                 policy: ListPolicy, redis_breakers: BreakerSet,
                 model_breaker: CircuitBreaker, shadow: ShadowRanker | None = None,
                 drift: DriftMonitor | None = None, list_cache: ListCache | None = None,
                 settled_variant: Callable[[str], Assignment | None] | None = None,
                 trending_part: Callable[[], str] | None = None) -> None:
        """`list_cache`: the cache read from_cache() makes (None: every request takes
        recommend()); `settled_variant`: the assignment when choosing it costs no I/O, else
        None (ExperimentVariant.settled); without one, `choose_variant` must do no I/O.
        `redis_breakers` place user ids (a user's keys share one master); `trending_part`
        names the part (master) holding the trending list, asked per request as a failover
        moves it (None: the list shares every user's breaker, as on one server)."""
        self.catalog = catalog
        self._store_for = store_for
        self._model = model
        self._model_name = model_name
        self._metrics = metrics
        self._choose = choose_variant
        self._impressions = impressions
        self._policy = policy
        self._redis_breakers = redis_breakers  # by user: a user's keys share one master
        self._model_breaker = model_breaker
        self._shadow = shadow
        self._drift = drift
        self._list_cache = list_cache
        self._settled = settled_variant or choose_variant
        self._trending_part = trending_part

    # --- the use case ------------------------------------------------------------------------
    async def from_cache(self, user_id: str, k: int, cache: CacheUse) -> CacheLookup:
        """A cache hit, answered on the event loop: one async read, and the stored bytes are the
        body (no thread hop, no response model). The same checks, metrics, impression and
        exposure as recommend()'s cache hit; anything else is left to recommend().

        Redis failing is recommend()'s to handle, breaker and counters included: this read is
        made only while the breaker is closed, and a failed one is not counted but left to the
        thread to make again: an event loop held up past the deadline (a GC pause, a process
        descheduled on a busy machine) times out every read in flight at once, answered or not,
        and counted they opened the breaker: whole seconds of fallback lists under load."""
        if (self._list_cache is None or not (self._policy.cache_enabled and cache.read)
                or not self.catalog.loaded):
            return CacheLookup(None, cache)
        part = self._redis_breakers.part_of(user_id)  # placed once: recommend() takes it too
        if self._redis_breakers.part(part).state != "closed":
            return CacheLookup(None, cache, part)
        start = time.perf_counter()
        assignment = self._settled(user_id)
        if assignment is None:      # an exposure to log first: recommend() does it in a thread
            return CacheLookup(None, cache, part)
        try:
            raw = await self._list_cache.cached_recommendations(user_id, k)
        except FeatureStoreUnavailable:
            return CacheLookup(None, cache, part)
        stored = self._valid_for(raw, assignment, self.catalog.snapshot)
        self._metrics.stage.labels("cache").observe(time.perf_counter() - start)
        if raw is None or stored is None:
            return CacheLookup(None, CacheUse(read=False, write=cache.write), part)
        listed = as_assigned(stored, assignment)
        request_id = uuid.uuid4().hex
        elapsed_ms = _ms_since(start)
        self._record(listed, "cache", [], assignment, request_id, elapsed_ms)
        return CacheLookup(cached_response_json(raw if listed is stored else None, listed,
                                                request_id, elapsed_ms),
                           CacheUse(read=False, write=cache.write))

    def recommend(self, user_id: str, k: int, cache: CacheUse = CacheUse(),
                  part: str | None = None) -> RecommendationsResponse:
        """`part`: the master of the user's keys as from_cache() placed them (None: placed
        here)."""
        start = time.perf_counter()
        request_id = uuid.uuid4().hex
        assignment = self._choose(user_id)
        fallbacks: list[Fallback] = []
        if not self.catalog.loaded:
            listed = ServedList(user_id=user_id, items=[], variant=assignment.variant,
                                experiment=assignment.experiment, model_version=None,
                                personalization="cold", watch_count=0)
            return self._answer(listed, "fallback", ["catalog"], assignment, request_id, start)
        snapshot = self.catalog.snapshot
        store = self._store_for(snapshot.items)
        if part is None:   # the master of the user's keys: placed once a request
            part = self._redis_breakers.part_of(user_id)
        cached = None
        if self._policy.cache_enabled and cache.read:
            with self._stage("cache"):
                cached = self._cached(store, user_id, part, k, assignment, snapshot)
        if cached is not None:
            return self._answer(cached, "cache", [], assignment, request_id, start)
        with self._stage("features"):
            state = self._read_user(store, user_id, part)
        if state is None:
            fallbacks.append("feature_store")
            listed = self._popular_list(user_id, k, snapshot, assignment)
            return self._answer(listed, "fallback", fallbacks, assignment, request_id, start)
        listed, model_failed = self._compute(state, k, snapshot, assignment, request_id)
        if model_failed:
            fallbacks.append("model")
        elif listed.items and self._policy.cache_enabled and cache.write:
            self._cache(store, user_id, part, k, listed)
        return self._answer(listed, "fallback" if fallbacks else "computed", fallbacks,
                            assignment, request_id, start)

    # --- stages ------------------------------------------------------------------------------
    def _compute(self, state: UserOnlineState, k: int, snapshot: CatalogSnapshot,
                 assignment: Assignment, request_id: str) -> tuple[ServedList, bool]:
        items, now = snapshot.items, time.time()
        stats = snapshot.stats.with_trending(state.trending, items)
        user = user_vectors(state, items)
        level = personalization(user.watch_count, self._policy.candidates)
        self._metrics.personalization.labels(level.level).inc()
        max_maturity = (state.max_maturity if state.max_maturity is not None
                        else self._policy.default_max_maturity)
        with self._stage("candidates"):
            eligible = eligible_mask(items, user.watched, max_maturity)
            trending_now = trending_values(stats.trending_log2, now)
            head = trending_rows(state, items)
            candidates, scores = self._candidates(user, level, items, stats, eligible,
                                                  trending_now, head, now)
        self._metrics.candidates.observe(len(candidates))
        model_failed = False
        ranker_rows: Float32Array | None = None
        ranked_by = None
        with self._stage("rank"):
            relevance: FloatArray | None = None
            ranker = ranker_for(assignment, snapshot.version)
            if ranker is not None and level.level != "cold" and len(candidates):
                ranker_rows = ranker_features(user, items, stats, candidates.rows, now)
                relevance = self._rank(ranker_rows, ranker)
                model_failed = relevance is None
                ranked_by = None if model_failed else ranker
                if self._drift is not None and relevance is not None:
                    self._drift.observe(snapshot.version, ranker_rows, relevance)
            if relevance is None:
                relevance = blend(scores, level.weights)
        if self._shadow is not None and level.level != "cold" and len(candidates):
            self._shadow.offer(ShadowJob(
                request_id,
                _ready(ranker_rows) if ranker_rows is not None
                else partial(ranker_features, user, items, stats, candidates.rows, now),
                relevance, partial(_title_ids, items, candidates.rows), k))
        with self._stage("rerank"):
            picked, positions = self._rerank(relevance, candidates, items, stats, user, level, k)
        shuffled = len(positions) > 1 and explored(request_id, self._policy.explore_share)
        if shuffled:   # the same titles, in an order that owes nothing to their scores
            order = shuffled_order(request_id, len(positions))
            picked, positions = [picked[i] for i in order.tolist()], positions[order]
        served = None
        if self._policy.log_features and len(positions):
            with self._stage("served_features"):
                # The treatment already has every candidate's row: the listed ones are a slice.
                # The control ranks without them, so it evaluates the k listed titles' only.
                listed_rows = (ranker_rows[positions] if ranker_rows is not None
                               else ranker_features(user, items, stats,
                                                    candidates.rows[positions], now))
                served = served_features(listed_rows, now, snapshot.version, request_id)
        return ServedList(
            user_id=state.user_id, items=picked, variant=assignment.variant,
            experiment=assignment.experiment, model_version=snapshot.version,
            personalization=level.level,
            watch_count=state.watch_count, features=served, shuffled=shuffled,
            ranked_by=ranked_by, artifacts=items.ranker_digest), model_failed

    def _candidates(self, user: UserVectors, level: Personalization, items: ItemArtifacts,
                    stats: ItemStats, eligible: BoolArray, trending_now: FloatArray,
                    head: IntArray, now: float) -> tuple[Candidates,
                                                            dict[str, FloatArray]]:
        sizes = level.sizes
        # The trending list: the request's fresh head first, then the snapshot's order.
        trending_list = ordered_eligible(head, eligible, sizes.trending)
        if len(trending_list) < sizes.trending:
            more = top_eligible(trending_now, eligible, sizes.trending)
            trending_list = np.asarray(list(dict.fromkeys([*trending_list.tolist(),
                                                           *more.tolist()]))[:sizes.trending],
                                       dtype=np.int64)
        if level.level == "cold":
            lists = {Source.POPULAR: top_eligible(stats.popularity, eligible, POPULAR_POOL),
                     Source.TRENDING: trending_list}
            if self._policy.new_release_days > 0:
                lists[Source.NEW_RELEASE] = new_releases(
                    stats.release_of(items), eligible, now,
                    self._policy.new_release_days * 86_400.0, NEW_RELEASE_POOL)
            found = union(lists)
            return found, {"popularity": stats.popularity[found.rows],
                           "trending": trending_now[found.rows]}
        cf_all = collaborative_scores(user, items)
        content_all = content_scores(user, items)
        found = union({
            Source.COLLABORATIVE: top_eligible(cf_all, eligible, sizes.collaborative),
            Source.CONTENT: top_eligible(content_all, eligible, sizes.content),
            Source.TRENDING: trending_list,
        })
        return found, {"collaborative": cf_all[found.rows], "content": content_all[found.rows],
                       "trending": trending_now[found.rows]}

    def _rank(self, rows: Float32Array, version: int) -> FloatArray | None:
        """The ranker's probability per candidate: one batch call; None if it cannot answer.
        `version`: production's, or a challenger an experiment serves, scoring the same rows
        (features from the production artifacts, as the challenger's training rows were)."""
        try:
            prediction = self._model_breaker.call(
                self._model.predict, self._model_name, rows, version=version)
        except (ModelError, CircuitOpen) as exc:
            logger.warning("ranker unavailable, blending", extra={"error": str(exc)})
            return None
        probabilities: FloatArray = np.asarray(prediction.outputs["probabilities"],
                                                  dtype=np.float64)[:, 1]
        return probabilities

    def _rerank(self, relevance: FloatArray, candidates: Candidates, items: ItemArtifacts,
                stats: ItemStats, user: UserVectors, level: Personalization,
                k: int) -> tuple[list[RecommendedItem], IntArray]:
        """The listed items and their positions into `candidates`, in list order."""
        if not len(candidates):
            return [], np.zeros(0, dtype=np.int64)
        genres = items.genres[candidates.rows]
        # MMR over the most relevant few, not every candidate: the pairwise genre similarity is
        # quadratic in the pool, and a title ranked 150th is not picked for diversity's sake.
        pool = np.argsort(-relevance, kind="stable")[:max(RERANK_POOL_PER_SLOT * k,
                                                         RERANK_POOL_MIN)]
        rerank = self._policy.rerank
        positions = pool[mmr(min_max(relevance[pool]), genres[pool], k, rerank.diversity_weight,
                             rerank.genre_cap_share)]
        discovery: frozenset[int] = frozenset()
        if level.level != "cold" and rerank.discovery_slot:
            outside = ~np.any((genres > 0) & user.top_genres[None, :], axis=1)
            picked = with_discovery_slot(positions, relevance, outside, k)
            positions, discovery = picked.positions, picked.discovery
        if level.level == "cold":
            positions = with_new_release_slot(
                positions, candidates.from_source(Source.NEW_RELEASE),
                stats.release_of(items)[candidates.rows], k)
        positions = np.asarray(positions, dtype=np.int64)
        return explained_items(items, candidates, positions, relevance, discovery, user.watched,
                               cold=level.level == "cold"), positions

    def _popular_list(self, user_id: str, k: int, snapshot: CatalogSnapshot,
                      assignment: Assignment) -> ServedList:
        """Redis is down: the in-process snapshot's most popular titles anyone may watch."""
        items = snapshot.items
        eligible = items.maturity_levels <= self._policy.fallback_max_maturity
        stats = snapshot.stats
        rows = top_eligible(stats.popularity, eligible, POPULAR_POOL)
        found = union({Source.POPULAR: rows})
        relevance = stats.popularity[found.rows]
        with self._stage("rerank"):
            rerank = self._policy.rerank
            positions = mmr(min_max(relevance), items.genres[found.rows], k,
                            rerank.diversity_weight, rerank.genre_cap_share)
            listed = explained_items(items, found, positions, relevance, frozenset(),
                                     np.zeros(0, dtype=np.int64), cold=True)
        # No features: without the user's state there is nothing a ranker could have seen.
        return ServedList(user_id=user_id, items=listed, variant=assignment.variant,
                          experiment=assignment.experiment, model_version=snapshot.version,
                          personalization="cold", watch_count=0)

    # --- I/O with its failure handling ---------------------------------------------------------
    def _read_user(self, store: UserStore, user_id: str, part: str) -> UserOnlineState | None:
        """The user's state, with the trending head when its master answers; None when the
        master of the user's own keys (`part`) fails or is skipped (its breaker is open)."""
        try:
            state: UserOnlineState = self._redis_breakers.call_in(part, self._read_with_head,
                                                                  store, user_id, part)
            return state
        except (FeatureStoreUnavailable, CircuitOpen) as exc:
            logger.warning("feature store unavailable", extra={"error": str(exc)})
            return None

    def _read_with_head(self, store: UserStore, user_id: str, user_part: str
                        ) -> UserOnlineState:
        """One round trip to the user's master and the trending list's. The user's master's
        failures are the caller's (its breaker); the list's master has a breaker of its own. While
        that one is open, or after it refused the read, the user's keys are read alone and the
        candidates take the catalog snapshot's trending order (seconds old): the answer is
        whole, as the user's own state is (counted in trending_heads{source="snapshot"})."""
        part = self._head_part(user_part)
        if part is None:              # one server, or the user's keys beside the list
            return self._counted(store.read_user(user_id), "request")
        # skipped while its breaker is open, or while the client's map names no master for it
        permit = None if part == UNCOVERED else self._redis_breakers.admit([part]).get(part)
        if permit is None:
            return self._counted(store.read_user(user_id, trending_n=0), "snapshot")
        head = self._redis_breakers.part(part)
        try:
            state = store.read_user(user_id)
        except FeatureStoreUnavailable as exc:
            if not refused(exc):      # a timeout cannot be placed: the caller's breaker counts it
                head.release(permit)
                raise
            try:                      # refused: by the user's master, or by the list's?
                state = store.read_user(user_id, trending_n=0)
            except FeatureStoreUnavailable:
                head.release(permit)  # the user's: theirs to count
                raise
            head.failed(permit)
            logger.warning("trending head unavailable: the snapshot's order",
                           extra={"error": str(exc)})
            return self._counted(state, "snapshot")
        except BaseException:
            head.release(permit)
            raise
        head.succeeded(permit)
        return self._counted(state, "request")

    def _head_part(self, user_part: str) -> str | None:
        """The part (master) holding the trending list; None when it is the user's own."""
        if self._trending_part is None or self._redis_breakers.only is not None:
            return None
        part = self._trending_part()
        return None if part == user_part else part

    def _counted(self, state: UserOnlineState, head_source: TrendingSource) -> UserOnlineState:
        self._metrics.trending_heads.labels(head_source).inc()
        return state

    def _cached(self, store: UserStore, user_id: str, part: str, k: int,
                assignment: Assignment, snapshot: CatalogSnapshot) -> ServedList | None:
        try:
            raw = self._redis_breakers.call_in(part, store.cached_recommendations, user_id, k)
        except (FeatureStoreUnavailable, CircuitOpen):
            self._metrics.cache.labels("error").inc()
            return None
        stored = self._valid_for(raw, assignment, snapshot)
        return None if stored is None else as_assigned(stored, assignment)

    def _valid_for(self, raw: bytes | None, assignment: Assignment,
                   snapshot: CatalogSnapshot) -> ServedList | None:
        """The stored list if it may answer this request (counted: hit or miss), as stored.
        Parsed by pydantic: the impression needs its fields, and on a list of 10 with features
        this parse measured faster than json.loads."""
        listed = None
        if raw is not None:
            try:
                listed = ServedList.model_validate_json(raw)
            except ValidationError as exc:   # written by something else: compute a new one
                logger.warning("cached list unreadable", extra={"error": str(exc)[:200]})
        # A list built by another ranker (or the blend), or on other item artifacts, is not this
        # user's answer; one built by theirs under another experiment's arm is (built_as_now).
        if listed is None or not built_as_now(listed, ranker_for(assignment, snapshot.version),
                                              snapshot.items.ranker_digest):
            self._metrics.cache.labels("miss").inc()
            return None
        self._metrics.cache.labels("hit").inc()
        return listed

    def _cache(self, store: UserStore, user_id: str, part: str, k: int,
               listed: ServedList) -> None:
        try:
            self._redis_breakers.call_in(
                part, store.cache_recommendations, user_id, k,
                listed.model_dump_json().encode(), ttl_s=self._policy.cache_ttl_s,
                if_watch_count=listed.watch_count)
        except (FeatureStoreUnavailable, CircuitOpen) as exc:
            logger.info("response not cached", extra={"error": str(exc)})

    def _answer(self, listed: ServedList, served_from: ServedFrom,
                fallbacks: list[Fallback], assignment: Assignment, request_id: str,
                start: float) -> RecommendationsResponse:
        elapsed_ms = _ms_since(start)
        self._record(listed, served_from, fallbacks, assignment, request_id, elapsed_ms)
        # model_construct: every field is validated already (the list when it was built or read
        # back, the rest by their types here); validating again cost as much as the cache read.
        return RecommendationsResponse.model_construct(
            **listed.public(), request_id=request_id, served_from=served_from,
            fallbacks=fallbacks, processing_time_ms=elapsed_ms)

    def _record(self, listed: ServedList, served_from: ServedFrom, fallbacks: list[Fallback],
                assignment: Assignment, request_id: str, elapsed_ms: float) -> None:
        """What every answer leaves behind: its impression (an empty list too, and the time it
        took, which the experiments' empty-list and latency guardrails read) and its counts."""
        if self._impressions is not None:
            self._impressions.record(listed, request_id, assignment, elapsed_ms)
        self._metrics.responses.labels(served_from, listed.variant).inc()
        for dependency in fallbacks:
            self._metrics.fallbacks.labels(dependency).inc()

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._metrics.stage.labels(name).observe(time.perf_counter() - start)

