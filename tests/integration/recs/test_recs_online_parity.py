"""No train/serve skew: a world's watch events replayed through the stream give training's features.

The viewing world's train-period watches go through WatchFeaturesHandler into a real Redis; the
online RANKER_FEATURES read back at the replay's end instant must equal what the trainer computes
offline at that instant (recs_models.ranker_matrix), column by column.
"""

from __future__ import annotations

import numpy as np
import pytest
import redis

from services.designs.model_features import RANKER_FEATURE_NAMES
from services.designs.recs.features import ranker_features
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.redis_store import RedisRecsStore
from services.designs.recs.state import user_vectors
from services.stream.watches import WatchFeaturesHandler
from services.trainer import recs_models as rm
from tests.support import recs_parity
from tests.support.recs_parity import (
    Offline,
    assert_same_features,
    offline_features,
    online_features,
    replay,
    sample_pairs,
)

pytestmark = pytest.mark.integration

# the module-scoped fixtures this module shares with the lake's parity test
offline = recs_parity.offline
items = recs_parity.items



















def test_online_features_at_the_replay_end_equal_the_trainers(
        redis_client: redis.Redis, offline: Offline, items: ItemArtifacts) -> None:
    replay(WatchFeaturesHandler(redis_client, items), offline.world)
    users, candidates = sample_pairs(offline)

    online, recomputed = online_features(RedisRecsStore(redis_client, items), items, offline,
                                         users, candidates)

    assert not any(recomputed)  # the stream's stored vectors were used
    assert_same_features(online, offline_features(offline, users, candidates))


def test_a_new_model_version_serves_the_same_features_before_the_stream_refolds_users(
        redis_client: redis.Redis, offline: Offline, items: ItemArtifacts) -> None:
    replay(WatchFeaturesHandler(redis_client, items), offline.world)
    newer = ItemArtifacts.build(items.title_ids, items.embeddings, items.genres,
                                items.release_seconds, items.maturity_levels, items.genre_names,
                                label="ranker/v2")
    users, candidates = sample_pairs(offline)

    online, recomputed = online_features(RedisRecsStore(redis_client, newer), newer, offline,
                                         users, candidates)

    assert all(recomputed)  # stamped with v1: folded in again from each history
    assert_same_features(online, offline_features(offline, users, candidates))


def test_every_users_taste_vector_in_redis_is_the_trainers_fold_in(
        redis_client: redis.Redis, offline: Offline, items: ItemArtifacts) -> None:
    replay(WatchFeaturesHandler(redis_client, items), offline.world)
    users = np.flatnonzero(offline.state.watch_counts > 0)
    store = RedisRecsStore(redis_client, items)

    stored = np.stack([store.read_user(f"u{u}").stored.taste for u in users])  # type: ignore[union-attr]

    expected = rm.taste_vectors(offline.state.weights[users], offline.embeddings)
    np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-6)
    counts = [store.read_user(f"u{u}").watch_count for u in users]
    np.testing.assert_array_equal(counts, offline.state.watch_counts[users])


def test_trending_and_popularity_of_every_title_equal_the_trainers(
        redis_client: redis.Redis, offline: Offline, items: ItemArtifacts) -> None:
    replay(WatchFeaturesHandler(redis_client, items), offline.world)

    stats = RedisRecsStore(redis_client, items).read_item_stats(offline.as_of)

    x = ranker_features(user_vectors(RedisRecsStore(redis_client, items).read_user("u0"), items),
                        items, stats, np.arange(len(items)), offline.as_of)
    trending = x[:, RANKER_FEATURE_NAMES.index("trending_score")]
    np.testing.assert_allclose(trending, offline.state.trending.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(stats.popularity, offline.state.popularity, rtol=1e-12)
