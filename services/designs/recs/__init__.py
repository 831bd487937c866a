"""The online side of the ranker features: Redis layout, writers, one-trip reader, pure features.

    stream (watch events) --RedisRecsStore.apply_watches--> Redis <--read_user-- recommender
                                                                                   |
    model repository --load_item_artifacts--> ItemArtifacts (in process) ----------+
                                         user_vectors + ranker_features (pure) --> RANKER_FEATURES

Spec and measurements: docs/recs-features-online.md.
"""

from services.designs.recs.artifacts import (
    ItemArtifacts,
    LiveItemArtifacts,
    load_item_artifacts,
)
from services.designs.recs.features import ranker_features
from services.designs.recs.keys import (
    CATALOG,
    HISTORY_CAP,
    REC_CACHE_TTL_S,
    history_key,
    profile_key,
    rec_cache_key,
    title_watches_key,
    trending_key,
    user_view_key,
    watch_count_key,
)
from services.designs.recs.redis_store import (
    TRENDING_TOP_N,
    RedisRecsStore,
    WatchesApplied,
    user_view,
    write_profiles,
)
from services.designs.recs.state import (
    ItemStats,
    StoredVectors,
    UserOnlineState,
    UserVectors,
    Watch,
    decayed_counts,
    popularity_days,
    trending_rows,
    trending_values,
    user_vectors,
    vectors_from_history,
)

__all__ = [
    "CATALOG",
    "HISTORY_CAP",
    "REC_CACHE_TTL_S",
    "TRENDING_TOP_N",
    "ItemArtifacts",
    "ItemStats",
    "LiveItemArtifacts",
    "RedisRecsStore",
    "StoredVectors",
    "UserOnlineState",
    "UserVectors",
    "Watch",
    "WatchesApplied",
    "decayed_counts",
    "history_key",
    "load_item_artifacts",
    "popularity_days",
    "profile_key",
    "ranker_features",
    "rec_cache_key",
    "title_watches_key",
    "trending_key",
    "trending_rows",
    "trending_values",
    "user_vectors",
    "user_view",
    "user_view_key",
    "vectors_from_history",
    "watch_count_key",
    "write_profiles",
]
