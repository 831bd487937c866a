"""Recommender parity: the offline world, its items, the features served online and offline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from services.common.bus.envelope import Event
from services.common.models import ModelRepository
from services.common.models.testing import logistic_model
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.designs.payloads import WatchData
from services.designs.recs.artifacts import load_item_artifacts
from services.designs.recs.features import ranker_features
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.redis_store import RedisRecsStore
from services.designs.recs.state import user_vectors
from services.stream.watches import WatchFeaturesHandler
from services.trainer import recs_models as rm
from services.trainer.recs_result import RecsArtifacts
from services.trainer.worlds.viewing import ViewingConfig, ViewingWorld, generate_viewing

CONFIG = ViewingConfig(seed=5, n_users=300, n_titles=200, days=42)


DIM = 16


SAMPLE_USERS = 60


CANDIDATES_PER_USER = 40


FLUSH_EVERY = 500


# The stored taste vector is float32 (cf_score off by up to 1.2e-7, measured); folding in at
# read time matched training bit for bit here, but BLAS may sum in another order elsewhere.
RTOL, ATOL = 1e-6, 1e-6


@dataclass(frozen=True)
class Offline:
    world: ViewingWorld
    state: rm.State
    titles: rm.Titles
    embeddings: np.ndarray
    as_of: float


@pytest.fixture(scope="module")
def offline() -> Offline:
    world = generate_viewing(CONFIG)
    events, titles = rm.Events.of(world), rm.Titles.of(world)
    as_of = CONFIG.split.timestamp()
    state = rm.state_at(events, len(world.users), titles, as_of)
    embeddings = rm.fit_item_embeddings(state.weights, DIM, CONFIG.seed)
    return Offline(world, state, titles, embeddings, as_of)


@pytest.fixture(scope="module")
def items(offline: Offline, tmp_path_factory: pytest.TempPathFactory) -> ItemArtifacts:
    """The artifacts as the recommender gets them: the production ranker's embeddings.npz."""
    state, titles = offline.state, offline.titles
    npz = RecsArtifacts(
        as_of=offline.as_of, title_ids=titles.ids,
        title_names=offline.world.titles["title"].to_numpy().astype(str),
        item_embeddings=offline.embeddings,
        content_vectors=titles.content.astype(np.float32), genre_names=titles.genre_names,
        genre_multi_hot=titles.genres.astype(np.uint8), release_seconds=titles.release_seconds,
        maturity_levels=titles.maturity, popularity=state.popularity.astype(np.float32),
        trending=state.trending.astype(np.float32), user_ids=np.asarray([], dtype=str),
        user_embeddings=np.zeros((0, DIM), dtype=np.float32),
    ).to_npz()
    repository = ModelRepository(Path(tmp_path_factory.mktemp("models")))
    repository.register("ranker", logistic_model([0.1] * len(RANKER_FEATURE_NAMES)),
                        feature_names=RANKER_FEATURE_NAMES, metrics={},
                        training_data_hash="test", description="parity test",
                        extra_files={"embeddings.npz": npz})
    return load_item_artifacts(repository)


def replay(handler: WatchFeaturesHandler, world: ViewingWorld) -> int:
    """The train-period watches as the stream would consume them, flushed every 500 events."""
    train = world.train
    for n, row in enumerate(train.itertuples(index=False), start=1):
        data = WatchData(user_id=row.user_id, content_id=row.content_id,
                         watch_seconds=int(row.watch_seconds), completed=bool(row.completed))
        handler.handle(Event(id=row.event_id, type="watch", source="replay",
                             time=row.timestamp.to_pydatetime(), data=data.model_dump()))
        if n % FLUSH_EVERY == 0:
            handler.flush()
    handler.flush()
    return len(train)


def sample_pairs(offline: Offline) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    with_history = np.flatnonzero(offline.state.watch_counts > 0)
    users = rng.choice(with_history, size=SAMPLE_USERS, replace=False)
    items = np.stack([rng.choice(len(offline.titles.ids), CANDIDATES_PER_USER, replace=False)
                      for _ in users])
    return users, items


def offline_features(offline: Offline, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    max_maturity = offline.world.users["max_maturity"].to_numpy()
    views = rm.user_views(offline.state, users, offline.embeddings, offline.titles, max_maturity)
    pair_users = np.repeat(np.arange(len(users)), candidates.shape[1])
    return rm.ranker_matrix(offline.state, views, offline.titles, offline.embeddings,
                            pair_users, candidates.ravel())


def online_features(store: RedisRecsStore, items: ItemArtifacts, offline: Offline,
                    users: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, list[bool]]:
    stats = store.read_item_stats(offline.as_of)
    rows, recomputed = [], []
    for user, user_candidates in zip(users, candidates, strict=True):
        vectors = user_vectors(store.read_user(f"u{user}"), items)
        rows.append(ranker_features(vectors, items, stats, user_candidates, offline.as_of))
        recomputed.append(vectors.recomputed)
    return np.vstack(rows), recomputed


def assert_same_features(online: np.ndarray, offline: np.ndarray) -> None:
    for column, name in enumerate(RANKER_FEATURE_NAMES):
        np.testing.assert_allclose(online[:, column], offline[:, column], rtol=RTOL, atol=ATOL,
                                   err_msg=name)
