"""The recommender's pure stages on a hand-made catalog: sources, filter, blend, rerank, words."""

from __future__ import annotations

import numpy as np
import pytest

from services.designs.recs.state import user_vectors
from services.recommender.candidates import (
    Source,
    collaborative_scores,
    content_scores,
    eligible_mask,
    ordered_eligible,
    top_eligible,
    union,
)
from services.recommender.explain import RecommendationType, explain_all
from services.recommender.rerank import genre_jaccard, min_max, mmr, with_discovery_slot
from services.recommender.scoring import (
    BLEND_WEIGHTS,
    COLD_START_WEIGHTS,
    LIGHT_USER_WEIGHTS,
    CandidateSizes,
    blend,
    personalization,
)
from tests import recommender_world as world

ITEMS = world.items()


def rows(*ids: str) -> list[int]:
    return [ITEMS.row_of[i] for i in ids]


# --- candidate sources -----------------------------------------------------------------------


def test_collaborative_candidates_are_the_titles_nearest_the_users_taste() -> None:
    vectors = user_vectors(world.user(["t0", "t1", "t2"]), ITEMS)
    eligible = eligible_mask(ITEMS, vectors.watched, max_maturity=4)
    best = top_eligible(collaborative_scores(vectors, ITEMS), eligible, 5)
    assert all(world.genre_of(r) == 0 for r in best)           # all Action
    assert not set(best.tolist()) & set(rows("t0", "t1", "t2"))  # none already watched


def test_content_candidates_follow_the_users_genre_profile() -> None:
    vectors = user_vectors(world.user(["t20", "t21"]), ITEMS)
    eligible = eligible_mask(ITEMS, vectors.watched, max_maturity=4)
    best = top_eligible(content_scores(vectors, ITEMS), eligible, 8)
    assert {world.genre_of(r) for r in best} == {2}             # Drama only


def test_trending_candidates_keep_the_heads_order_and_skip_ineligible_titles() -> None:
    eligible = np.ones(len(ITEMS), dtype=bool)
    eligible[rows("t5")] = False
    head = np.asarray(rows("t5", "t7", "t3", "t9"))
    assert ordered_eligible(head, eligible, 2).tolist() == rows("t7", "t3")


def test_top_eligible_breaks_ties_by_row_and_returns_fewer_when_fewer_are_eligible() -> None:
    scores = np.zeros(len(ITEMS))
    eligible = np.zeros(len(ITEMS), dtype=bool)
    eligible[[4, 2, 9]] = True
    assert top_eligible(scores, eligible, 10).tolist() == [2, 4, 9]
    assert top_eligible(scores, eligible, 0).tolist() == []


def test_union_keeps_each_title_once_with_every_source_that_found_it() -> None:
    found = union({Source.COLLABORATIVE: np.asarray([3, 1]), Source.TRENDING: np.asarray([1, 7])})
    assert found.rows.tolist() == [3, 1, 7]
    assert found.sources[1] == {Source.COLLABORATIVE, Source.TRENDING}
    assert found.from_source(Source.TRENDING).tolist() == [False, True, True]


# --- filter ----------------------------------------------------------------------------------


def test_filter_drops_watched_titles_and_titles_above_the_profiles_maturity() -> None:
    mask = eligible_mask(ITEMS, np.asarray(rows("t30", "t31")), max_maturity=1)
    assert not mask[rows("t30", "t31")].any()                   # watched
    assert not mask[rows("t35", "t36", "t37", "t38", "t39")].any()  # rated R for a kids profile
    assert mask[rows("t32", "t0")].all()
    assert eligible_mask(ITEMS, np.zeros(0, dtype=np.int64), max_maturity=4).all()


# --- scoring ---------------------------------------------------------------------------------


def test_the_blend_is_the_briefs_weighted_sum_of_min_max_scaled_scores() -> None:
    scores = {"collaborative": np.asarray([0.0, 10.0]), "content": np.asarray([1.0, 0.0]),
              "trending": np.asarray([5.0, 5.0])}
    assert blend(scores, BLEND_WEIGHTS).tolist() == pytest.approx([0.3, 0.4])


def test_few_events_weight_content_up_and_no_events_use_popularity_and_trending() -> None:
    sizes = CandidateSizes(100, 50, 50)
    assert personalization(20, sizes).weights == BLEND_WEIGHTS
    light = personalization(2, sizes)
    assert light.level == "light" and light.weights == LIGHT_USER_WEIGHTS
    assert light.weights["content"] > BLEND_WEIGHTS["content"]
    assert light.sizes.content > sizes.content and light.sizes.collaborative < sizes.collaborative
    cold = personalization(0, sizes)
    assert cold.level == "cold" and cold.weights == COLD_START_WEIGHTS


def test_min_max_of_a_constant_is_zero() -> None:
    assert min_max([3.0, 3.0]).tolist() == [0.0, 0.0]
    assert min_max([1.0, 3.0, 2.0]).tolist() == [0.0, 1.0, 0.5]


# --- rerank ----------------------------------------------------------------------------------


def test_mmr_without_diversity_is_the_relevance_order() -> None:
    relevance = np.asarray([0.1, 0.9, 0.5])
    genres = np.eye(3)
    assert mmr(relevance, genres, 3, diversity_weight=0.0, genre_cap_share=1.0).tolist() == [
        1, 2, 0]


def test_mmr_prefers_a_new_genre_over_a_slightly_better_title_of_a_genre_already_picked() -> None:
    relevance = np.asarray([1.0, 0.95, 0.9])
    genres = np.asarray([[1, 0], [1, 0], [0, 1]])
    assert mmr(relevance, genres, 2, genre_cap_share=1.0).tolist() == [0, 2]


def test_genre_cap_holds_while_the_pool_allows_then_fills_from_what_is_left() -> None:
    relevance = np.asarray([1.0, 0.99, 0.98, 0.97, 0.1])
    genres = np.asarray([[1, 0]] * 4 + [[0, 1]])
    picks = mmr(relevance, genres, 4, diversity_weight=0.0, genre_cap_share=0.5)
    assert picks.tolist()[:3] == [0, 1, 4]       # two Action, then the cap lets Comedy in
    assert len(picks) == 4                       # and the list is still full


def test_genre_jaccard_of_titles_sharing_one_of_three_genres_is_a_third() -> None:
    sim = genre_jaccard(np.asarray([[1, 1, 0], [0, 1, 1]]))
    assert sim[0, 1] == pytest.approx(1 / 3) and sim[0, 0] == 1.0


def test_a_personalized_list_gets_one_discovery_title_outside_the_top_genres() -> None:
    picks = np.asarray([0, 1, 2, 3, 4])
    relevance = np.asarray([0.9, 0.8, 0.7, 0.6, 0.5, 0.2, 0.3])
    outside = np.asarray([False] * 5 + [True, True])
    picked = with_discovery_slot(picks, relevance, outside, k=5)
    assert picked.positions.tolist() == [0, 1, 2, 3, 6] and picked.discovery == {6}
    # Already diverse, or too short a list: unchanged.
    diverse = np.asarray([0, 1, 2, 3, 5])
    assert with_discovery_slot(diverse, relevance, outside, 5).discovery == set()
    assert with_discovery_slot(picks[:3], relevance, outside, 3).positions.tolist() == [0, 1, 2]


# --- explanations ----------------------------------------------------------------------------


def test_a_title_close_to_a_watched_one_says_which() -> None:
    watched = np.asarray(rows("t0"))
    [why] = explain_all(np.asarray(rows("t1")), [frozenset({Source.COLLABORATIVE})], [False],
                        watched, ITEMS, cold=False)
    assert why.type is RecommendationType.SIMILAR_TO_WATCHED
    assert why.text == "Because you watched Title 0"


def test_a_collaborative_title_unlike_anything_watched_credits_similar_viewers() -> None:
    [why] = explain_all(np.asarray(rows("t21")), [frozenset({Source.COLLABORATIVE})], [False],
                        np.asarray(rows("t0")), ITEMS, cold=False)
    assert why.type is RecommendationType.DISCOVERY
    assert why.text == "Viewers with similar taste liked this"


def test_trending_only_and_cold_start_titles_say_trending_or_popular() -> None:
    watched = np.asarray(rows("t0"))
    [trend] = explain_all(np.asarray(rows("t25")), [frozenset({Source.TRENDING})], [False],
                          watched, ITEMS, cold=False)
    assert (trend.type, trend.text) == (RecommendationType.TRENDING, "Trending now")
    cold = explain_all(np.asarray(rows("t1", "t2")),
                       [frozenset({Source.POPULAR}), frozenset({Source.TRENDING})],
                       [False, False], np.zeros(0, dtype=np.int64), ITEMS, cold=True)
    assert [(c.type, c.text) for c in cold] == [
        (RecommendationType.POPULAR, "Popular this month"),
        (RecommendationType.TRENDING, "Trending now")]


def test_the_discovery_slot_names_the_genre() -> None:
    [why] = explain_all(np.asarray(rows("t31")), [frozenset({Source.CONTENT})], [True],
                        np.asarray(rows("t0")), ITEMS, cold=False)
    assert why.type is RecommendationType.DISCOVERY and "kids" in why.text
