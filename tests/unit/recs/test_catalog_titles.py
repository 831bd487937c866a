"""Catalog titles in the recommender: the merge into the items, refreshes, and what users get."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.common.breaker import BreakerSet, CircuitBreaker
from services.common.features import FeatureStoreUnavailable
from services.common.models import Prediction
from services.common.telemetry import Metrics
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.designs.payloads import TitleData
from services.designs.recs import definitions as rf
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.state import ItemStats, user_vectors
from services.designs.recs.titles import CatalogTitle, with_catalog_titles
from services.recommender.candidates import CandidateSizes, content_scores
from services.recommender.catalog import LiveCatalog
from services.recommender.metrics import RecommenderMetrics
from services.recommender.service import ListPolicy, RecommenderService
from services.recommender.variants import fixed_variant
from tests import recommender_world as world
from tests.support.recs import FakeImpressions, FakeModel, FakeStore

TODAY = datetime.now(UTC).date()


def title(content_id: str, name: str, genres: list[str], released: date | None = TODAY,
          maturity: str | None = "PG", updated: datetime | None = None) -> CatalogTitle:
    at = updated or datetime.now(UTC)
    return CatalogTitle(TitleData(content_id=content_id, title=name, genres=genres,
                                  maturity_rating=maturity, release_date=released),
                        int(at.timestamp() * 1000))


NEW = title("movie_456", "Action Comedy Adventure", ["Action", "Comedy", "Adventure"])


def test_a_new_title_is_appended_with_every_array_row_aligned_and_a_zero_embedding() -> None:
    items = world.items()
    merged = with_catalog_titles(items, [NEW])
    n = len(items)
    assert len(merged) == n + 1 and merged.title_ids[-1] == "movie_456"
    for array in (merged.embeddings, merged.content, merged.genres, merged.release_seconds,
                  merged.maturity_levels, merged.popularity_at_training):
        assert array is not None and len(array) == n + 1
    assert len(merged.names) == len(merged.genre_labels) == n + 1
    assert not merged.embeddings[n].any()
    np.testing.assert_array_equal(merged.embeddings[:n], items.embeddings)
    np.testing.assert_array_equal(merged.genres[n], [1, 1, 0, 0])   # Adventure: not in vocab
    assert merged.maturity_levels[n] == 1 and merged.row_of["movie_456"] == n
    assert merged.name(n) == "Action Comedy Adventure"
    assert merged.genres_of(n) == ["Action", "Comedy", "Adventure"]   # shown as the catalog has


def test_a_new_titles_content_vector_is_trainings_definition_of_its_metadata() -> None:
    merged = with_catalog_titles(world.items(), [NEW])
    midnight = datetime.combine(TODAY, datetime.min.time(), UTC).timestamp()
    # As if the trainer had seen it: ItemArtifacts.build is what load_item_artifacts checks
    # against the trainer's stored vectors, and it calls definitions.content_vectors.
    trained = ItemArtifacts.build(["movie_456"], [[0.0] * 4], [[1, 1, 0, 0]], [midnight], [1],
                                  world.GENRES)
    np.testing.assert_allclose(merged.content[-1], trained.content[0], atol=1e-12)
    expected = rf.content_vectors([[1, 1, 0, 0]], [TODAY.year], [1])[0]
    np.testing.assert_allclose(merged.content[-1], expected, atol=1e-12)


def test_missing_metadata_counts_as_unrated_and_released_when_it_entered_the_catalog() -> None:
    at = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    bare = title("x y|z{1}", "Bare", [], released=None, maturity=None, updated=at)
    merged = with_catalog_titles(world.items(), [bare])
    assert merged.maturity_levels[-1] == 4                    # NC-17: no kids or teen profile
    assert merged.release_seconds[-1] == at.timestamp()
    assert np.isclose(np.linalg.norm(merged.content[-1]), 1.0)  # era and maturity only


def test_a_title_the_ranker_knows_keeps_its_trained_rows_and_takes_the_catalogs_name() -> None:
    items = world.items()
    renamed = title("t3", "The Real Name", ["Action", "Heist"])
    merged = with_catalog_titles(items, [renamed])
    assert len(merged) == len(items)
    assert merged.name(3) == "The Real Name" and merged.genres_of(3) == ["Action", "Heist"]
    np.testing.assert_array_equal(merged.content, items.content)
    np.testing.assert_array_equal(merged.genres, items.genres)
    assert merged.fingerprint != items.fingerprint


def test_the_fingerprint_names_the_set_but_stored_vectors_stay_valid() -> None:
    items = world.items()
    merged = with_catalog_titles(items, [NEW])
    again = with_catalog_titles(items, [NEW])
    other = with_catalog_titles(items, [NEW, title("movie_789", "Drama Romance", ["Drama"])])
    assert merged.fingerprint == again.fingerprint != items.fingerprint != other.fingerprint
    assert merged.stamp == other.stamp == items.stamp       # the trained rows' own
    assert merged.ranker_digest == other.ranker_digest == items.ranker_digest  # cached lists too
    assert with_catalog_titles(items, []) is items


def test_a_watched_catalog_title_is_filtered_but_only_trained_rows_fold_into_vectors() -> None:
    items = world.items()
    merged = with_catalog_titles(items, [NEW])
    state = world.user(["t20", "movie_456"])
    vectors = user_vectors(state, merged)
    before = user_vectors(world.user(["t20"]), items)
    np.testing.assert_array_equal(vectors.taste, before.taste)
    np.testing.assert_array_equal(vectors.profile, before.profile)
    assert merged.row_of["movie_456"] in vectors.watched.tolist()
    assert vectors.watch_count == 2


class FakeTitles:
    """The catalog hash: a version and titles; counts the reads."""

    def __init__(self) -> None:
        self.titles: list[CatalogTitle] = []
        self.current = 0
        self.version_reads = 0
        self.reads = 0
        self.down = False

    def put(self, *titles: CatalogTitle) -> None:
        self.titles += titles
        self.current += 1

    def version(self) -> int:
        if self.down:
            raise FeatureStoreUnavailable("down")
        self.version_reads += 1
        return self.current

    def read(self) -> tuple[int, list[CatalogTitle]]:
        self.reads += 1
        return self.current, list(self.titles)


class SizedStore(FakeStore):
    """The fake store's stats, as wide as the item set it is built for."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = world.N_TITLES

    def read_item_stats(self, now_s: float) -> ItemStats:
        base = world.stats()
        extra = self.rows - world.N_TITLES
        return ItemStats(base.read_at_s, np.concatenate([base.window_counts, np.zeros(extra,
                                                                                     np.int64)]),
                         np.concatenate([base.trending_log2, np.full(extra, -np.inf)]))


class ContentRanker(FakeModel):
    """A ranker that learned content only: p = sigmoid(4 x content_score)."""

    def predict(self, model_name: str, rows: Any, *, version: int | None = None) -> Prediction:
        p1 = 1 / (1 + np.exp(-4.0 * rows[:, RANKER_FEATURE_NAMES.index("content_score")]))
        return Prediction(model_name, version or 1, {"probabilities": np.column_stack([1 - p1,
                                                                                      p1])})


class CatalogRig:
    def __init__(self, root: Path, model: FakeModel | None = None) -> None:
        self.store = SizedStore()
        self.titles = FakeTitles()
        self.catalog = LiveCatalog(world.repository(root), "ranker", self._store_for, 60.0,
                                   self.titles)
        self.catalog.refresh()
        self.service = RecommenderService(
            catalog=self.catalog, store_for=self._store_for, model=model or FakeModel(),
            model_name="ranker", metrics=RecommenderMetrics(Metrics("catalog_test")),
            choose_variant=fixed_variant("treatment"),
            impressions=FakeImpressions(),  # type: ignore[arg-type]
            policy=ListPolicy(candidates=CandidateSizes(10, 10, 5), cache_ttl_s=300,
                              default_max_maturity=4, fallback_max_maturity=1,
                              cache_enabled=False),
            redis_breakers=BreakerSet.single("redis", 100),
            model_breaker=CircuitBreaker("model", 100))

    def _store_for(self, items: ItemArtifacts) -> SizedStore:
        self.store.rows = len(items)
        return self.store


@pytest.fixture
def rig(tmp_path: Path) -> CatalogRig:
    return CatalogRig(tmp_path)


def test_a_refresh_merges_new_titles_and_an_unchanged_catalog_costs_one_version_read(
        rig: CatalogRig) -> None:
    assert len(rig.catalog.snapshot.items) == world.N_TITLES
    rig.titles.put(NEW)
    rig.catalog.refresh()
    first = rig.catalog.snapshot
    assert "movie_456" in first.items.row_of and first.catalog_version == 1
    assert len(first.stats.window_counts) == len(first.items)
    reads = rig.titles.reads
    rig.catalog.refresh()
    assert rig.catalog.snapshot.items is first.items           # the same merge, not rebuilt
    assert rig.titles.reads == reads and rig.titles.version_reads >= 3


def test_the_last_merge_stands_while_the_catalog_cannot_be_read(rig: CatalogRig) -> None:
    rig.titles.put(NEW)
    rig.catalog.refresh()
    rig.titles.down = True
    rig.catalog.refresh()
    assert "movie_456" in rig.catalog.snapshot.items.row_of


def test_a_cold_user_gets_a_title_released_today_before_anyone_watched_it(
        rig: CatalogRig) -> None:
    before = rig.service.recommend("new-user-xyz", 6)
    assert "movie_456" not in [i.content_id for i in before.items]
    rig.titles.put(NEW)
    rig.catalog.refresh()
    answer = rig.service.recommend("new-user-xyz", 6)
    assert answer.personalization == "cold" and len(answer.items) == 6
    [new] = [i for i in answer.items if i.content_id == "movie_456"]
    assert new.recommendation_type == "new_release" and new.title == "Action Comedy Adventure"
    assert new.explanation.startswith("New release")


def test_an_old_title_from_the_catalog_gets_no_new_release_slot(rig: CatalogRig) -> None:
    rig.titles.put(title("old_one", "Old", ["Drama"], released=TODAY - timedelta(days=400)))
    rig.catalog.refresh()
    answer = rig.service.recommend("new-user-xyz", 6)
    assert "old_one" not in [i.content_id for i in answer.items]


def test_a_user_whose_profile_matches_a_new_titles_genres_gets_it_from_content(
        tmp_path: Path) -> None:
    # Nobody watched it, so its cf_score is 0: content_score carries it, as it does in the
    # trained ranker (a ranker of content alone makes that visible).
    rig = CatalogRig(tmp_path, ContentRanker())
    both = title("drama_kids", "Family Drama", ["Drama", "Kids"],
                 released=TODAY - timedelta(days=800))
    rig.titles.put(both)
    rig.catalog.refresh()
    rig.store.users["u2"] = world.user(["t20", "t30"])      # light: content weighted up
    answer = rig.service.recommend("u2", 5)
    assert answer.personalization == "light"
    assert answer.items[0].content_id == "drama_kids"      # the closest to the profile
    candidates = content_scores(user_vectors(rig.store.users["u2"], rig.catalog.snapshot.items),
                                rig.catalog.snapshot.items)
    assert int(np.argmax(candidates)) == rig.catalog.snapshot.items.row_of["drama_kids"]
    assert answer.items[0].genres == ["Drama", "Kids"]
    assert answer.items[0].recommendation_type == "similar_to_watched"


def test_a_kids_profile_never_gets_an_unrated_new_title(rig: CatalogRig) -> None:
    rig.titles.put(title("unrated", "Unrated", ["Kids"], maturity=None))
    rig.catalog.refresh()
    rig.store.users["kid"] = world.user(["t30", "t31"], user_id="kid", max_maturity=1)
    assert "unrated" not in [i.content_id for i in rig.service.recommend("kid", 10).items]
    assert "unrated" in [i.content_id for i in rig.service.recommend("adult", 10).items]
