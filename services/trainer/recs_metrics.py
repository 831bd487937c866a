"""Offline ranking metrics over the full catalog: recall@k, NDCG@k, coverage, diversity.

A recommendation list is a row of title indices, best first; -1 pads a list that ran out of
eligible titles. Relevance is binary: a title is relevant to a user if they watched it in the
held-out future. Every metric is the mean over users (each user counts once).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.common.arrays import BoolArray, FloatArray, IntArray
from services.trainer.bootstrap import mean_interval


def top_k(scores: npt.NDArray[np.floating], k: int) -> IntArray:
    """Indices of each row's k highest finite scores, best first (ties: lower index); -1 pads."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    # lexsort's last key is primary: score descending, then index ascending for a stable order.
    order = np.lexsort((part, -part_scores), axis=1)
    ranked = np.take_along_axis(part, order, axis=1).astype(np.int64)
    finite = np.isfinite(np.take_along_axis(scores, ranked, axis=1))
    result: IntArray = np.where(finite, ranked, -1)
    return result


def _hits(top: IntArray, relevant: BoolArray, k: int) -> BoolArray:
    lists = top[:, :k]
    safe = np.where(lists >= 0, lists, 0)
    hits: BoolArray = np.take_along_axis(relevant, safe, axis=1) & (lists >= 0)
    return hits


def recall_per_user(top: IntArray, relevant: BoolArray, k: int) -> FloatArray:
    """|top-k ∩ relevant| / |relevant| for each user with at least one relevant title."""
    n_relevant = relevant.sum(axis=1)
    users = n_relevant > 0
    hits = _hits(top[users], relevant[users], k).sum(axis=1)
    recall: FloatArray = hits / n_relevant[users]
    return recall


def recall_at_k(top: IntArray, relevant: BoolArray, k: int) -> float:
    """Mean of |top-k ∩ relevant| / |relevant| over users with at least one relevant title."""
    return float(np.mean(recall_per_user(top, relevant, k)))


def ndcg_per_user(top: IntArray, relevant: BoolArray, k: int) -> FloatArray:
    """Binary-relevance NDCG@k of each user with at least one relevant title."""
    n_relevant = relevant.sum(axis=1)
    users = n_relevant > 0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits = _hits(top[users], relevant[users], k)
    dcg = (hits * discounts[: hits.shape[1]]).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(n_relevant[users], k) - 1]
    ndcg: FloatArray = dcg / ideal
    return ndcg


def ndcg_at_k(top: IntArray, relevant: BoolArray, k: int) -> float:
    """Binary-relevance NDCG@k: DCG = sum of 1/log2(rank + 1) over hits, over the ideal DCG."""
    return float(np.mean(ndcg_per_user(top, relevant, k)))


def bootstrap_interval(per_user: FloatArray, resamples: int, seed: int,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a per-user metric's mean (users resampled with
    replacement): how far the mean could move with another draw of the same number of users."""
    return mean_interval(per_user, resamples, seed, level)


def catalog_coverage(top: IntArray, n_titles: int, k: int) -> float:
    """Share of the catalog that appears in at least one user's top k."""
    shown = np.unique(top[:, :k])
    return float(np.count_nonzero(shown >= 0) / n_titles)


def jaccard_similarity(item_genres: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Genre-set Jaccard similarity of every pair of titles (1 on the diagonal)."""
    genres = np.asarray(item_genres, dtype=np.float32)
    inter = genres @ genres.T
    sizes = genres.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - inter
    similarity: npt.NDArray[np.float32] = np.divide(
        inter, union, out=np.zeros_like(inter), where=union > 0)
    return similarity


def intra_list_diversity(top: IntArray, item_genres: npt.ArrayLike, k: int) -> float:
    """Mean pairwise genre-Jaccard distance (1 - similarity) within each top k, over users."""
    genres = np.asarray(item_genres, dtype=np.float32)
    lists = top[:, :k]
    valid = lists >= 0
    g = genres[np.where(valid, lists, 0)] * valid[..., None]
    inter = np.einsum("ukg,ulg->ukl", g, g)
    sizes = g.sum(axis=2)
    union = sizes[:, :, None] + sizes[:, None, :] - inter
    distance = 1.0 - np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
    pairs = valid[:, :, None] & valid[:, None, :] & ~np.eye(lists.shape[1], dtype=bool)
    n_pairs = pairs.sum(axis=(1, 2))
    per_user = (distance * pairs).sum(axis=(1, 2)) / np.maximum(n_pairs, 1)
    return float(np.mean(per_user[n_pairs > 0]))
