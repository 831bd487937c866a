"""The recommendation use case with fakes: cache, cold start, every fallback, impressions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from services.common.bus.envelope import decode_event
from services.common.drift import DRIFT_REFERENCE_FILE, DriftReference
from services.common.drift_monitor import DriftMonitor
from services.common.models import ModelRepository
from services.common.models.testing import logistic_model
from services.common.telemetry import Metrics
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.designs.payloads import ImpressionData, payload_of
from services.designs.recs.state import UserOnlineState
from services.recommender.catalog import LiveCatalog
from services.recommender.explore import explored
from services.recommender.impressions import impression_message
from services.recommender.schemas import (
    RecommendationList,
    RecommendationsResponse,
    ServedList,
)
from services.recommender.service import CacheUse
from services.recommender.shadow import sampled
from services.recommender.variants import Assignment, fixed_variant
from tests import recommender_world as world
from tests.support.recs import Rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def ids(response: RecommendationsResponse) -> list[str]:
    return [item.content_id for item in response.items]


def test_a_known_user_gets_a_ranked_explained_list_of_unwatched_titles(rig: Rig) -> None:
    rig.store.users["u1"] = world.user([f"t{i}" for i in range(6)])
    answer = rig.service.recommend("u1", 5)
    assert answer.served_from == "computed" and answer.fallbacks == []
    assert answer.variant == "treatment" and answer.model_version == 1
    assert len(answer.items) == 5
    assert not set(ids(answer)) & {f"t{i}" for i in range(6)}
    assert ids(answer)[0] in {"t6", "t7", "t8", "t9"}           # Action first: the user's taste
    assert all(item.title.startswith("Title ") and item.explanation for item in answer.items)
    assert rig.model.calls and rig.model.calls[0][1] == 1     # one batch, the artifacts' version
    assert answer.personalization == "full"


def test_the_control_blends_without_calling_the_model(tmp_path: Path) -> None:
    rig = Rig(tmp_path, variant="control")
    rig.store.users["u1"] = world.user([f"t{i}" for i in range(6)])
    answer = rig.service.recommend("u1", 5)
    assert answer.variant == "control" and answer.served_from == "computed"
    assert rig.model.calls == []
    assert ids(answer)[0] in {"t6", "t7", "t8", "t9"}


def test_the_second_request_is_served_from_the_cache_until_a_watch_changes_the_count(
        rig: Rig) -> None:
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    first = rig.service.recommend("u1", 5)
    second = rig.service.recommend("u1", 5)
    assert second.served_from == "cache" and ids(second) == ids(first)
    assert second.request_id != first.request_id              # each showing is an impression
    assert rig.count("cache_lookups_total", result="hit") == 1
    # The stream deletes the cache on a watch; the next list is computed from the new state.
    rig.store.cache.clear()
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4", ids(first)[0]])
    third = rig.service.recommend("u1", 5)
    assert third.served_from == "computed" and ids(first)[0] not in ids(third)


def test_a_cached_answer_says_what_the_computed_one_said_and_never_shows_the_features(
        rig: Rig) -> None:
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    computed, cached = rig.service.recommend("u1", 5), rig.service.recommend("u1", 5)
    per_request = {"request_id", "served_from", "fallbacks", "processing_time_ms"}
    assert cached.served_from == "cache"
    assert cached.model_dump(exclude=per_request) == computed.model_dump(exclude=per_request)
    assert RecommendationsResponse.model_validate_json(cached.model_dump_json()) == cached
    assert "features" not in json.loads(cached.model_dump_json())


@pytest.mark.parametrize(("header", "read", "write"), [
    (None, True, True), ("", True, True), ("max-age=0", True, True),
    ("no-cache", False, True), ("No-Store", True, False), ("no-cache, no-store", False, False),
    ("no-store,no-cache=set-cookie", False, False)])
def test_cache_control_says_what_the_response_cache_may_do(header: str | None, read: bool,
                                                           write: bool) -> None:
    assert CacheUse.from_header(header) == CacheUse(read, write)


def test_no_cache_computes_a_cached_list_anew_and_no_store_keeps_it_out(rig: Rig) -> None:
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    assert rig.service.recommend("u1", 5, CacheUse(read=True, write=False)).served_from == \
        "computed"
    assert rig.store.cache == {}
    rig.service.recommend("u1", 5)
    assert rig.service.recommend("u1", 5, CacheUse(read=False)).served_from == "computed"
    assert rig.service.recommend("u1", 5).served_from == "cache"
    assert rig.count("cache_lookups_total", result="hit") == 1


def test_a_list_built_before_a_watch_is_not_cached_after_it(rig: Rig) -> None:
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    original = rig.store.read_user

    def read_then_watch(user_id: str) -> UserOnlineState:
        state = original(user_id)
        rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4", "t5"])  # meanwhile
        return state
    rig.store.read_user = read_then_watch  # type: ignore[method-assign]
    rig.service.recommend("u1", 5)
    assert rig.store.cache == {}


def test_a_cached_list_the_other_arms_algorithm_built_is_not_served(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    rig.service._choose = fixed_variant("control")             # the blend builds and caches
    rig.service.recommend("u1", 5)
    rig.service._choose = fixed_variant("treatment")           # the ranker's user now
    answer = rig.service.recommend("u1", 5)
    assert (answer.served_from, answer.variant) == ("computed", "treatment")
    assert rig.count("cache_lookups_total", result="miss") == 2


def test_a_stored_list_that_does_not_say_what_built_it_is_not_served(rig: Rig) -> None:
    """Stored before lists named their ranker and artifacts, or by something else: a miss."""
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    rig.service.recommend("u1", 5)
    listed = RecommendationList.model_validate_json(rig.store.cache[("u1", 5)])
    rig.store.cache[("u1", 5)] = listed.model_dump_json().encode()   # the API's fields alone
    assert rig.service.recommend("u1", 5).served_from == "computed"
    stored = ServedList.model_validate_json(rig.store.cache[("u1", 5)])
    assert stored.ranked_by == 1 and stored.artifacts == rig.catalog.snapshot.items.ranker_digest
    rig.store.cache[("u1", 5)] = stored.model_copy(update={"artifacts": "other"}) \
        .model_dump_json().encode()                                 # other items' candidates
    assert rig.service.recommend("u1", 5).served_from == "computed"


def challenger(root: Path) -> tuple[ModelRepository, int]:
    """The rig's repository with v2 registered, not promoted: another ranker (it scores
    against cf_score), registered with a copy of production's embeddings, as a retrain does."""
    repository = ModelRepository(root)
    version = repository.register(
        "ranker", logistic_model([-4.0] + [0.0] * (len(RANKER_FEATURE_NAMES) - 1)),
        feature_names=RANKER_FEATURE_NAMES, metrics={}, training_data_hash="test",
        description="challenger", extra_files={"embeddings.npz": world.embeddings_npz()})
    return repository, version


def test_after_a_promotion_the_lists_the_challenger_built_for_its_arm_are_productions_answer(
        tmp_path: Path) -> None:
    """make ab-demo's end: the test's lists are cached under its experiment; the winner is
    promoted and everyone is back in rec-algorithm. The challenger's treatment lists are what
    production builds now (same ranker, same artifacts' contents): served, as this user's arm.
    The control's, which the old production ranker built, are not: computed by the new one."""
    rig = Rig(tmp_path)
    repository, v2 = challenger(tmp_path)
    for user in ("u1", "u2"):
        rig.store.users[user] = world.user(["t0", "t1", "t2", "t3", "t4"], user_id=user)
    arms = {"u1": Assignment("ranker-v2-r5", "treatment", "ranker", v2),
            "u2": Assignment("ranker-v2-r5", "control", "ranker")}
    rig.service._choose = lambda user: arms[user]
    built = {user: rig.service.recommend(user, 5) for user in arms}
    assert [version for _, version in rig.model.calls] == [v2, 1]
    repository.promote("ranker", v2)
    rig.catalog.refresh()
    assert rig.catalog.snapshot.version == v2
    rig.service._choose = fixed_variant("treatment")          # rec-algorithm's ranker arm
    served = rig.service.recommend("u1", 5)
    assert served.served_from == "cache" and ids(served) == ids(built["u1"])
    assert (served.experiment, served.variant) == (None, "treatment")   # the user's arm now
    listed, _, assignment = rig.impressions.recorded[-1]
    assert (listed.experiment, listed.variant) == (None, "treatment") == (
        assignment.experiment, assignment.variant)
    assert rig.count("responses_total", served_from="cache", variant="treatment") == 1
    computed = rig.service.recommend("u2", 5)                  # v1 built it: not v2's answer
    assert computed.served_from == "computed" and rig.model.calls[-1][1] == v2
    assert computed.model_version == v2


def test_after_a_promotion_no_list_the_old_ranker_built_is_served_in_the_same_arm(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    repository, v2 = challenger(tmp_path)
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    rig.service.recommend("u1", 5)                             # v1's, cached under treatment
    assert rig.service.recommend("u1", 5).served_from == "cache"
    repository.promote("ranker", v2)
    rig.catalog.refresh()
    answer = rig.service.recommend("u1", 5)                    # same experiment, same variant
    assert answer.served_from == "computed" and rig.model.calls[-1][1] == v2


def test_a_cold_list_is_ranked_by_no_one_and_serves_either_arm(tmp_path: Path) -> None:
    rig = Rig(tmp_path, variant="control")
    first = rig.service.recommend("u999", 5)                   # no history: cold, the blend
    rig.service._choose = fixed_variant("treatment")
    again = rig.service.recommend("u999", 5)
    assert first.personalization == "cold" and again.served_from == "cache"
    assert ids(again) == ids(first) and again.variant == "treatment"
    assert rig.model.calls == []


def test_an_unknown_user_gets_popular_and_trending_titles_explained(rig: Rig) -> None:
    answer = rig.service.recommend("u999", 6)
    assert answer.personalization == "cold" and answer.served_from == "computed"
    assert answer.fallbacks == [] and len(answer.items) == 6
    assert {item.recommendation_type for item in answer.items} <= {"popular", "trending"}
    assert "t0" in ids(answer)                                # the most watched title
    assert rig.model.calls == []                              # nothing personal to rank


def test_a_user_with_few_events_is_served_with_content_weighted_up(rig: Rig) -> None:
    rig.store.users["u2"] = world.user(["t20", "t21"])
    answer = rig.service.recommend("u2", 5)
    assert answer.personalization == "light"
    assert sum(world.genre_of(int(i[1:])) == 2 for i in ids(answer)) >= 2   # Drama


def test_a_kids_profile_never_gets_a_title_above_its_maturity(rig: Rig) -> None:
    rig.store.users["u3"] = world.user(["t30", "t31", "t32"], max_maturity=1)
    answer = rig.service.recommend("u3", 10)
    assert not {"t35", "t36", "t37", "t38", "t39"} & set(ids(answer))


def test_redis_down_serves_the_in_process_popular_snapshot_flagged(rig: Rig) -> None:
    rig.store.down = True
    answer = rig.service.recommend("u1", 5)
    assert answer.served_from == "fallback" and answer.fallbacks == ["feature_store"]
    assert len(answer.items) == 5 and ids(answer)[0] == "t0"
    assert all(item.recommendation_type == "popular" for item in answer.items)
    assert not {"t35", "t36", "t37", "t38", "t39"} & set(ids(answer))  # profile unknown: PG
    assert rig.count("fallbacks_total", dependency="feature_store") == 1


def test_model_down_blends_without_the_ranker_flagged_and_uncached(rig: Rig) -> None:
    rig.store.users["u1"] = world.user([f"t{i}" for i in range(6)])
    rig.model.down = True
    answer = rig.service.recommend("u1", 5)
    assert answer.served_from == "fallback" and answer.fallbacks == ["model"]
    assert answer.variant == "treatment" and len(answer.items) == 5
    assert rig.store.cache == {}                              # a degraded list is not kept
    assert rig.count("fallbacks_total", dependency="model") == 1


def test_no_model_loaded_answers_an_empty_list_flagged_not_an_error(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.catalog = LiveCatalog(world.repository(tmp_path / "other"), "missing", rig._store_for, 60)
    rig.service.catalog = rig.catalog
    answer = rig.service.recommend("u1", 5)
    assert answer.items == [] and answer.fallbacks == ["catalog"]


def test_an_empty_list_is_an_impression_too_with_the_time_it_took(tmp_path: Path) -> None:
    # The empty-list guardrail counts them per variation: a list nobody logged cannot be counted.
    rig = Rig(tmp_path)
    rig.catalog = LiveCatalog(world.repository(tmp_path / "other"), "missing", rig._store_for, 60)
    rig.service.catalog = rig.catalog
    answer = rig.service.recommend("u1", 5)
    listed, request_id, assignment = rig.impressions.recorded[0]
    assert (listed.items, request_id) == ([], answer.request_id)
    message = impression_message(listed, request_id, assignment, "rec-impressions",
                                 rig.impressions.latencies_ms[0])
    assert decode_event(message.value).data["content_ids"] == []


def test_each_impression_carries_the_processing_time_the_answer_reports(rig: Rig) -> None:
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    answers = [rig.service.recommend("u1", 5) for _ in range(2)]   # computed, then cached
    assert rig.impressions.latencies_ms == [a.processing_time_ms for a in answers]
    listed, request_id, assignment = rig.impressions.recorded[0]
    message = impression_message(listed, request_id, assignment, "rec-impressions",
                                 answers[0].processing_time_ms)
    assert decode_event(message.value).data["latency_ms"] == answers[0].processing_time_ms


def test_every_answer_is_an_impression_with_its_request_id_and_variant(rig: Rig) -> None:
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    first = rig.service.recommend("u1", 5)
    rig.service.recommend("u1", 5)
    assert len(rig.impressions.recorded) == 2
    listed, request_id, assignment = rig.impressions.recorded[0]
    assert request_id == first.request_id and assignment.variant == "treatment"
    assert [i.content_id for i in listed.items] == ids(first)


def test_stage_timings_are_recorded_for_each_stage(rig: Rig) -> None:
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    rig.service.recommend("u1", 5)
    for stage in ("cache", "features", "candidates", "rank", "rerank", "served_features"):
        assert rig.count("stage_duration_seconds_count", stage=stage) == 1


def test_an_impression_carries_the_very_rows_the_ranker_scored_for_each_listed_title(
        rig: Rig) -> None:
    rig.store.users["u1"] = world.user([f"t{i}" for i in range(6)])
    answer = rig.service.recommend("u1", 5)
    listed, _, _ = rig.impressions.recorded[0]
    served = listed.features
    assert served is not None and served.names == list(RANKER_FEATURE_NAMES)
    assert served.request_id == answer.request_id and served.model_version == 1
    assert len(served.rows) == len(answer.items)
    scored = {tuple(row) for row in np.asarray(rig.model.rows[0], dtype=np.float64).tolist()}
    assert all(tuple(row) in scored for row in served.rows)   # the same floats, bit for bit
    # the ranker's probability of each listed title is its shown score: p = sigmoid(4 cf)
    for item, row in zip(answer.items, served.rows, strict=True):
        assert item.score == pytest.approx(1 / (1 + np.exp(-4.0 * row[0])), abs=1e-6)


def test_the_control_logs_the_ranker_features_of_its_listed_titles_too(tmp_path: Path) -> None:
    control, treatment = Rig(tmp_path / "c", "control"), Rig(tmp_path / "t", "treatment")
    for rig in (control, treatment):
        rig.store.users["u1"] = world.user([f"t{i}" for i in range(6)])
        rig.service.recommend("u1", 5)
    assert control.model.calls == []                          # still no model call
    rows = {}
    for rig in (control, treatment):
        listed, _, _ = rig.impressions.recorded[0]
        assert listed.features is not None
        rows[rig] = dict(zip([i.content_id for i in listed.items], listed.features.rows,
                             strict=True))
    shared = set(rows[control]) & set(rows[treatment])
    assert shared                                             # the same user, titles in common
    for title in shared:                                      # a title's features: one definition
        assert rows[control][title] == pytest.approx(rows[treatment][title], rel=1e-4, abs=1e-6)


def test_a_cached_list_logs_its_first_showings_features_and_the_api_never_shows_them(
        rig: Rig) -> None:
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    first = rig.service.recommend("u1", 5)
    second = rig.service.recommend("u1", 5)
    assert second.served_from == "cache"
    (one, _, _), (two, _, _) = rig.impressions.recorded
    assert one.features is not None and two.features is not None
    assert two.features.request_id == first.request_id        # the reference training joins on
    assert two.features.rows == one.features.rows
    assert "features" not in second.model_dump()


def test_a_list_made_without_the_users_state_logs_no_features(rig: Rig) -> None:
    rig.store.down = True
    rig.service.recommend("u1", 5)
    listed, _, _ = rig.impressions.recorded[0]
    assert listed.items and listed.features is None


def test_the_impression_event_round_trips_the_float32_features_exactly(rig: Rig) -> None:
    rig.store.users["u1"] = world.user([f"t{i}" for i in range(6)])
    answer = rig.service.recommend("u1", 5)
    listed, request_id, assignment = rig.impressions.recorded[0]
    message = impression_message(listed, request_id, assignment, "rec-impressions")
    event = decode_event(message.value)
    data = payload_of(event.type, event.data)
    assert isinstance(data, ImpressionData) and data.features is not None
    assert data.content_ids == ids(answer)
    scored = np.asarray(rig.model.rows[0], dtype=np.float32)
    assert all((np.asarray(row, dtype=np.float32) == scored).all(axis=1).any()
               for row in data.features.rows)


def test_an_impression_with_a_features_row_per_title_missing_is_refused() -> None:
    served = {"names": ["a", "b"], "rows": [[1.0, 2.0]], "computed_at": 1.0,
              "request_id": "r1"}
    with pytest.raises(ValidationError, match="one row per content id"):
        ImpressionData(user_id="u1", content_ids=["t1", "t2"], request_id="r1",
                       features=served)
    with pytest.raises(ValidationError, match="one value per name"):
        ImpressionData(user_id="u1", content_ids=["t1"], request_id="r1",
                       features={**served, "rows": [[1.0]]})


def test_the_rankers_candidate_rows_and_scores_feed_the_drift_window(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    repository = ModelRepository(tmp_path)
    training = np.random.default_rng(0).random((500, len(RANKER_FEATURE_NAMES)))
    version = repository.register(
        "ranker", logistic_model([4.0] + [0.0] * (len(RANKER_FEATURE_NAMES) - 1)),
        feature_names=RANKER_FEATURE_NAMES, metrics={}, training_data_hash="test",
        description="with a drift reference", extra_files={
            "embeddings.npz": world.embeddings_npz(),
            DRIFT_REFERENCE_FILE: DriftReference.of(training, RANKER_FEATURE_NAMES,
                                                    training[:, 0]).to_json().encode()})
    repository.promote("ranker", version)
    rig.catalog.refresh()
    monitor = DriftMonitor(repository=repository, model_name="ranker",
                           feature_names=RANKER_FEATURE_NAMES, metrics=Metrics("recs_drift"),
                           window=1000, min_rows=1)
    rig.service._drift = monitor
    rig.store.users["u1"] = world.user([f"t{i}" for i in range(6)])
    rig.service.recommend("u1", 5)
    window = monitor._windows[version]
    assert window is not None and window.rows == rig.model.calls[0][0]   # every candidate
    control = Rig(tmp_path / "control", "control")
    control.service._drift = monitor
    control.store.users["u1"] = world.user([f"t{i}" for i in range(6)])
    control.service.recommend("u1", 5)
    assert window.rows == rig.model.calls[0][0]          # the blend scored nothing to compare


def test_a_challenger_variation_scores_with_its_ranker_version_and_starts_a_fresh_cache(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    rig.service.recommend("u1", 5)                          # production ranker, then cached
    rig.service._choose = lambda user: Assignment("ranker-v7", "treatment", "ranker", 7)
    answer = rig.service.recommend("u1", 5)
    # same variant name, another experiment: not the cached list, and scored by version 7
    assert answer.served_from == "computed" and answer.experiment == "ranker-v7"
    assert [version for _, version in rig.model.calls] == [1, 7]


def test_an_explored_list_shows_the_same_titles_in_a_random_order_with_its_rows_in_step(
        tmp_path: Path) -> None:
    ordered, exploring = Rig(tmp_path / "a"), Rig(tmp_path / "b", explore_share=1.0)
    for rig in (ordered, exploring):
        rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    lists = [ordered.service.recommend("u1", 8, CacheUse(read=False))]
    lists += [exploring.service.recommend("u1", 8, CacheUse(read=False)) for _ in range(3)]
    assert all(sorted(ids(answer)) == sorted(ids(lists[0])) for answer in lists)
    assert any(ids(answer) != ids(lists[0]) for answer in lists[1:])   # not the ranked order
    assert [listed.shuffled for listed, _, _ in ordered.impressions.recorded] == [False]
    for listed, _, _ in exploring.impressions.recorded:
        assert listed.shuffled and listed.features is not None
        # each row still describes the title in its slot: same rows as the ranked list, permuted
        rows = {item.content_id: row for item, row in zip(listed.items, listed.features.rows,
                                                          strict=True)}
        first, _, _ = ordered.impressions.recorded[0]
        assert first.features is not None
        assert rows == {item.content_id: row for item, row in zip(
            first.items, first.features.rows, strict=True)}


def test_the_exploration_sample_is_its_share_of_requests_and_not_the_shadows() -> None:
    requests = [f"r{n}" for n in range(20_000)]
    chosen = [explored(r, 0.05) for r in requests]
    assert 0.045 < sum(chosen) / len(requests) < 0.055
    assert not any(explored(r, 0.0) for r in requests[:1000])
    both = sum(c and sampled(r, 0.05) for c, r in zip(chosen, requests, strict=True))
    assert both < 0.01 * len(requests)                          # independent slices: ~0.25 %
