"""A small hand-made catalog for recommender tests: 4 genres, 40 titles, known geometry.

Titles t0..t9 are Action, t10..t19 Comedy, t20..t29 Drama, t30..t39 Kids. Item embeddings put
each genre on its own axis, so a user who watched Action titles has a taste vector on the
Action axis and collaborative filtering proposes the other Action titles first. Titles t35..t39
are rated R (level 4) although Kids, to test the maturity filter; the rest are PG (level 1).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from services.common.models import ModelRepository
from services.common.models.testing import logistic_model
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.state import ItemStats, UserOnlineState, Watch

GENRES = ("Action", "Comedy", "Drama", "Kids")
N_TITLES = 40
NOW = time.time()


def title_ids() -> list[str]:
    return [f"t{i}" for i in range(N_TITLES)]


def genre_of(row: int) -> int:
    return row // 10


def arrays() -> dict[str, np.ndarray]:
    rows = np.arange(N_TITLES)
    genres = np.zeros((N_TITLES, len(GENRES)))
    genres[rows, rows // 10] = 1.0
    embeddings = genres * 1.0 + 0.01 * (rows % 10)[:, None]   # a little spread inside a genre
    maturity = np.where(rows >= 35, 4, 1)
    return {
        "title_ids": np.asarray(title_ids()),
        "item_embeddings": embeddings.astype(np.float32),
        "genre_multi_hot": genres.astype(np.uint8),
        "release_seconds": np.full(N_TITLES, NOW - 2 * 365.25 * 86_400.0),
        "maturity_levels": maturity.astype(np.int64),
        "title_names": np.asarray([f"Title {i}" for i in rows]),
        "popularity": np.log1p(np.arange(N_TITLES, 0, -1)).astype(np.float32),  # t0 most popular
    }


def items() -> ItemArtifacts:
    a = arrays()
    return ItemArtifacts.build(a["title_ids"], a["item_embeddings"], a["genre_multi_hot"],
                               a["release_seconds"], a["maturity_levels"], GENRES,
                               names=a["title_names"], popularity=a["popularity"])


def embeddings_npz() -> bytes:
    a = arrays()
    built = items()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **a, genre_names=np.asarray(GENRES),
                        content_vectors=built.content.astype(np.float32))
    return buffer.getvalue()


def repository(root: Path, weights: list[float] | None = None) -> ModelRepository:
    """A model repository whose production ranker scores cf_score (the first feature) only."""
    repo = ModelRepository(root)
    version = repo.register(
        "ranker", logistic_model(weights or [4.0] + [0.0] * (len(RANKER_FEATURE_NAMES) - 1)),
        feature_names=RANKER_FEATURE_NAMES, metrics={}, training_data_hash="test",
        description="recommender tests", extra_files={"embeddings.npz": embeddings_npz()})
    repo.promote("ranker", version)
    return repo


def stats(trending_rows: tuple[int, ...] = ()) -> ItemStats:
    """Popularity falls with the row (t0 most watched); `trending_rows` trend, best first."""
    counts = np.arange(N_TITLES, 0, -1).astype(np.int64) * 10
    log2 = np.full(N_TITLES, -np.inf)
    for rank, row in enumerate(trending_rows):
        log2[row] = NOW / (24 * 3_600.0) + 5.0 - rank
    return ItemStats(NOW, counts, log2)


def user(watched: list[str], user_id: str = "u1", max_maturity: int | None = None,
         trending: tuple[tuple[str, float], ...] = ()) -> UserOnlineState:
    history = tuple(Watch(f"e{i}", content, True, int((NOW - 3_600 + i) * 1000))
                    for i, content in enumerate(watched))
    return UserOnlineState(user_id, history, len(history), None, trending, max_maturity)
