"""Ranker features: the shared online definitions, and training computing exactly those."""

from __future__ import annotations

import numpy as np
import pytest

from services.designs.model_features import RANKER_FEATURE_NAMES
from services.designs.recs import definitions as rf
from services.trainer import recs_models as rm
from services.trainer.worlds.viewing import ViewingConfig, ViewingWorld, generate_viewing


@pytest.fixture(scope="module")
def world() -> ViewingWorld:
    return generate_viewing(ViewingConfig(seed=11, n_users=300, n_titles=150))


@pytest.fixture(scope="module")
def trained(world: ViewingWorld) -> tuple[rm.State, rm.UserViews, rm.Titles, np.ndarray]:
    events, titles = rm.Events.of(world), rm.Titles.of(world)
    state = rm.state_at(events, len(world.users), titles, world.config.split.timestamp())
    embeddings = rm.fit_item_embeddings(state.weights, 16, seed=1)
    rows = np.flatnonzero(state.watch_counts > 0)
    views = rm.user_views(state, rows, embeddings, titles,
                          world.users["max_maturity"].to_numpy())
    return state, views, titles, embeddings


def test_taste_vector_is_the_weighted_sum_of_watched_item_embeddings() -> None:
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])

    taste = rf.taste_vector(embeddings, [0, 2], [1.0, 0.5])

    np.testing.assert_allclose(taste, [2.0, 1.0])


def test_a_rewatch_counts_again_in_the_taste_vector() -> None:
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0]])

    np.testing.assert_allclose(rf.taste_vector(embeddings, [1, 1], [1.0, 1.0]), [0.0, 2.0])


def test_a_completed_watch_weighs_twice_an_abandoned_one() -> None:
    np.testing.assert_allclose(rf.watch_weights([True, False]), [1.0, 0.5])


def test_fold_in_from_watch_events_gives_the_cf_score_used_in_training(
    world: ViewingWorld, trained: tuple[rm.State, rm.UserViews, rm.Titles, np.ndarray]
) -> None:
    state, views, titles, embeddings = trained
    user_row = int(views.rows[0])
    history = world.train[world.train["user_id"] == f"u{user_row}"]
    watched = world.title_rows(history["content_id"].to_numpy())
    taste = rf.taste_vector(embeddings, watched, rf.watch_weights(history["completed"]))
    items = np.arange(len(titles.ids))

    x = rm.ranker_matrix(state, views, titles, embeddings, np.zeros_like(items), items)

    cf = x[:, RANKER_FEATURE_NAMES.index("cf_score")]
    np.testing.assert_allclose(cf, embeddings @ taste.astype(np.float32), rtol=1e-4, atol=1e-5)


def test_ranker_features_have_the_catalog_order_and_no_nan(
    trained: tuple[rm.State, rm.UserViews, rm.Titles, np.ndarray]
) -> None:
    state, views, titles, embeddings = trained
    users, items = np.nonzero(views.eligible)

    x = rm.ranker_matrix(state, views, titles, embeddings, users, items)

    assert x.dtype == np.float32
    assert x.shape == (len(users), len(RANKER_FEATURE_NAMES))
    assert np.isfinite(x).all()
    column = dict(zip(RANKER_FEATURE_NAMES, x.T, strict=True))
    assert ((column["genre_match"] >= 0) & (column["genre_match"] <= 1)).all()
    assert (column["content_score"] <= 1 + 1e-6).all()
    assert (column["release_age_years"] >= 0).all()


def test_assemble_refuses_a_feature_set_other_than_the_catalogs() -> None:
    with pytest.raises(ValueError, match="exactly"):
        rf.assemble({"cf_score": [1.0]})


def test_assemble_puts_columns_in_catalog_order_whatever_the_dict_order() -> None:
    values = {name: [float(i)] for i, name in enumerate(RANKER_FEATURE_NAMES)}

    x = rf.assemble(dict(reversed(values.items())))

    np.testing.assert_array_equal(x[0], np.arange(len(RANKER_FEATURE_NAMES)))


def test_genre_match_is_the_share_of_the_items_genres_in_the_users_top_three() -> None:
    counts = np.array([[5.0, 4.0, 3.0, 2.0, 0.0]])
    top = rf.top_genres_mask(counts)
    item = np.array([[0, 0, 1, 1, 0]])  # genre 2 is in the top 3, genre 3 is not

    assert rf.genre_match(top, item)[0] == pytest.approx(0.5)


def test_top_genres_break_ties_by_genre_order_and_skip_unwatched_genres() -> None:
    top = rf.top_genres_mask(np.array([[1.0, 2.0, 2.0, 2.0], [0.0, 3.0, 0.0, 0.0]]))

    np.testing.assert_array_equal(top, [[False, True, True, True], [False, True, False, False]])


def test_a_watch_counts_half_in_trending_a_day_later() -> None:
    assert rf.decay_factor(24 * 3600.0) == pytest.approx(0.5)
    assert rf.trending_scores(rf.decay_factor([0.0, 48 * 3600.0]).sum()) == pytest.approx(
        np.log1p(1.25))


def test_popularity_counts_only_the_last_thirty_days() -> None:
    day = 86_400.0
    events = rm.Events(np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64),
                       np.array([0.0, 40 * day, 45 * day]), np.ones(3))
    titles = rm.Titles(np.array(["t0"]), np.array([[1.0]]), np.zeros(1),
                       np.zeros(1, dtype=np.int64), np.ones((1, 1)), ("Drama",))

    state = rm.state_at(events, 1, titles, as_of=50 * day)

    assert state.popularity[0] == pytest.approx(np.log1p(2))
    assert state.watch_counts[0] == 3


def test_content_vectors_are_unit_length_and_a_single_title_profile_scores_one() -> None:
    vectors = rf.content_vectors([[1, 0, 1], [0, 1, 0]], [1985, 2024], [0, 3])

    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0)
    scores = rf.content_scores(rf.genre_profile(vectors, [0], [0.5]), vectors)
    assert scores[0, 0] == pytest.approx(1.0)
    assert scores[0, 1] < 1.0
