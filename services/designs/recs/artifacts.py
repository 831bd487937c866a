"""Item-side state kept in process: the ranker's artifacts loaded, and swapped on a promotion."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from services.common.models import ModelRepository
from services.common.models.errors import ModelUnavailable
from services.designs.recs.items import ItemArtifacts

logger = logging.getLogger(__name__)

RANKER_MODEL = "ranker"
EMBEDDINGS_FILE = "embeddings.npz"
CONTENT_TOLERANCE = 1e-5  # the trainer stores content vectors as float32


def load_item_artifacts(repository: ModelRepository, model: str = RANKER_MODEL) -> ItemArtifacts:
    """The production ranker's `embeddings.npz` as ItemArtifacts (ModelUnavailable if none).

    Content vectors are recomputed from the titles' genres, release years and maturity with
    recs.definitions, then checked against the trainer's stored copy: a mismatch means training and
    serving disagree on the definition, which must fail at start-up, not skew rankings quietly.
    """
    version = repository.production_version(model)
    if version is None:
        raise ModelUnavailable(f"{model} has no production version")
    raw = repository.extra_file(model, version, EMBEDDINGS_FILE).read_bytes()
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        items = ItemArtifacts.build(
            npz["title_ids"], npz["item_embeddings"], npz["genre_multi_hot"],
            npz["release_seconds"], npz["maturity_levels"],
            tuple(str(g) for g in npz["genre_names"]), label=f"{model}/v{version}",
            # Versions trained before these were stored have neither: ids stand in for names.
            names=npz.get("title_names", None),
            popularity=npz.get("popularity", None))
        stored = npz["content_vectors"].astype(np.float64)
    if stored.shape != items.content.shape or not np.allclose(stored, items.content,
                                                              atol=CONTENT_TOLERANCE):
        raise ValueError(f"{model} v{version}: stored content vectors differ from "
                         "definitions.content_vectors of the same titles")
    return items


class LiveItemArtifacts:
    """The production ranker's artifacts, swapped for a newly promoted version's.

    `current()` looks at the production pointer at most every `check_s` seconds; a failed reload
    keeps the artifacts in hand. The stream processor folds taste vectors with these, so after a
    promotion the vectors it writes carry the new fingerprint the recommender expects (else every
    request would fold the history in again until the user's next watch).
    """

    def __init__(self, repository: ModelRepository, model: str = RANKER_MODEL,
                 check_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._repository = repository
        self._model = model
        self._check_s = check_s
        self._clock = clock
        self._lock = threading.Lock()
        self._version = repository.production_version(model)
        self._items = load_item_artifacts(repository, model)   # ModelUnavailable without one
        self._checked_at = clock()

    @property
    def version(self) -> int | None:
        return self._version

    def current(self) -> ItemArtifacts:
        if self._clock() - self._checked_at >= self._check_s:
            with self._lock:
                if self._clock() - self._checked_at >= self._check_s:
                    self._checked_at = self._clock()
                    self._reload_if_promoted()
        return self._items

    def _reload_if_promoted(self) -> None:
        try:
            version = self._repository.production_version(self._model)
            if version is None or version == self._version:
                return
            self._items = load_item_artifacts(self._repository, self._model)
            self._version = version
            logger.info("ranker artifacts reloaded", extra={"model": self._model,
                                                             "version": version})
        except (ModelUnavailable, OSError, ValueError, KeyError) as exc:
            logger.warning("ranker artifacts not reloaded; keeping the current ones",
                           extra={"error": str(exc)})
