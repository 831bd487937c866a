"""The item side kept in process: the production ranker's artifacts and a stats snapshot.

A background thread re-reads every title's popularity and trending state every few seconds
(about 24 ms, too wide for the request path) and checks the repository for a newly promoted
ranker: its embeddings replace the old ones in one swap, so a request never mixes versions.
When Redis has never answered, the popularity stored with the model at training time stands in:
the "in-process popular snapshot" the service falls back on when Redis is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from services.common.features import FeatureStoreUnavailable
from services.common.models import ModelRepository
from services.common.models.errors import ModelUnavailable
from services.common.recs_online import (
    ItemArtifacts,
    ItemStats,
    LiveItemArtifacts,
    RedisRecsStore,
)
from services.common.recs_online.lua import RedisClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogSnapshot:
    items: ItemArtifacts
    version: int                  # the ranker version whose embeddings these are
    stats: ItemStats
    stats_live: bool              # False: the training-time stand-in (Redis never answered)


def training_time_stats(items: ItemArtifacts) -> ItemStats:
    """Popularity as it was at training time (trending unknown): better than nothing."""
    popularity = (items.popularity_at_training if items.popularity_at_training is not None
                  else np.zeros(len(items)))
    counts = np.rint(np.expm1(popularity)).astype(np.int64)
    return ItemStats(time.time(), counts, np.full(len(items), -np.inf))


class LiveCatalog:
    """Holds the current CatalogSnapshot; `refresh()` (the thread calls it) builds the next."""

    def __init__(self, repository: ModelRepository, model_name: str,
                 redis_for: Callable[[ItemArtifacts], RedisRecsStore], refresh_s: float) -> None:
        self._repository = repository
        self._model_name = model_name
        self._redis_for = redis_for
        self._refresh_s = refresh_s
        self._snapshot: CatalogSnapshot | None = None
        self._artifacts: LiveItemArtifacts | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def snapshot(self) -> CatalogSnapshot:
        if self._snapshot is None:
            raise ModelUnavailable(f"{self._model_name}: no production version loaded yet")
        return self._snapshot

    @property
    def loaded(self) -> bool:
        return self._snapshot is not None

    def refresh(self) -> None:
        """Load a newly promoted version, then re-read the stats; keep the last good on error."""
        current = self._snapshot
        if self._artifacts is None:
            try:
                # Checked on every refresh: this thread's own interval paces it.
                self._artifacts = LiveItemArtifacts(self._repository, self._model_name, 0.0)
            except (ModelUnavailable, OSError, ValueError, KeyError) as exc:
                logger.warning("ranker artifacts not loaded", extra={"error": str(exc)})
                return
        items = self._artifacts.current()
        if current is None or current.items is not items:
            version = self._artifacts.version
            assert version is not None  # artifacts load only from a production version
            current = CatalogSnapshot(items, version, training_time_stats(items), False)
            logger.info("ranker artifacts in use", extra={"version": version,
                                                          "titles": len(items)})
        try:
            stats = self._redis_for(current.items).read_item_stats(time.time())
            current = CatalogSnapshot(current.items, current.version, stats, True)
        except FeatureStoreUnavailable as exc:
            logger.warning("item stats not refreshed", extra={"error": str(exc)})
        self._snapshot = current

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="catalog-refresh", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._refresh_s):
            try:
                self.refresh()
            except Exception:  # the thread must outlive any one bad refresh
                logger.exception("catalog refresh failed")


def store_factory(client: RedisClient, namespace: str) -> Callable[[ItemArtifacts],
                                                                     RedisRecsStore]:
    """RedisRecsStore is bound to one set of artifacts; build one per snapshot, cached."""
    cache: dict[str, RedisRecsStore] = {}

    def build(items: ItemArtifacts) -> RedisRecsStore:
        store = cache.get(items.fingerprint)
        if store is None:
            cache.clear()
            store = cache[items.fingerprint] = RedisRecsStore(client, items, namespace)
        return store
    return build
