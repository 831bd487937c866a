"""Stage 4: turn scored candidates into a list: diversity (MMR on genres) and business rules.

Both algorithms end here with their own relevance: the control's weighted blend of the sources'
scores, the treatment's ranker probability. Each is min-max scaled to [0, 1] over the
candidates, then picked greedily: relevance + DIVERSITY_WEIGHT x (1 - the highest genre-Jaccard
similarity to a title already picked), the design brief's 0.1 diversity term. Business rules:
no genre in more than 70 % of the list (while the pool allows), and one discovery slot (a title
outside the user's top genres) in any personalized list of 5 or more, and one new release in
a cold-start list of 5 or more when a title came out in the last weeks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common.arrays import FloatArray, IntArray

DIVERSITY_WEIGHT = 0.1
GENRE_CAP_SHARE = 0.7
DISCOVERY_MIN_K = 5


def min_max(values: npt.ArrayLike) -> FloatArray:
    """Scale to [0, 1]; a constant (or empty) input becomes all zeros."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return array
    low, high = float(array.min()), float(array.max())
    if not high > low:
        return np.zeros_like(array)
    scaled: FloatArray = (array - low) / (high - low)
    return scaled


def genre_jaccard(genres: npt.ArrayLike) -> FloatArray:
    """Pairwise genre Jaccard similarity of titles given as multi-hot rows."""
    g = np.asarray(genres, dtype=np.float64)
    shared = g @ g.T
    sizes = g.sum(axis=1)
    either = sizes[:, None] + sizes[None, :] - shared
    similarity: FloatArray = np.divide(shared, either, out=np.zeros_like(shared),
                                          where=either > 0)
    return similarity


@dataclass(frozen=True)
class RerankPolicy:
    """The rerank's knobs (MLSD_RECOMMENDER_DIVERSITY_WEIGHT, ..._GENRE_CAP_SHARE, ...)."""

    diversity_weight: float = DIVERSITY_WEIGHT
    genre_cap_share: float = GENRE_CAP_SHARE
    discovery_slot: bool = True


@dataclass(frozen=True)
class Picked:
    """Positions into the candidate arrays, in list order, and which ones are discovery slots."""

    positions: IntArray
    discovery: frozenset[int]                   # positions placed by the discovery rule


def mmr(relevance: npt.ArrayLike, genres: npt.NDArray[np.floating], k: int,
        diversity_weight: float = DIVERSITY_WEIGHT,
        genre_cap_share: float = GENRE_CAP_SHARE) -> IntArray:
    """Greedy maximal marginal relevance with a per-genre cap; positions into `relevance`.

    A title whose genres would exceed the cap is passed over while others remain; when only such
    titles remain the list is filled from them (a short list is worse than a repetitive one).
    """
    rel = np.asarray(relevance, dtype=np.float64)
    n = len(rel)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    has_genre = np.asarray(genres, dtype=np.float64) > 0
    similarity = genre_jaccard(has_genre)
    cap = max(1, math.ceil(genre_cap_share * k))
    score = rel + diversity_weight                 # closest similarity 0 before the first pick
    per_genre = np.zeros(has_genre.shape[1], dtype=np.int64)
    blocked: npt.NDArray[np.bool_] = np.zeros(n, dtype=bool)  # a genre of it is at the cap
    picks: list[int] = []
    for _ in range(k):
        allowed = np.where(blocked, -np.inf, score)
        best = int(np.argmax(allowed))
        if not np.isfinite(allowed[best]):         # only capped titles left: fill from them
            best = int(np.argmax(score))
        picks.append(best)
        # Diversity term: relevance + w x (1 - highest similarity to a title already picked).
        score = np.minimum(score, rel + diversity_weight * (1.0 - similarity[best]))
        score[best] = -np.inf
        per_genre += has_genre[best]
        full = per_genre >= cap
        if full.any():
            blocked = np.any(has_genre & full, axis=1)
    return np.asarray(picks, dtype=np.int64)


def with_discovery_slot(picks: IntArray, relevance: npt.ArrayLike,
                        outside_top_genres: npt.NDArray[np.bool_], k: int) -> Picked:
    """Make sure a personalized list of k >= 5 holds a title outside the user's top genres.

    If none of the picks is one, the most relevant such candidate takes the last slot. A user
    without top genres (no history) gets no discovery slot: everything is new to them.
    """
    outside = np.asarray(outside_top_genres, dtype=bool)
    if k < DISCOVERY_MIN_K or len(picks) < DISCOVERY_MIN_K or outside[picks].any():
        return Picked(picks, frozenset())
    rel = np.asarray(relevance, dtype=np.float64)
    pool = np.flatnonzero(outside)
    pool = pool[~np.isin(pool, picks)]
    if len(pool) == 0:
        return Picked(picks, frozenset())
    best = int(pool[np.argmax(rel[pool])])
    positions = picks.copy()
    positions[-1] = best
    return Picked(positions, frozenset({best}))


def with_new_release_slot(picks: IntArray, is_new_release: npt.NDArray[np.bool_],
                          released: npt.ArrayLike, k: int) -> IntArray:
    """Make sure a cold-start list of k >= 5 shows a new release when there is one.

    Popularity and trending need watches, so a title released (or added to the catalog)
    yesterday would never reach a cold-start list on its own: if none of the picks is a new
    release, the newest one takes the last slot (or joins a short list).
    """
    new = np.asarray(is_new_release, dtype=bool)
    if k < DISCOVERY_MIN_K or not new.any() or new[picks].any():
        return picks
    pool = np.flatnonzero(new)
    pool = pool[~np.isin(pool, picks)]
    rel = np.asarray(released, dtype=np.float64)
    newest = int(pool[np.lexsort((pool, -rel[pool]))[0]])
    if len(picks) < k:
        return np.append(picks, newest).astype(np.int64)
    positions = picks.copy()
    positions[-1] = newest
    return positions
