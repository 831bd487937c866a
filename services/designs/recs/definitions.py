"""The ranker's features, defined once for training and for the online path (numpy only).

Every function here has a per-user form that the stream processor and the recommender can call on
one user's state, and training computes the same quantities for all users at once. The stream
processor keeps, per user: the taste vector (sum of watch weight x item embedding), the genre
profile (sum of watch weight x content vector), the weighted genre counts (for the top 3 genres)
and the watch count; per title: the 30-day watch count and the decayed watch count. Every one of
these is a sum over watch events, so a watch event updates it in O(dim) without rereading history.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.common.arrays import FloatArray
from services.designs.model_features import RANKER_FEATURE_NAMES

COMPLETED_WEIGHT = 1.0
PARTIAL_WEIGHT = 0.5          # a title abandoned half way still says something about taste
POPULARITY_WINDOW_DAYS = 30
TRENDING_HALF_LIFE_HOURS = 24.0
TOP_GENRES = 3
ERA_EDGES = (1990, 2000, 2010, 2020)  # release-year buckets: <1990, 1990s, 2000s, 2010s, 2020s+
N_MATURITY_LEVELS = 5
BUCKET_WEIGHT = 0.5           # era and maturity matter, but less than genre, in content vectors
SECONDS_PER_YEAR = 365.25 * 86_400.0


def watch_weights(completed: npt.ArrayLike) -> FloatArray:
    """How much one watch event counts towards a user's taste: 1 if completed, else 0.5."""
    done = np.asarray(completed, dtype=bool)
    return np.where(done, COMPLETED_WEIGHT, PARTIAL_WEIGHT)


def taste_vector(
    item_embeddings: npt.NDArray[np.floating], watched_indices: npt.ArrayLike,
    weights: npt.ArrayLike,
) -> FloatArray:
    """A user's taste: the weighted sum of the embeddings of the titles they watched.

    With item embeddings V from a truncated SVD of the user x title weight matrix R, this is
    exactly the user's factor R_u V (PureSVD), so a user never seen in training folds in the same
    way, and one more watch is `taste += weight * V[title]`. cf_score = taste · V[title].
    A watched index may repeat (a rewatch counts again).
    """
    rows = np.asarray(watched_indices, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    taste: FloatArray = w @ item_embeddings[rows].astype(np.float64)
    return taste


def genre_profile(
    content_vectors: npt.NDArray[np.floating], watched_indices: npt.ArrayLike,
    weights: npt.ArrayLike,
) -> FloatArray:
    """A user's genre profile: the weighted sum of the content vectors of the watched titles."""
    return taste_vector(content_vectors, watched_indices, weights)


def content_vectors(
    genre_multi_hot: npt.ArrayLike, release_years: npt.ArrayLike, maturity_levels: npt.ArrayLike
) -> FloatArray:
    """Unit-length title vectors: [genres / sqrt(n genres), 0.5 x era one-hot, 0.5 x maturity]."""
    genres = np.asarray(genre_multi_hot, dtype=np.float64)
    genres = genres / np.sqrt(np.maximum(genres.sum(axis=1, keepdims=True), 1.0))
    era = np.searchsorted(np.asarray(ERA_EDGES), np.asarray(release_years), side="right")
    eras = np.eye(len(ERA_EDGES) + 1)[era]
    maturity = np.eye(N_MATURITY_LEVELS)[np.asarray(maturity_levels, dtype=np.int64)]
    vectors = np.hstack([genres, BUCKET_WEIGHT * eras, BUCKET_WEIGHT * maturity])
    unit: FloatArray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def content_scores(profile: npt.ArrayLike, vectors: npt.NDArray[np.floating]) -> FloatArray:
    """Cosine of each user's profile (rows) and each unit content vector; 0 for an empty profile."""
    p = np.atleast_2d(np.asarray(profile, dtype=np.float64))
    norm = np.linalg.norm(p, axis=1, keepdims=True)
    unit = np.divide(p, norm, out=np.zeros_like(p), where=norm > 0)
    scores: FloatArray = unit @ vectors.T.astype(np.float64)
    return scores


def top_genres_mask(genre_counts: npt.ArrayLike, k: int = TOP_GENRES) -> npt.NDArray[np.bool_]:
    """Each user's k most-watched genres (weighted counts), ties to the earlier genre; never 0s."""
    counts = np.atleast_2d(np.asarray(genre_counts, dtype=np.float64))
    order = np.argsort(-counts, axis=1, kind="stable")[:, :k]
    mask = np.zeros(counts.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    result: npt.NDArray[np.bool_] = mask & (counts > 0)
    return result


def genre_match(top_mask: npt.ArrayLike, item_genres: npt.ArrayLike) -> FloatArray:
    """Share of an item's genres that are among the user's top genres (row-wise pairs)."""
    top = np.asarray(top_mask, dtype=np.float64)
    genres = np.asarray(item_genres, dtype=np.float64)
    share: FloatArray = (top * genres).sum(axis=-1) / np.maximum(genres.sum(axis=-1), 1.0)
    return share


def decay_factor(elapsed_seconds: npt.ArrayLike) -> FloatArray:
    """What one watch is worth `elapsed_seconds` later in the trending count (24 h half-life)."""
    hours = np.asarray(elapsed_seconds, dtype=np.float64) / 3_600.0
    factor: FloatArray = np.exp2(-hours / TRENDING_HALF_LIFE_HOURS)
    return factor


def trending_scores(decayed_counts: npt.ArrayLike) -> FloatArray:
    """log1p of the decayed watch count: sum over past watches of decay_factor(now - time)."""
    return np.log1p(np.asarray(decayed_counts, dtype=np.float64))


def popularity_scores(watches_in_window: npt.ArrayLike) -> FloatArray:
    """log1p of a title's watches in the POPULARITY_WINDOW_DAYS before now."""
    return np.log1p(np.asarray(watches_in_window, dtype=np.float64))


def release_age_years(release_seconds: npt.ArrayLike, now_seconds: float) -> FloatArray:
    """Years from a title's release (unix seconds) to now; 0 for a title not yet released."""
    age = (now_seconds - np.asarray(release_seconds, dtype=np.float64)) / SECONDS_PER_YEAR
    clipped: FloatArray = np.maximum(age, 0.0)
    return clipped


def user_activity(watch_counts: npt.ArrayLike) -> FloatArray:
    """log1p of how many watch events the user has (all of their history)."""
    return np.log1p(np.asarray(watch_counts, dtype=np.float64))


def assemble(features: dict[str, npt.ArrayLike]) -> npt.NDArray[np.float32]:
    """The ranker's float32 matrix, columns in the catalog's order; refuses missing or extra."""
    if set(features) != set(RANKER_FEATURE_NAMES):
        raise ValueError(f"ranker features must be exactly {RANKER_FEATURE_NAMES}")
    columns = [np.asarray(features[name], dtype=np.float64) for name in RANKER_FEATURE_NAMES]
    return np.column_stack(columns).astype(np.float32)
