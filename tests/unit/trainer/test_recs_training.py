"""Recommendation training end to end on a tiny world: the ranker, its artifacts, the report."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from services.designs.model_features import RANKER_FEATURE_NAMES
from services.trainer import recs_models as rm
from services.trainer.recs import ALGORITHMS, RecsTrainingResult, train_recommendations
from services.trainer.worlds.viewing import ViewingConfig, ViewingWorld, generate_viewing


@pytest.fixture(scope="module")
def world() -> ViewingWorld:
    return generate_viewing(ViewingConfig(seed=5, n_users=300, n_titles=150))


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("report")


@pytest.fixture(scope="module")
def result(world: ViewingWorld, report_dir: Path) -> RecsTrainingResult:
    return train_recommendations(world, report_dir, progress=None)


def test_the_ranker_is_trained_on_the_catalogs_features(result: RecsTrainingResult) -> None:
    ranker = result.ranker

    assert ranker.name == "ranker"
    assert ranker.feature_names == RANKER_FEATURE_NAMES
    assert ranker.holdout.dtype == np.float32
    assert ranker.holdout.shape[1] == len(RANKER_FEATURE_NAMES)
    assert len(ranker.holdout) >= 1_000
    assert ranker.estimator.predict_proba(ranker.holdout).shape == (len(ranker.holdout), 2)
    assert {"recall_at_10", "ndcg_at_10", "candidate_recall"} <= set(ranker.metrics)


def test_every_algorithm_is_evaluated_with_metrics_in_range(result: RecsTrainingResult) -> None:
    shares = result.evaluation.drop(columns="expected_clicks_at_10")

    assert tuple(result.evaluation.index) == ALGORITHMS
    assert ((shares >= 0) & (shares <= 1)).all().all()
    assert (result.evaluation["expected_clicks_at_10"] > 0).all()


def test_embeddings_travel_beside_the_ranker_in_title_order(
    result: RecsTrainingResult, world: ViewingWorld
) -> None:
    with np.load(io.BytesIO(result.ranker.extra_files["embeddings.npz"])) as stored:
        np.testing.assert_array_equal(stored["title_ids"], world.titles["content_id"])
        assert stored["item_embeddings"].dtype == np.float32
        assert stored["item_embeddings"].shape[0] == len(world.titles)
        assert stored["content_vectors"].shape[0] == len(world.titles)
        assert stored["user_embeddings"].shape == (len(stored["user_ids"]),
                                                   stored["item_embeddings"].shape[1])


def test_user_embeddings_are_the_fold_in_of_their_history(
    result: RecsTrainingResult, world: ViewingWorld
) -> None:
    artifacts = result.artifacts
    history = world.train[world.train["user_id"] == artifacts.user_ids[0]]
    watched = world.title_rows(history["content_id"].to_numpy())
    weights = np.where(history["completed"], 1.0, 0.5)

    expected = weights @ artifacts.item_embeddings[watched]

    np.testing.assert_allclose(artifacts.user_embeddings[0], expected, rtol=1e-5, atol=1e-6)


def test_the_report_and_its_plots_are_written(result: RecsTrainingResult, report_dir: Path) -> None:
    text = (report_dir / "recommendations.md").read_text()

    assert f"| ranker | {result.evaluation.loc['ranker', 'recall_at_10']:.3f} |" in text
    assert "seed 5" in text
    assert sorted(p.name for p in (report_dir / "img").iterdir()) == [
        "recs-long-tail.png", "recs-metrics.png", "recs-recall-at-k.png"]


def test_the_blend_prefers_a_new_genre_when_relevance_ties() -> None:
    # Titles 0 and 1 share a genre, title 2 has another; 1 and 2 tie on relevance.
    genres = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    titles = rm.Titles(np.array(["t0", "t1", "t2"]), genres, np.zeros(3),
                       np.zeros(3, dtype=np.int64), genres, ("Comedy", "Drama"))
    cf = np.array([[1.0, 0.5, 0.5]])
    eligible = np.ones((1, 3), dtype=bool)

    picks = rm.blend_top_k(cf, cf, np.array([1.0, 0.5, 0.5]), eligible,
                           rm.genre_similarity(titles), k=3)

    np.testing.assert_array_equal(picks, [[0, 2, 1]])
