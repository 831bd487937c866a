"""The viewing world: deterministic by seed, a consistent catalog, a held-out future, clicks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.trainer.worlds.viewing import (
    GENRES,
    MATURITY_RATINGS,
    ViewingConfig,
    ViewingWorld,
    click_probability,
    expected_clicks,
    generate_viewing,
    load,
    save,
    simulate_clicks,
    taste_shifted,
)

TINY = ViewingConfig(seed=7, n_users=300, n_titles=150)


@pytest.fixture(scope="module")
def world() -> ViewingWorld:
    return generate_viewing(TINY)


def _assert_same_world(a: ViewingWorld, b: ViewingWorld) -> None:
    assert a.config == b.config
    for name in ("users", "titles", "interactions"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.truth.user_factors, b.truth.user_factors)
    np.testing.assert_array_equal(a.truth.item_bias, b.truth.item_bias)
    assert a.truth.click_offset == b.truth.click_offset


def test_the_same_seed_gives_the_same_world(world: ViewingWorld) -> None:
    _assert_same_world(world, generate_viewing(TINY))


def test_another_seed_gives_another_world(world: ViewingWorld) -> None:
    other = generate_viewing(ViewingConfig(seed=8, n_users=300, n_titles=150))

    assert not world.interactions["content_id"].equals(other.interactions["content_id"])


def test_ids_are_short_prefixed_strings_shared_by_every_frame(world: ViewingWorld) -> None:
    assert world.users["user_id"].str.fullmatch(r"u\d+").all()
    assert world.titles["content_id"].str.fullmatch(r"t\d+").all()
    assert world.interactions["user_id"].isin(world.users["user_id"]).all()
    assert world.interactions["content_id"].isin(world.titles["content_id"]).all()
    assert world.interactions["event_id"].is_unique


def test_titles_have_one_to_three_known_genres_a_rating_and_a_name(world: ViewingWorld) -> None:
    genres = world.titles["genres"].str.split("|")

    assert genres.map(len).between(1, 3).all()
    assert all(set(g) <= set(GENRES) for g in genres)
    assert world.titles["maturity_rating"].isin(MATURITY_RATINGS).all()
    assert (world.titles["title"].str.len() > 3).all()


def test_watch_events_are_sorted_in_time_inside_the_window(world: ViewingWorld) -> None:
    times = world.interactions["timestamp"]

    assert times.is_monotonic_increasing
    assert times.min() >= pd.Timestamp(TINY.start)
    assert times.max() < pd.Timestamp(TINY.end)


def test_the_held_out_future_is_the_last_days_of_the_window(world: ViewingWorld) -> None:
    split = pd.Timestamp(TINY.split)

    assert (world.train["timestamp"] < split).all()
    assert (world.future["timestamp"] >= split).all()
    assert len(world.train) + len(world.future) == len(world.interactions)
    assert world.future["user_id"].nunique() > TINY.n_users // 3


def test_no_title_is_watched_before_its_release(world: ViewingWorld) -> None:
    release = world.interactions["content_id"].map(
        world.titles.set_index("content_id")["release_date"])

    assert (world.interactions["timestamp"] >= release).all()


def test_kids_profiles_never_watch_above_their_maturity_limit(world: ViewingWorld) -> None:
    events = world.interactions.merge(world.users, on="user_id").merge(
        world.titles[["content_id", "maturity_level"]], on="content_id")

    assert (events["maturity_level"] <= events["max_maturity"]).all()
    assert (world.users["profile"] == "kids").any()


def test_click_probabilities_are_probabilities(world: ViewingWorld) -> None:
    titles = world.titles["content_id"].to_numpy()[:50]

    p = click_probability(world, "u3", titles, np.arange(50))

    assert p.shape == (50,)
    assert ((p >= 0) & (p <= 1)).all()


def test_click_probability_falls_with_position_for_the_same_title(world: ViewingWorld) -> None:
    adult = world.users.loc[world.users["profile"] == "adult", "user_id"].iloc[0]

    p = click_probability(world, adult, ["t5"] * 10, np.arange(10))

    assert (np.diff(p) < 0).all()


def test_a_title_above_the_maturity_limit_is_never_clicked(world: ViewingWorld) -> None:
    kid = world.users.loc[world.users["profile"] == "kids", "user_id"].iloc[0]
    adult_title = world.titles.loc[world.titles["maturity_level"] >= 3, "content_id"].iloc[0]

    assert click_probability(world, kid, [adult_title], [0])[0] == 0.0


def test_simulated_clicks_repeat_with_the_same_rng(world: ViewingWorld) -> None:
    titles, slots = world.titles["content_id"].to_numpy()[:20], np.arange(20)

    first = simulate_clicks(world, "u1", titles, slots, np.random.default_rng(3))
    again = simulate_clicks(world, "u1", titles, slots, np.random.default_rng(3))

    np.testing.assert_array_equal(first, again)


def test_unknown_ids_are_refused(world: ViewingWorld) -> None:
    with pytest.raises(KeyError, match="u999999"):
        click_probability(world, "u999999", ["t1"], [0])
    with pytest.raises(KeyError, match="t999999"):
        click_probability(world, "u1", ["t999999"], [0])


def test_a_saved_world_loads_back_unchanged(world: ViewingWorld, tmp_path: Path) -> None:
    save(world, tmp_path)

    _assert_same_world(world, load(tmp_path))


def test_expected_clicks_of_a_list_sum_its_slot_probabilities(world: ViewingWorld) -> None:
    lists = np.array([[4, 8, 15, 16, -1], [23, 42, 0, 1, 2]])
    users = np.array([3, 9])

    totals = expected_clicks(world, users, lists)

    first = click_probability(world, "u3", ["t4", "t8", "t15", "t16"], np.arange(4)).sum()
    second = click_probability(world, "u9", ["t23", "t42", "t0", "t1", "t2"], np.arange(5)).sum()
    np.testing.assert_allclose(totals, [first, second])


def test_a_taste_shift_redraws_only_the_watches_since_it_towards_its_genres(
        world: ViewingWorld) -> None:
    since = TINY.end - timedelta(days=21)
    moved = taste_shifted(world, since, ("Horror", "Documentary"), 1.0)
    before = (world.interactions["timestamp"] < pd.Timestamp(since)).to_numpy()
    kept = moved.interactions.set_index("event_id")
    original = world.interactions.set_index("event_id")
    # the history before the shift, and who watched when, do not change
    pd.testing.assert_frame_equal(kept.loc[original.index[before]], original[before])
    after = original.index[~before].intersection(kept.index)
    assert (kept.loc[after, ["user_id", "timestamp", "completed"]]
            .equals(original.loc[after, ["user_id", "timestamp", "completed"]]))
    genres = world.titles.set_index("content_id")["genres"]

    def craze(frame: pd.DataFrame) -> float:
        since_frame = frame[frame["timestamp"] >= pd.Timestamp(since)]
        return float(genres.loc[since_frame["content_id"]].str.contains(
            "Horror|Documentary").mean())

    assert craze(moved.interactions) > craze(world.interactions) + 0.3
    # each title at most once a user, never before its release, within the profile's limit
    assert not moved.interactions.duplicated(["user_id", "content_id"]).any()
    released = world.titles.set_index("content_id")["release_date"]
    assert (released.loc[moved.interactions["content_id"]].to_numpy()
            <= moved.interactions["timestamp"].to_numpy()).all()
    limit = world.users.set_index("user_id")["max_maturity"]
    level = world.titles.set_index("content_id")["maturity_level"]
    assert (level.loc[moved.interactions["content_id"]].to_numpy()
            <= limit.loc[moved.interactions["user_id"]].to_numpy()).all()


def test_a_taste_shift_needs_known_genres_and_a_weight_in_0_1(world: ViewingWorld) -> None:
    with pytest.raises(ValueError, match="unknown"):
        taste_shifted(world, TINY.split, ("Opera",), 0.5)
    with pytest.raises(ValueError, match="weight"):
        taste_shifted(world, TINY.split, ("Horror",), 0.0)
