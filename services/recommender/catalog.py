"""The item side kept in process: the production ranker's artifacts and a stats snapshot.

A background thread re-reads every title's popularity and trending state every few seconds
(about 24 ms, too wide for the request path) and checks the repository for a newly promoted
ranker: its embeddings replace the old ones in one swap, so a request never mixes versions.
When Redis has never answered, the popularity stored with the model at training time stands in:
the "in-process popular snapshot" the service falls back on when Redis is down.

The same refresh merges the content catalog (titles the catalog ETL published, which the stream
wrote to Redis): one GET of its version when nothing changed, the whole hash when it moved. Titles
the ranker was not trained on join the item set at once (designs.recs.titles), so the next
request can recommend them; no restart, and the request path never waits for the merge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from services.common.features import FeatureStoreUnavailable
from services.common.models import ModelRepository
from services.common.models.errors import ModelUnavailable
from services.common.redis_client import RedisClient
from services.designs.recs.artifacts import LiveItemArtifacts
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.redis_store import RedisRecsStore
from services.designs.recs.state import ItemStats
from services.designs.recs.titles import CatalogTitle, with_catalog_titles

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogSnapshot:
    items: ItemArtifacts          # the ranker's titles, then the catalog's new ones
    version: int                  # the ranker version whose embeddings these are
    stats: ItemStats
    stats_live: bool              # False: the training-time stand-in (Redis never answered)
    catalog_version: int = 0      # the catalog hash's version merged in (0: none)


class CatalogTitles(Protocol):
    """Where the catalog's titles are read (RedisCatalogTitles; a fake in unit tests)."""

    def version(self) -> int: ...

    def read(self) -> tuple[int, list[CatalogTitle]]: ...


def training_time_stats(items: ItemArtifacts) -> ItemStats:
    """Popularity as it was at training time (trending unknown): better than nothing."""
    popularity = (items.popularity_at_training if items.popularity_at_training is not None
                  else np.zeros(len(items)))
    counts = np.rint(np.expm1(popularity)).astype(np.int64)
    return ItemStats(time.time(), counts, np.full(len(items), -np.inf))


class LiveCatalog:
    """Holds the current CatalogSnapshot; `refresh()` (the thread calls it) builds the next."""

    def __init__(self, repository: ModelRepository, model_name: str,
                 redis_for: Callable[[ItemArtifacts], RedisRecsStore], refresh_s: float,
                 titles: CatalogTitles | None = None) -> None:
        self._repository = repository
        self._titles = titles
        # The last merge: the ranker's items it was built on, the catalog version, the result.
        self._merged: tuple[ItemArtifacts | None, int, ItemArtifacts | None] = (None, 0, None)
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
        items, catalog_version = self._with_catalog(self._artifacts.current())
        if current is None or current.items is not items:
            version = self._artifacts.version
            assert version is not None  # artifacts load only from a production version
            current = CatalogSnapshot(items, version, training_time_stats(items), False,
                                      catalog_version)
            logger.info("item set in use", extra={
                "version": version, "titles": len(items), "catalog_version": catalog_version,
                "catalog_only_titles": len(items) - items.n_trained})
        try:
            stats = self._redis_for(current.items).read_item_stats(time.time())
            current = CatalogSnapshot(current.items, current.version, stats, True,
                                      current.catalog_version)
        except FeatureStoreUnavailable as exc:
            logger.warning("item stats not refreshed", extra={"error": str(exc)})
        self._snapshot = current

    def _with_catalog(self, ranker_items: ItemArtifacts) -> tuple[ItemArtifacts, int]:
        """The ranker's items with the catalog merged in: the same object while neither moved.

        Redis down: the last merge stands if the ranker's items did not change, else the
        ranker's items alone until the catalog answers again.
        """
        built_on, merged_version, merged = self._merged
        if self._titles is None:
            return ranker_items, 0
        try:
            version = self._titles.version()
            if built_on is ranker_items and merged is not None and version == merged_version:
                return merged, version
            titles: list[CatalogTitle] = []
            if version:
                version, titles = self._titles.read()
        except FeatureStoreUnavailable as exc:
            logger.warning("catalog titles not refreshed", extra={"error": str(exc)})
            if built_on is ranker_items and merged is not None:
                return merged, merged_version
            return ranker_items, 0
        merged = with_catalog_titles(ranker_items, titles)
        self._merged = (ranker_items, version, merged)
        return merged, version

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
