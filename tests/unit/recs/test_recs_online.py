"""Online ranker features on hand-made state: the ranker's definitions, evaluated online."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from redis.exceptions import TimeoutError as RedisTimeout

from services.common.features import FeatureStoreUnavailable, InvalidEntity
from services.common.models import ModelRepository
from services.common.models.testing import logistic_model
from services.common.redis_scripts import run_pipeline
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.designs.recs import definitions as rf
from services.designs.recs.artifacts import LiveItemArtifacts, load_item_artifacts
from services.designs.recs.features import ranker_features
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.keys import (
    day_of,
    history_key,
    rec_cache_key,
    title_watches_key,
    trending_key,
    user_view_key,
)
from services.designs.recs.state import (
    ItemStats,
    StoredVectors,
    UserOnlineState,
    Watch,
    decayed_counts,
    log2_sum,
    log2_weights,
    popularity_days,
    trending_values,
    user_vectors,
    vectors_from_history,
)
from tests import recommender_world as world

DAY_S = 86_400.0
NOON = datetime(2026, 9, 7, 12, 0, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2026, 9, 7, tzinfo=UTC).timestamp()
GENRES = ("Action", "Comedy", "Drama")


def artifacts(embeddings: list[list[float]] | None = None) -> ItemArtifacts:
    return ItemArtifacts.build(
        title_ids=["t0", "t1", "t2", "t3"],
        embeddings=embeddings or [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -0.5]],
        genre_multi_hot=[[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 1, 1]],
        release_seconds=[NOON - 3 * 365.25 * DAY_S, NOON - 30 * DAY_S, 0.0, NOON + DAY_S],
        maturity_levels=[0, 2, 4, 1],
        genre_names=GENRES,
    )


def watch(content_id: str, completed: bool = True, event_id: str = "", time_s: float = NOON
          ) -> Watch:
    return Watch(event_id or f"e-{content_id}-{time_s}", content_id, completed,
                 int(time_s * 1000))


def state(history: tuple[Watch, ...] = (), stored: StoredVectors | None = None,
          count: int | None = None) -> UserOnlineState:
    return UserOnlineState("u1", history, len(history) if count is None else count, stored, ())


def no_stats(n: int) -> ItemStats:
    return ItemStats(NOON, np.zeros(n, dtype=np.int64), np.full(n, -np.inf))


def test_a_history_member_round_trips_an_event_id_with_colons() -> None:
    original = Watch("ingest:2026-09-07:17", "t42", False, 1_788_000_000_000)

    assert original.member == "t42|0|ingest:2026-09-07:17"
    assert Watch.from_member(original.member.encode(), 1_788_000_000_000.0) == original


def test_taste_vector_is_the_watch_weighted_sum_of_embeddings_and_a_rewatch_counts_again() -> None:
    items = artifacts()
    history = (watch("t0"), watch("t2", completed=False), watch("t0", time_s=NOON + 1))

    taste, profile, genre_counts = vectors_from_history(history, items)

    np.testing.assert_allclose(taste, [2.5, 0.5])
    np.testing.assert_allclose(profile, 2 * items.content[0] + 0.5 * items.content[2])
    np.testing.assert_allclose(genre_counts, [2.5, 0.0, 0.5])


def test_a_title_unknown_to_the_artifacts_stays_out_of_the_vectors() -> None:
    items = artifacts()

    with_unknown = vectors_from_history((watch("t1"), watch("t999")), items)
    without = vectors_from_history((watch("t1"),), items)

    for got, expected in zip(with_unknown, without, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_stored_vectors_are_used_when_folded_in_with_the_same_artifacts() -> None:
    items = artifacts()
    stored = StoredVectors(items.fingerprint, 1, np.array([9.0, 9.0], dtype=np.float32),
                           np.zeros(items.content.shape[1], dtype=np.float32),
                           np.array([0, 3, 0], dtype=np.float32))

    vectors = user_vectors(state((watch("t0"),), stored), items)

    assert not vectors.recomputed
    np.testing.assert_array_equal(vectors.taste, [9.0, 9.0])
    np.testing.assert_array_equal(vectors.top_genres, [False, True, False])


def test_vectors_from_another_model_version_are_recomputed_from_the_history() -> None:
    old = artifacts([[5.0, 5.0]] * 4)
    new = artifacts()
    stored = StoredVectors(old.fingerprint, 1, np.array([5.0, 5.0], dtype=np.float32),
                           np.zeros(new.content.shape[1], dtype=np.float32),
                           np.zeros(3, dtype=np.float32))

    vectors = user_vectors(state((watch("t1"),), stored), new)

    assert vectors.recomputed
    np.testing.assert_allclose(vectors.taste, [0.0, 1.0])


def test_vectors_folded_in_before_the_latest_watch_are_recomputed_from_the_history() -> None:
    items = artifacts()
    stored = StoredVectors(items.fingerprint, 1, np.array([1.0, 0.0], dtype=np.float32),
                           np.zeros(items.content.shape[1], dtype=np.float32),
                           np.array([1, 0, 0], dtype=np.float32))

    vectors = user_vectors(state((watch("t0"), watch("t1", time_s=NOON + 1)), stored), items)

    assert vectors.recomputed
    np.testing.assert_allclose(vectors.taste, [1.0, 1.0])


def test_watched_titles_are_the_distinct_known_rows_of_the_history() -> None:
    vectors = user_vectors(state((watch("t2"), watch("t0"), watch("t2", time_s=NOON + 5),
                                  watch("t999"))), artifacts())

    np.testing.assert_array_equal(vectors.watched, [0, 2])
    assert vectors.watch_count == 4


@pytest.mark.parametrize("now_s", [NOON, NOON + 3 * DAY_S, NOON + 400 * DAY_S])
def test_decayed_counts_from_log2_scores_equal_the_sum_of_decay_factors(now_s: float) -> None:
    times_s = np.array([NOON - 5 * DAY_S, NOON - 3_600.0, NOON - 1.0, NOON])

    score = log2_sum(log2_weights(times_s * 1000))

    expected = rf.decay_factor(now_s - times_s).sum()
    np.testing.assert_allclose(decayed_counts([score], now_s), [expected], rtol=1e-12)
    np.testing.assert_allclose(trending_values([score], now_s), rf.trending_scores([expected]),
                               rtol=1e-12)


def test_batches_of_trending_increments_merge_into_the_score_of_all_watches() -> None:
    times_ms = np.array([1, 2, 3, 4, 5]) * 3_600_000 + NOON * 1000

    merged = np.logaddexp2(log2_sum(log2_weights(times_ms[:2])),
                           log2_sum(log2_weights(times_ms[2:])))

    # a score near 20,700 carries about 4e-12 of rounding: a relative error of 3e-12 in the count
    assert merged == pytest.approx(log2_sum(log2_weights(times_ms)), abs=1e-11)


def test_a_title_never_watched_has_zero_trending() -> None:
    assert trending_values([-np.inf], NOON)[0] == 0.0


def test_popularity_window_at_midnight_is_exactly_the_30_days_before() -> None:
    days = popularity_days(MIDNIGHT)

    first_ms, end_ms = days[0] * 86_400_000, (days[-1] + 1) * 86_400_000
    assert len(days) == 31  # the last one, today, holds nothing before midnight
    assert first_ms == (MIDNIGHT - 30 * DAY_S) * 1000
    assert end_ms - MIDNIGHT * 1000 == 86_400_000


def test_popularity_window_later_in_the_day_also_keeps_today_so_far() -> None:
    days = popularity_days(NOON)

    assert days == popularity_days(MIDNIGHT)
    assert day_of(int(NOON * 1000)) == days[-1]


def test_ranker_features_are_the_catalog_definitions_at_the_given_instant() -> None:
    items = artifacts()
    user = user_vectors(state((watch("t0"), watch("t1", completed=False)), count=7), items)
    stats = ItemStats(NOON, np.array([0, 3, 10, 1]),
                      np.array([-np.inf, *log2_weights(np.array([NOON, NOON - DAY_S,
                                                                 NOON]) * 1000)]))
    candidates = [2, 3]

    x = ranker_features(user, items, stats, candidates, NOON)

    column = dict(zip(RANKER_FEATURE_NAMES, x.T, strict=True))
    assert x.dtype == np.float32
    assert x.shape == (2, len(RANKER_FEATURE_NAMES))
    np.testing.assert_allclose(column["cf_score"], [1.5, 0.25], rtol=1e-6)
    profile = items.content[0] + 0.5 * items.content[1]
    np.testing.assert_allclose(column["content_score"],
                               items.content[[2, 3]] @ (profile / np.linalg.norm(profile)),
                               rtol=1e-6)
    np.testing.assert_allclose(column["popularity"], np.log1p([10, 1]), rtol=1e-6)
    np.testing.assert_allclose(column["trending_score"], np.log1p([0.5, 1.0]), rtol=1e-6)
    # top genres: Action (1.0), Comedy (0.5); Drama never watched, so it never counts
    np.testing.assert_allclose(column["genre_match"], [0.5, 0.5])
    np.testing.assert_allclose(column["release_age_years"],
                               [NOON / (365.25 * DAY_S), 0.0], rtol=1e-6)
    np.testing.assert_allclose(column["user_activity"], np.log1p([7, 7]), rtol=1e-6)


def test_a_user_without_history_gets_zero_user_side_features() -> None:
    items = artifacts()

    x = ranker_features(user_vectors(state(), items), items, no_stats(4), [0, 1, 2, 3], NOON)

    column = dict(zip(RANKER_FEATURE_NAMES, x.T, strict=True))
    for name in ("cf_score", "content_score", "genre_match", "user_activity"):
        np.testing.assert_array_equal(column[name], np.zeros(4), err_msg=name)


def test_fresher_trending_scores_override_the_snapshot_for_those_titles_only() -> None:
    items = artifacts()
    snapshot = ItemStats(NOON, np.zeros(4, dtype=np.int64), np.array([1.0, 2.0, 3.0, 4.0]))

    fresh = snapshot.with_trending((("t2", 30.0), ("t999", 99.0)), items)

    np.testing.assert_array_equal(fresh.trending_log2, [1.0, 2.0, 30.0, 4.0])
    np.testing.assert_array_equal(snapshot.trending_log2, [1.0, 2.0, 3.0, 4.0])


def test_content_vectors_are_the_definition_of_the_titles() -> None:
    items = artifacts()

    years = [2023, 2026, 1970, 2026]
    np.testing.assert_array_equal(
        items.content, rf.content_vectors(items.genres, years, items.maturity_levels))


def test_the_fingerprint_names_the_embeddings() -> None:
    assert artifacts().fingerprint == artifacts().fingerprint
    assert artifacts().fingerprint != artifacts([[0.0, 1.0]] * 4).fingerprint


def test_user_keys_share_the_user_hash_tag_and_catalog_keys_the_catalog() -> None:
    assert history_key("u42") == "fs:watch_history:{u42}"
    assert user_view_key("u42") == "fs:recs_user:{u42}"
    assert rec_cache_key("u42", "staging") == "staging:rec_cache:{u42}"
    assert trending_key() == "fs:trending:{global}"
    assert title_watches_key(day_of(int(NOON * 1000))) == "fs:title_watches:{global}:2026-09-07"


def test_an_id_with_braces_keeps_a_hash_tag_of_its_own() -> None:
    assert history_key("u{1}") == "fs:watch_history:{u%7B1%7D}"
    with pytest.raises(InvalidEntity):
        history_key("u\n1")


def register_ranker(root: Path, content_vectors: np.ndarray | None = None) -> ModelRepository:
    items = artifacts()
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, title_ids=np.asarray(items.title_ids), item_embeddings=items.embeddings,
        content_vectors=(items.content if content_vectors is None else content_vectors
                         ).astype(np.float32),
        genre_names=np.asarray(GENRES), genre_multi_hot=items.genres.astype(np.uint8),
        release_seconds=items.release_seconds, maturity_levels=items.maturity_levels)
    repository = ModelRepository(root)
    repository.register("ranker", logistic_model([0.0] * len(RANKER_FEATURE_NAMES)),
                        feature_names=RANKER_FEATURE_NAMES, metrics={}, training_data_hash="x",
                        description="test", extra_files={"embeddings.npz": buffer.getvalue()})
    return repository


def test_item_artifacts_load_from_the_production_rankers_embeddings_file(tmp_path: Path) -> None:
    loaded = load_item_artifacts(register_ranker(tmp_path))

    assert loaded.title_ids == artifacts().title_ids
    assert loaded.fingerprint.startswith("ranker/v1/")
    np.testing.assert_array_equal(loaded.content, artifacts().content)


def test_artifacts_whose_content_vectors_disagree_with_the_definitions_are_refused(
        tmp_path: Path) -> None:
    repository = register_ranker(tmp_path, content_vectors=np.ones_like(artifacts().content))

    with pytest.raises(ValueError, match="content vectors"):
        load_item_artifacts(repository)


def test_live_artifacts_follow_a_promotion_at_the_next_check(tmp_path: Path) -> None:
    repository = world.repository(tmp_path)
    now = [0.0]
    live = LiveItemArtifacts(repository, check_s=5.0, clock=lambda: now[0])
    first = live.current()
    assert live.version == 1
    arrays = world.arrays()
    arrays["item_embeddings"] = arrays["item_embeddings"] * 2.0
    items = world.items()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays, genre_names=np.asarray(world.GENRES),
                        content_vectors=items.content.astype(np.float32))
    version = repository.register("ranker", logistic_model([0.1] * len(RANKER_FEATURE_NAMES)),
                                  feature_names=RANKER_FEATURE_NAMES, metrics={},
                                  training_data_hash="v2", description="v2",
                                  extra_files={"embeddings.npz": buffer.getvalue()})
    repository.promote("ranker", version)
    now[0] = 4.9
    assert live.current() is first                  # not checked yet
    now[0] = 5.0
    second = live.current()
    assert live.version == version and second.fingerprint != first.fingerprint
    np.testing.assert_allclose(second.embeddings, first.embeddings * 2.0)
    assert second.ranker_digest != first.ranker_digest       # other embeddings, other lists


def test_a_version_registered_with_a_copy_of_the_embeddings_has_their_digest(
        tmp_path: Path) -> None:
    """A retrained ranker is registered with production's embeddings: another version (its
    fingerprint says so) whose candidates and features are production's (one digest)."""
    repository = world.repository(tmp_path)
    first = load_item_artifacts(repository)
    version = repository.register("ranker", logistic_model([0.1] * len(RANKER_FEATURE_NAMES)),
                                  feature_names=RANKER_FEATURE_NAMES, metrics={},
                                  training_data_hash="v2", description="v2",
                                  extra_files={"embeddings.npz": world.embeddings_npz()})
    repository.promote("ranker", version)
    second = load_item_artifacts(repository)
    assert (first.fingerprint[:10], second.fingerprint[:10]) == ("ranker/v1/", "ranker/v2/")
    assert second.ranker_digest == first.ranker_digest


class _PipelineAnsweringWith:
    """A pipeline whose execute(raise_on_error=False) hands back `replies`, as redis-py's
    cluster pipeline does with a node's timeout."""

    def __init__(self, replies: list[object]) -> None:
        self._replies = replies

    def pipeline(self, transaction: bool = False) -> _PipelineAnsweringWith:
        return self

    def execute_command(self, *args: object) -> None:
        pass

    def execute(self, raise_on_error: bool = True) -> list[object]:
        return self._replies


def test_a_timeout_handed_back_as_a_pipeline_reply_is_an_unavailable_store() -> None:
    client: Any = _PipelineAnsweringWith([RedisTimeout("Timeout reading from socket")])
    with pytest.raises(FeatureStoreUnavailable, match="Timeout reading"):
        run_pipeline(client, [("GET", "k")])
