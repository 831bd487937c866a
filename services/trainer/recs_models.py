"""Recommendation algorithms on matrices: state as of an instant, MF, item-kNN, blend, candidates.

Users and titles are row indices here (the world's frames give the ids). Every scorer returns a
[users, titles] matrix in which a title a user may not be shown (already watched, or above the
profile's maturity limit) scores -inf, so that every algorithm ranks the same eligible titles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from services.common.arrays import BoolArray, FloatArray, IntArray
from services.designs.recs import definitions as rf
from services.trainer.recs_metrics import jaccard_similarity, top_k
from services.trainer.worlds import WatchWorld

BLEND_WEIGHTS = {"cf": 0.4, "content": 0.3, "trending": 0.2, "diversity": 0.1}
BLEND_POOL = 200  # the blend's greedy diversity pass looks at each user's best 200 by the rest
KNN_NEIGHBOURS = 100
POPULARITY_DAMPING = 0.25  # column scale (1 + watchers) ** -0.25 before the SVD


@dataclass(frozen=True)
class Events:
    """Watch events as parallel arrays (row indices, unix seconds, taste weights)."""

    users: IntArray
    items: IntArray
    seconds: FloatArray
    weights: FloatArray

    @classmethod
    def of(cls, world: WatchWorld) -> Events:
        frame = world.interactions
        return cls(
            world.user_rows(frame["user_id"].to_numpy()),
            world.title_rows(frame["content_id"].to_numpy()),
            frame["timestamp"].astype("int64").to_numpy() / 1e9,
            rf.watch_weights(frame["completed"].to_numpy()),
        )

    def between(self, start: float, end: float) -> Events:
        keep = (self.seconds >= start) & (self.seconds < end)
        return Events(self.users[keep], self.items[keep], self.seconds[keep], self.weights[keep])


@dataclass(frozen=True)
class Titles:
    """Per-title arrays in row order."""

    ids: npt.NDArray[np.str_]
    genres: FloatArray              # multi-hot [n_titles, n_genres]
    release_seconds: FloatArray
    maturity: IntArray
    content: FloatArray             # unit content vectors
    genre_names: tuple[str, ...]    # the world's vocabulary: the genre columns' names

    @classmethod
    def of(cls, world: WatchWorld) -> Titles:
        frame, vocabulary = world.titles, world.genres
        column = {name: i for i, name in enumerate(vocabulary)}
        genres = np.zeros((len(frame), len(vocabulary)))
        for row, names in enumerate(frame["genres"]):
            genres[row, [column[name] for name in names.split("|")]] = 1.0
        maturity = frame["maturity_level"].to_numpy().astype(np.int64)
        return cls(
            ids=frame["content_id"].to_numpy().astype(str),
            genres=genres,
            release_seconds=frame["release_date"].astype("int64").to_numpy() / 1e9,
            maturity=maturity,
            content=rf.content_vectors(genres, frame["release_year"].to_numpy(), maturity),
            genre_names=tuple(vocabulary),
        )


@dataclass(frozen=True)
class State:
    """What the online feature store would hold at `as_of`, from the events before it."""

    as_of: float
    weights: sp.csr_matrix          # [users, titles] sum of watch weights
    watch_counts: IntArray          # [users]
    genre_counts: FloatArray        # [users, genres] weighted
    popularity: FloatArray          # [titles] popularity feature
    trending: FloatArray            # [titles] trending feature


def state_at(events: Events, n_users: int, titles: Titles, as_of: float) -> State:
    past = events.between(-np.inf, as_of)
    shape = (n_users, len(titles.ids))
    weights = sp.csr_matrix((past.weights, (past.users, past.items)), shape=shape)
    window = past.seconds >= as_of - rf.POPULARITY_WINDOW_DAYS * 86_400.0
    recent = np.bincount(past.items[window], minlength=shape[1])
    decayed = np.bincount(past.items, weights=rf.decay_factor(as_of - past.seconds),
                          minlength=shape[1])
    return State(
        as_of=as_of,
        weights=weights,
        watch_counts=np.bincount(past.users, minlength=n_users).astype(np.int64),
        genre_counts=np.asarray(weights @ titles.genres),
        popularity=rf.popularity_scores(recent),
        trending=rf.trending_scores(decayed),
    )


def fit_item_embeddings(weights: sp.csr_matrix, dim: int, seed: int) -> npt.NDArray[np.float32]:
    """PureSVD: the top right singular vectors of the user x title weight matrix, [titles, dim].

    Columns are scaled by (1 + watchers) ** -POPULARITY_DAMPING first, so that a few blockbusters
    do not take over the leading factors (recall@10 on the default world: 0.217 undamped, 0.238
    damped, both at dim 32). Users still fold in with their plain weights (rf.taste_vector), so
    the damping lives only in how V was found, never in the online path.
    """
    watchers = np.asarray((weights > 0).sum(axis=0)).ravel().astype(np.float64)
    damped = weights @ sp.diags_array((1.0 + watchers) ** -POPULARITY_DAMPING)
    svd = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=6, random_state=seed)
    svd.fit(damped)
    components: npt.NDArray[np.float32] = svd.components_.T.astype(np.float32)
    return components


def taste_vectors(weights: sp.csr_matrix, item_vectors: npt.NDArray[np.floating]) -> FloatArray:
    """rf.taste_vector for every row of a user x title weight matrix, as one sparse product."""
    return np.asarray(weights @ item_vectors.astype(np.float64))


@dataclass(frozen=True)
class UserViews:
    """Per-user online state derived from a State, for a subset of users (rows)."""

    rows: IntArray
    taste: FloatArray               # [users, dim]
    profile: FloatArray             # [users, content dim]
    top_genres: BoolArray           # [users, genres]
    activity: FloatArray            # [users]
    eligible: BoolArray             # [users, titles]


def user_views(state: State, rows: IntArray, embeddings: npt.NDArray[np.float32],
               titles: Titles, max_maturity: IntArray) -> UserViews:
    weights = state.weights[rows]
    taste = taste_vectors(weights, embeddings)
    profile = taste_vectors(weights, titles.content)  # rf.genre_profile, batched
    allowed = titles.maturity[None, :] <= max_maturity[rows][:, None]
    eligible = allowed & (weights.toarray() == 0)
    return UserViews(rows, taste, profile, rf.top_genres_mask(state.genre_counts[rows]),
                     rf.user_activity(state.watch_counts[rows]), eligible)


def masked(scores: npt.NDArray[np.floating], eligible: BoolArray) -> FloatArray:
    result: FloatArray = np.where(eligible, scores, -np.inf)
    return result


def cf_scores(views: UserViews, embeddings: npt.NDArray[np.float32]) -> FloatArray:
    scores: FloatArray = views.taste @ embeddings.T.astype(np.float64)
    return scores


def content_scores_of(views: UserViews, titles: Titles) -> FloatArray:
    return rf.content_scores(views.profile, titles.content)


def popularity_ranking(state: State, views: UserViews) -> FloatArray:
    """Most watched in the last 30 days, trending as the tie-break."""
    score = state.popularity + 1e-3 * state.trending
    return masked(np.broadcast_to(score, views.eligible.shape), views.eligible)


def knn_similarity(weights: sp.csr_matrix, neighbours: int = KNN_NEIGHBOURS) -> FloatArray:
    """Item-item cosine of co-watching (binary), each title keeping its `neighbours` best."""
    watched = (weights > 0).astype(np.float64)
    co = np.asarray((watched.T @ watched).todense())
    norms = np.sqrt(np.diag(co))
    similarity: FloatArray = co / np.maximum(np.outer(norms, norms), 1e-12)
    np.fill_diagonal(similarity, 0.0)
    if neighbours < similarity.shape[1]:
        cut = -np.partition(-similarity, neighbours - 1, axis=1)[:, neighbours - 1: neighbours]
        similarity = np.where(similarity >= cut, similarity, 0.0)
    return similarity


def knn_scores(state: State, views: UserViews, similarity: FloatArray) -> FloatArray:
    scores = np.asarray(state.weights[views.rows] @ similarity)
    return masked(scores, views.eligible)


def ease_similarity(weights: sp.csr_matrix, lam: float) -> npt.NDArray[np.float32]:
    """EASE (Steck, WWW 2019): B = I - P diag(1 / diag(P)), P = (X^T X + lam I)^-1, diag(B) = 0.

    X is binary co-watching: the closed-form least-squares item-item model whose zero diagonal
    keeps a title from predicting itself. lam is chosen on the validation window (recs.py).
    """
    # float32: twice as fast as float64 to invert and to score with on a 2,500-title catalog,
    # and the ranking of titles is the same (the matrix is well conditioned for lam >= 10).
    watched = (weights > 0).astype(np.float32)
    gram = np.asarray((watched.T @ watched).todense())
    gram[np.diag_indices_from(gram)] += lam
    precision = np.linalg.inv(gram)
    similarity: npt.NDArray[np.float32] = (-precision / np.diag(precision)[None, :]).astype(
        np.float32)
    np.fill_diagonal(similarity, 0.0)
    return similarity


def ease_scores(state: State, views: UserViews,
                similarity: npt.NDArray[np.float32]) -> FloatArray:
    watched = (state.weights[views.rows] > 0).astype(np.float32)
    return masked(np.asarray(watched @ similarity), views.eligible)


def _min_max(scores: FloatArray, eligible: BoolArray) -> FloatArray:
    """Scale each row to [0, 1] over its eligible titles (a constant row becomes 0)."""
    low = np.min(np.where(eligible, scores, np.inf), axis=1, keepdims=True)
    high = np.max(np.where(eligible, scores, -np.inf), axis=1, keepdims=True)
    span = high - low
    scaled = np.divide(scores - low, span, out=np.zeros_like(scores),
                       where=np.isfinite(span) & (span > 0))
    return masked(scaled, eligible)


def blend_top_k(
    cf: FloatArray, content: FloatArray, trending: FloatArray, eligible: BoolArray,
    similarity: npt.NDArray[np.float32], k: int,
) -> IntArray:
    """The design brief's hybrid: 0.4 cf + 0.3 content + 0.2 trending + 0.1 diversity, greedy.

    cf, content and trending are each min-max scaled to [0, 1] per user over the eligible titles.
    Diversity is maximal marginal relevance on genres: 1 - the highest genre-Jaccard similarity
    to a title already picked for this list (1 for the first pick), so it changes as the list
    grows and the list is built one pick at a time from the user's best BLEND_POOL titles.
    """
    w = BLEND_WEIGHTS
    base = (w["cf"] * _min_max(cf, eligible) + w["content"] * _min_max(content, eligible)
            + w["trending"] * _min_max(np.broadcast_to(trending, cf.shape), eligible))
    pool = top_k(base, BLEND_POOL)
    pool_ok = pool >= 0
    pool_items = np.where(pool_ok, pool, 0)
    pool_base = np.where(pool_ok, np.take_along_axis(base, pool_items, axis=1), -np.inf)
    closest = np.zeros(pool.shape)
    picks = np.full((cf.shape[0], k), -1, dtype=np.int64)
    users = np.arange(cf.shape[0])
    for step in range(min(k, pool.shape[1])):
        score = pool_base + w["diversity"] * (1.0 - closest)
        best = np.argmax(score, axis=1)
        found = np.isfinite(score[users, best])
        picks[:, step] = np.where(found, pool[users, best], -1)
        pool_base[users, best] = -np.inf
        chosen = pool_items[users, best]
        closest = np.maximum(closest, similarity[chosen[:, None], pool_items])
    return picks


def candidate_mask(
    cf: FloatArray, content: FloatArray, trending: FloatArray, eligible: BoolArray,
    sizes: tuple[int, int, int],
) -> BoolArray:
    """The recommender's candidate union: cf top-N, content top-N and trending top-N."""
    mask = np.zeros(eligible.shape, dtype=bool)
    users = np.arange(eligible.shape[0])[:, None]
    for scores, n in zip((cf, content, np.broadcast_to(trending, cf.shape)), sizes, strict=True):
        picked = top_k(masked(scores, eligible), n)
        mask[np.broadcast_to(users, picked.shape)[picked >= 0], picked[picked >= 0]] = True
    return mask


def genre_similarity(titles: Titles) -> npt.NDArray[np.float32]:
    return jaccard_similarity(titles.genres)


def ranker_matrix(
    state: State, views: UserViews, titles: Titles, embeddings: npt.NDArray[np.float32],
    pair_users: IntArray, pair_items: IntArray,
) -> npt.NDArray[np.float32]:
    """Catalog-ordered features for (user, title) pairs; pair_users index into views' rows."""
    cf = np.einsum("pd,pd->p", views.taste[pair_users],
                   embeddings[pair_items].astype(np.float64))
    content = np.einsum("pc,pc->p", _unit_rows(views.profile)[pair_users],
                        titles.content[pair_items])
    return rf.assemble({
        "cf_score": cf,
        "content_score": content,
        "popularity": state.popularity[pair_items],
        "trending_score": state.trending[pair_items],
        "genre_match": rf.genre_match(views.top_genres[pair_users], titles.genres[pair_items]),
        "release_age_years": rf.release_age_years(titles.release_seconds[pair_items],
                                                  state.as_of),
        "user_activity": views.activity[pair_users],
    })


def _unit_rows(matrix: FloatArray) -> FloatArray:
    norm = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: FloatArray = np.divide(matrix, norm, out=np.zeros_like(matrix), where=norm > 0)
    return unit
