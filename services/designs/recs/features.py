"""RANKER_FEATURES for one user's candidates, from online state, with training's definitions."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.designs.recs import definitions as rf
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.state import ItemStats, UserVectors, trending_values


def ranker_features(user: UserVectors, items: ItemArtifacts, stats: ItemStats,
                    candidates: npt.ArrayLike, now_s: float) -> npt.NDArray[np.float32]:
    """The ranker's float32 matrix [candidates, RANKER_FEATURES], rows = candidate title rows.

    Each column is the catalog's feature evaluated at `now_s` (unix seconds): the same
    recs.definitions functions training calls, on the same kind of inputs.
    """
    rows = np.asarray(candidates, dtype=np.int64)
    n = len(rows)
    return rf.assemble({
        "cf_score": items.embeddings[rows].astype(np.float64) @ user.taste,
        "content_score": rf.content_scores(user.profile, items.content[rows])[0],
        "popularity": stats.popularity[rows],
        "trending_score": trending_values(stats.trending_log2[rows], now_s),
        "genre_match": rf.genre_match(user.top_genres[None, :], items.genres[rows]),
        "release_age_years": rf.release_age_years(stats.release_of(items)[rows], now_s),
        "user_activity": np.full(n, rf.user_activity(user.watch_count)),
    })
