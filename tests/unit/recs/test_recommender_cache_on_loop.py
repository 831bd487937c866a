"""A cache hit answered on the event loop: the document, impression and counts the threaded
path gave for the same stored list; everything else handed to the threaded path, read once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.recommender.api import router
from services.recommender.schemas import (
    RecommendationList,
    RecommendationsResponse,
    ServedList,
    cached_response_json,
)
from services.recommender.service import CacheUse, RecommenderService
from tests import recommender_world as world
from tests.support.recs import Rig

PER_REQUEST = {"request_id", "processing_time_ms"}
URL = "/v1/recommendations/u1?k=5"


def client_for(service: RecommenderService) -> TestClient:
    app = FastAPI()
    app.state.recommender = service
    app.include_router(router)
    return TestClient(app)


def threaded_and_on_loop(tmp_path: Path) -> tuple[Rig, Rig]:
    """Two services holding the same stored list: one without the loop's read (as before)."""
    before, after = Rig(tmp_path / "before"), Rig(tmp_path / "after", on_loop=True)
    for rig in (before, after):
        rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    before.service.recommend("u1", 5)            # computed and cached, with its features
    after.store.cache = dict(before.store.cache)
    return before, after


def test_a_hit_on_the_loop_is_the_document_the_threaded_path_answered(tmp_path: Path) -> None:
    before, after = threaded_and_on_loop(tmp_path)
    then = client_for(before.service).get(URL)
    now = client_for(after.service).get(URL)
    assert after.list_cache is not None and after.list_cache.reads == 1
    assert now.status_code == then.status_code == 200
    assert now.headers["content-type"] == then.headers["content-type"] == "application/json"
    old, new = then.json(), now.json()
    assert old["served_from"] == new["served_from"] == "cache"
    assert list(new) == list(old)                  # the same fields, in the same order
    assert ({k: v for k, v in new.items() if k not in PER_REQUEST}
            == {k: v for k, v in old.items() if k not in PER_REQUEST})
    assert new["request_id"] != old["request_id"] and new["processing_time_ms"] >= 0
    RecommendationsResponse.model_validate_json(now.content)    # schema-valid as sent
    assert "features" not in new and "shuffled" not in new


def test_a_hit_on_the_loop_leaves_the_impression_and_counts_the_threaded_hit_does(
        tmp_path: Path) -> None:
    before, after = threaded_and_on_loop(tmp_path)
    before.service.recommend("u1", 5)            # the threaded hit
    lookup = asyncio.run(after.service.from_cache("u1", 5, CacheUse()))
    assert lookup.body is not None
    listed_then, _, assigned_then = before.impressions.recorded[-1]
    [(listed_now, request_id, assigned_now)] = after.impressions.recorded
    assert listed_now == listed_then and listed_now.features is not None  # the logged list
    assert assigned_now == assigned_then
    assert request_id == json.loads(lookup.body)["request_id"]
    for name, labels in [("cache_lookups_total", {"result": "hit"}),
                         ("responses_total", {"served_from": "cache", "variant": "treatment"}),
                         ("stage_duration_seconds_count", {"stage": "cache"})]:
        # before: a miss then a hit (so two cache stages); after: the hit alone
        assert after.count(name, **labels) == 1, name
    assert before.count("cache_lookups_total", result="hit") == 1
    assert after.count("cache_lookups_total", result="miss") == 0


def test_a_miss_on_the_loop_is_computed_in_the_thread_without_a_second_read(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path, on_loop=True)
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    client = client_for(rig.service)
    first = client.get(URL).json()
    assert first["served_from"] == "computed"
    assert rig.count("cache_lookups_total", result="miss") == 1    # counted once, read once
    assert rig.list_cache is not None and rig.list_cache.reads == 1
    second = client.get(URL).json()
    assert second["served_from"] == "cache" and second["items"] == first["items"]
    assert rig.list_cache.reads == 2 and rig.count("cache_lookups_total", result="hit") == 1


def test_a_list_cached_for_another_variant_is_a_miss_and_this_variants_list_is_computed(
        tmp_path: Path) -> None:
    control, treatment = Rig(tmp_path / "c", variant="control"), Rig(tmp_path / "t",
                                                                      on_loop=True)
    for rig in (control, treatment):
        rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    control.service.recommend("u1", 5)
    treatment.store.cache = dict(control.store.cache)
    answer = client_for(treatment.service).get(URL).json()
    assert (answer["served_from"], answer["variant"]) == ("computed", "treatment")
    assert treatment.count("cache_lookups_total", result="miss") == 1


def test_a_list_another_experiments_arm_built_with_this_users_ranker_answers_on_the_loop(
        tmp_path: Path) -> None:
    """Stored under another experiment by the same ranker on the same artifacts: a hit on the
    loop, its document this user's arm, the stored bytes otherwise (items, explanations)."""
    before, after = threaded_and_on_loop(tmp_path)
    stored = ServedList.model_validate_json(after.store.cache[("u1", 5)])
    after.store.cache[("u1", 5)] = stored.model_copy(update={
        "experiment": "ranker-v1-r5", "variant": "control"}).model_dump_json().encode()
    then = client_for(before.service).get(URL).json()          # its own list, a threaded hit
    now = client_for(after.service).get(URL)
    answer = now.json()
    assert (answer["served_from"], answer["experiment"], answer["variant"]) == (
        "cache", None, "treatment")
    assert ({k: v for k, v in answer.items() if k not in PER_REQUEST}
            == {k: v for k, v in then.items() if k not in PER_REQUEST})
    RecommendationsResponse.model_validate_json(now.content)
    [(listed, _, assignment)] = after.impressions.recorded
    assert (listed.experiment, listed.variant) == (assignment.experiment, assignment.variant)
    assert listed.features == stored.features                  # the first showing's rows
    assert after.count("responses_total", served_from="cache", variant="treatment") == 1


def test_redis_down_on_the_loop_still_answers_from_the_popular_snapshot(tmp_path: Path) -> None:
    rig = Rig(tmp_path, on_loop=True)
    rig.store.down = True
    response = client_for(rig.service).get(URL)
    assert response.status_code == 200
    answer = response.json()
    assert answer["served_from"] == "fallback" and answer["fallbacks"] == ["feature_store"]
    assert len(answer["items"]) == 5
    assert rig.count("cache_lookups_total", result="error") == 1


def test_a_read_the_loop_let_time_out_is_made_again_in_the_thread_and_not_held_against_redis(
        tmp_path: Path) -> None:
    _, after = threaded_and_on_loop(tmp_path)
    assert after.list_cache is not None
    after.list_cache.late = True
    client = client_for(after.service)
    answers = [client.get(URL).json() for _ in range(3)]     # more than the breaker allows
    assert [a["served_from"] for a in answers] == ["cache"] * 3     # the thread's read
    assert after.count("cache_lookups_total", result="error") == 0
    assert after.count("cache_lookups_total", result="hit") == 3
    assert after.redis_breaker.state == "closed"


def test_with_the_breaker_open_the_loop_leaves_redis_to_the_threaded_path(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path, on_loop=True, redis_fail_max=2)
    rig.store.down = True
    client = client_for(rig.service)
    client.get(URL)               # the loop's read fails, uncounted; the thread's two count
    assert rig.redis_breaker.state == "open"
    assert rig.list_cache is not None and rig.list_cache.reads == 1
    answer = client.get(URL).json()
    assert answer["served_from"] == "fallback" and answer["fallbacks"] == ["feature_store"]
    assert rig.list_cache.reads == 1                            # not tried on the loop


def test_no_cache_skips_the_loops_read_and_computes(tmp_path: Path) -> None:
    rig = Rig(tmp_path, on_loop=True)
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    client = client_for(rig.service)
    client.get(URL)
    answer = client.get(URL, headers={"Cache-Control": "no-cache"}).json()
    assert answer["served_from"] == "computed"
    assert rig.list_cache is not None and rig.list_cache.reads == 1   # the first request's


def test_an_unreadable_cached_entry_is_a_miss_not_a_server_error(tmp_path: Path) -> None:
    rig = Rig(tmp_path, on_loop=True)
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    rig.store.cache[("u1", 5)] = b'{"user_id": "u1", "items": "not a list"'
    response = client_for(rig.service).get(URL)
    assert response.status_code == 200 and response.json()["served_from"] == "computed"
    assert rig.count("cache_lookups_total", result="miss") == 1


def test_an_exposure_still_to_log_sends_the_request_to_the_thread_which_reads_the_cache(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path, on_loop=True, settled_variant=lambda user_id: None)
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    client = client_for(rig.service)
    client.get(URL)
    answer = client.get(URL).json()
    assert answer["served_from"] == "cache"                 # the threaded read found it
    assert rig.list_cache is not None and rig.list_cache.reads == 0


def test_the_stored_list_holds_the_apis_fields_first_so_its_bytes_can_be_cut() -> None:
    public = list(RecommendationList.model_fields)
    assert list(ServedList.model_fields)[:len(public) + 1] == [*public, "features"]


def test_a_stored_list_in_another_layout_is_serialised_again_with_the_same_fields() -> None:
    listed = ServedList(user_id="u1", items=[], variant="control", experiment=None,
                        model_version=1, personalization="cold", watch_count=0)
    stored = json.dumps(json.loads(listed.model_dump_json()), indent=1).encode()  # no cut mark
    body = cached_response_json(stored, listed, "r1", 0.5)
    answer = RecommendationsResponse.model_validate_json(body)
    assert (answer.request_id, answer.served_from, answer.processing_time_ms) == ("r1", "cache",
                                                                                   0.5)
    assert "features" not in json.loads(body)


def test_a_miss_on_the_loop_places_the_users_keys_once_for_the_loop_and_the_thread(
        tmp_path: Path) -> None:
    """Placing a key reads the cluster client's slot map: the loop's breaker check and the
    thread's reads and write all take the one master the loop found."""
    placed: list[str] = []

    def placing(user_id: str) -> str:
        placed.append(user_id)
        return "A"

    rig = Rig(tmp_path, on_loop=True, masters=placing, trending_master="A")
    rig.store.master_of = lambda user_id: "A"
    rig.store.users["u1"] = world.user(["t0", "t1", "t2", "t3", "t4"])
    answer = client_for(rig.service).get(URL).json()
    assert answer["served_from"] == "computed" and ("u1", 5) in rig.store.cache
    assert rig.list_cache is not None and rig.list_cache.reads == 1
    assert placed == ["u1"]
