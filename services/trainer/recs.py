"""Train and evaluate the recommenders on a viewing world; hand on the ranker and embeddings.

Time is split twice so that nothing is tuned on the future it is scored on:

    |---------- history ----------|-- validation (7 d) --|-- held-out future (7 d) --|
    state as of t_val: embeddings, features    labels for the ranker
    state as of split: embeddings, features                           labels for evaluation

Every algorithm is evaluated on the held-out future over the full catalog (titles a user already
watched or may not watch are excluded), for users with history before the split and at least one
watch after it.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from services.common.catalog import RANKER_FEATURE_NAMES
from services.trainer import recs_models as rm
from services.trainer.artifacts import TrainedModel, data_hash
from services.trainer.recs_metrics import (
    catalog_coverage,
    intra_list_diversity,
    ndcg_at_k,
    recall_at_k,
    top_k,
)
from services.trainer.recs_report import write_report
from services.trainer.worlds.viewing import GENRES, ViewingWorld, expected_clicks

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

EMBEDDING_DIM = 32
CANDIDATE_SIZES = (100, 50, 50)   # cf top-N, content top-N, trending top-N
K = 10
CURVE_KS = (1, 2, 5, 10, 20, 50)
HOLDOUT_ROWS = 5_000
NEGATIVE_SHARE = 0.2   # negatives kept for fitting: recall@10 is the same, the fit is 4x faster
ALGORITHMS = ("popularity", "item-kNN", "matrix factorization", "hybrid blend", "ranker")


@dataclass(frozen=True)
class RecsArtifacts:
    """What serving and streaming need beside the ranker, rows in `title_ids` order."""

    as_of: float                                  # unix seconds the state was taken at
    title_ids: npt.NDArray[np.str_]
    title_names: npt.NDArray[np.str_]             # what people read (the recommender shows it)
    item_embeddings: npt.NDArray[np.float32]      # [titles, EMBEDDING_DIM]
    content_vectors: npt.NDArray[np.float32]      # [titles, content dim]
    genre_multi_hot: npt.NDArray[np.uint8]        # [titles, genres], columns in GENRES order
    release_seconds: FloatArray                   # [titles]
    maturity_levels: IntArray                     # [titles]
    popularity: npt.NDArray[np.float32]           # [titles] feature value at as_of
    trending: npt.NDArray[np.float32]             # [titles] feature value at as_of
    user_ids: npt.NDArray[np.str_]                # users with history before as_of
    user_embeddings: npt.NDArray[np.float32]      # [users, EMBEDDING_DIM] taste vectors

    def to_npz(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, as_of=np.float64(self.as_of), title_ids=self.title_ids,
            title_names=self.title_names,
            item_embeddings=self.item_embeddings, content_vectors=self.content_vectors,
            genre_names=np.asarray(GENRES), genre_multi_hot=self.genre_multi_hot,
            release_seconds=self.release_seconds, maturity_levels=self.maturity_levels,
            popularity=self.popularity, trending=self.trending, user_ids=self.user_ids,
            user_embeddings=self.user_embeddings)
        return buffer.getvalue()


@dataclass
class RecsTrainingResult:
    ranker: TrainedModel
    artifacts: RecsArtifacts
    evaluation: pd.DataFrame                       # one row per algorithm, metric columns
    recall_curves: pd.DataFrame                    # recall@k, rows algorithms, columns CURVE_KS
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Stage:
    """One as-of instant: the state, the embeddings fit on it, the users scored, their labels."""

    state: rm.State
    embeddings: npt.NDArray[np.float32]
    views: rm.UserViews
    cf: FloatArray
    content: FloatArray
    labels: BoolArray                              # [users, titles] watched in the next window


def _stage(world: ViewingWorld, events: rm.Events, titles: rm.Titles, as_of: float,
           until: float) -> _Stage:
    n_users = len(world.users)
    state = rm.state_at(events, n_users, titles, as_of)
    dim = min(EMBEDDING_DIM, len(titles.ids) - 1)  # a tiny test catalog has fewer dimensions
    embeddings = rm.fit_item_embeddings(state.weights, dim, world.config.seed)
    window = events.between(as_of, until)
    has_history = state.watch_counts > 0
    has_future = np.bincount(window.users, minlength=n_users) > 0
    rows = np.flatnonzero(has_history & has_future).astype(np.int64)
    max_maturity = world.users["max_maturity"].to_numpy().astype(np.int64)
    views = rm.user_views(state, rows, embeddings, titles, max_maturity)
    position = np.full(n_users, -1)
    position[rows] = np.arange(len(rows))
    labels = np.zeros(views.eligible.shape, dtype=bool)
    keep = position[window.users] >= 0
    labels[position[window.users[keep]], window.items[keep]] = True
    labels &= views.eligible
    cf = rm.cf_scores(views, embeddings)
    content = rm.content_scores_of(views, titles)
    return _Stage(state, embeddings, views, cf, content, labels)


def _candidate_pairs(stage: _Stage) -> tuple[IntArray, IntArray]:
    mask = rm.candidate_mask(stage.cf, stage.content, stage.state.trending,
                             stage.views.eligible, CANDIDATE_SIZES)
    users, items = np.nonzero(mask)
    return users.astype(np.int64), items.astype(np.int64)


def _fit_ranker(stage: _Stage, titles: rm.Titles, seed: int
                ) -> tuple[HistGradientBoostingClassifier, str, dict[str, float]]:
    users, items = _candidate_pairs(stage)
    labels = stage.labels[users, items]
    keep = labels | (np.random.default_rng(seed).random(len(labels)) < NEGATIVE_SHARE)
    x = rm.ranker_matrix(stage.state, stage.views, titles, stage.embeddings, users[keep],
                         items[keep])
    y = labels[keep].astype(np.int64)
    ranker = HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=100,
        l2_regularization=1.0, early_stopping=True, validation_fraction=0.1,
        n_iter_no_change=15, random_state=seed)
    # One OpenMP thread: on 2 shared cores, a second thread that has to wait for a busy core
    # made this fit 5-15x slower (measured), while one thread takes about 1.5 s.
    with threadpool_limits(limits=1, user_api="openmp"):
        ranker.fit(x, y)
    info = {"train_pairs": float(len(y)), "train_positive_rate": float(y.mean()),
            "train_users": float(len(stage.views.rows)), "iterations": float(ranker.n_iter_)}
    return ranker, data_hash(x, y), info


def _lists(stage: _Stage, titles: rm.Titles, ranker: HistGradientBoostingClassifier,
           depth: int) -> tuple[dict[str, IntArray], npt.NDArray[np.float32], float]:
    """Each algorithm's top lists for the stage's users, the ranker's test matrix, cand. recall."""
    views, state = stage.views, stage.state
    lists = {
        "popularity": top_k(rm.popularity_ranking(state, views), depth),
        "item-kNN": top_k(rm.knn_scores(state, views, rm.knn_similarity(state.weights)), depth),
        "matrix factorization": top_k(rm.masked(stage.cf, views.eligible), depth),
        "hybrid blend": rm.blend_top_k(stage.cf, stage.content, state.trending, views.eligible,
                                       rm.genre_similarity(titles), depth),
    }
    users, items = _candidate_pairs(stage)
    x = rm.ranker_matrix(state, views, titles, stage.embeddings, users, items)
    scores = np.full(views.eligible.shape, -np.inf)
    scores[users, items] = ranker.predict_proba(x)[:, 1]
    lists["ranker"] = top_k(scores, depth)
    candidate_recall = float(stage.labels[users, items].sum() / stage.labels.sum())
    return lists, x, candidate_recall


def _evaluate(world: ViewingWorld, stage: _Stage, lists: dict[str, IntArray],
              titles: rm.Titles) -> tuple[pd.DataFrame, pd.DataFrame]:
    labels, n_titles = stage.labels, len(titles.ids)
    table = pd.DataFrame({
        "recall_at_10": {a: recall_at_k(t, labels, K) for a, t in lists.items()},
        "ndcg_at_10": {a: ndcg_at_k(t, labels, K) for a, t in lists.items()},
        "coverage_at_10": {a: catalog_coverage(t, n_titles, K) for a, t in lists.items()},
        "diversity_at_10": {a: intra_list_diversity(t, titles.genres, K)
                            for a, t in lists.items()},
        # What an A/B simulation will see: the world's click model applied to the top 10.
        "expected_clicks_at_10": {a: float(expected_clicks(world, stage.views.rows, t[:, :K])
                                           .mean()) for a, t in lists.items()},
    })
    curves = pd.DataFrame({k: {a: recall_at_k(t, labels, k) for a, t in lists.items()}
                           for k in CURVE_KS})
    return table, curves


def train_recommendations(
    world: ViewingWorld,
    report_dir: Path,
    progress: Callable[[str], None] | None = None,
    timings: Mapping[str, float] | None = None,
) -> RecsTrainingResult:
    """Fit embeddings and the ranker, evaluate every algorithm, write the report.

    `timings` are earlier steps the caller measured (e.g. generating the world), listed first in
    the report's timing table.
    """
    say = progress or (lambda message: logger.info("%s", message))
    timings = dict(timings or {})
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now
        say(f"recommendations: {name} took {timings[name]:.1f} s")

    config = world.config
    events, titles = rm.Events.of(world), rm.Titles.of(world)
    split = config.split.timestamp()
    window = config.holdout_days * 86_400.0  # the validation week is as long as the future
    lap("prepare")
    ranker, training_hash, fit_info = _fit_ranker(
        _stage(world, events, titles, split - window, split), titles, config.seed)
    lap("fit ranker (validation window)")
    test = _stage(world, events, titles, split, split + window)
    lists, x_test, candidate_recall = _lists(test, titles, ranker, max(CURVE_KS))
    evaluation, curves = _evaluate(world, test, lists, titles)
    lap("evaluate (held-out future)")

    artifacts = _artifacts(world, test, titles)
    rng = np.random.default_rng(config.seed)
    holdout_rows = rng.choice(len(x_test), size=min(HOLDOUT_ROWS, len(x_test)), replace=False)
    cf_n, content_n, trending_n = CANDIDATE_SIZES
    metrics = {**evaluation.loc["ranker"].to_dict(), "candidate_recall": candidate_recall,
               "eval_users": float(len(test.views.rows)), **fit_info}
    model = TrainedModel(
        name="ranker",
        estimator=ranker,
        feature_names=RANKER_FEATURE_NAMES,
        holdout=x_test[np.sort(holdout_rows)],
        metrics={k: float(v) for k, v in metrics.items()},
        training_data_hash=training_hash,
        description=(
            "HistGradientBoostingClassifier over RANKER_FEATURES: P(the user watches the "
            f"candidate in the next {config.holdout_days} days); candidates = cf top-{cf_n} + "
            f"content top-{content_n} + trending top-{trending_n}"),
        extra_files={"embeddings.npz": artifacts.to_npz()},
    )
    result = RecsTrainingResult(model, artifacts, evaluation, curves, timings)
    write_report(result, world, report_dir)
    lap("report")
    return result


def _artifacts(world: ViewingWorld, stage: _Stage, titles: rm.Titles) -> RecsArtifacts:
    state = stage.state
    rows = np.flatnonzero(state.watch_counts > 0)
    taste = rm.taste_vectors(state.weights[rows], stage.embeddings)
    return RecsArtifacts(
        as_of=state.as_of,
        title_ids=titles.ids,
        title_names=world.titles["title"].to_numpy().astype(str),
        item_embeddings=stage.embeddings,
        content_vectors=titles.content.astype(np.float32),
        genre_multi_hot=titles.genres.astype(np.uint8),
        release_seconds=titles.release_seconds,
        maturity_levels=titles.maturity,
        popularity=state.popularity.astype(np.float32),
        trending=state.trending.astype(np.float32),
        user_ids=world.users["user_id"].to_numpy()[rows].astype(str),
        user_embeddings=taste.astype(np.float32),
    )
