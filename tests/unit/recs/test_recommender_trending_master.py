"""The trending list's master down, with fakes: on a cluster the list lives on one master for
every user, and a user whose own keys live elsewhere still gets a whole answer, its trending
titles in the catalog snapshot's order (fault 2 of docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.recommender.schemas import RecommendationsResponse
from services.recommender.service import CacheUse
from tests import recommender_world as world
from tests.support.recs import Rig

FAIL_MAX = 3
UNCACHED = CacheUse(read=False, write=False)
DAY = world.NOW / 86_400
HEAD = (("t31", DAY + 9), ("t32", DAY + 8), ("t33", DAY + 7))  # the list as the request reads it
SNAPSHOT_TRENDING = ("t21", "t22", "t23")                      # as the catalog snapshot holds it


def master_of(user_id: str) -> str:
    """Users `a*` on master A, `b*` on B, which also holds the trending list."""
    return user_id[0].upper()


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    rig = Rig(tmp_path, redis_fail_max=FAIL_MAX, masters=master_of, trending_master="B")
    rig.store.stats = world.stats(trending_rows=tuple(int(t[1:]) for t in SNAPSHOT_TRENDING))
    rig.catalog.refresh()
    for user_id in ("a1", "b1"):   # cold users: their lists are popular and trending titles
        rig.store.users[user_id] = world.user([], user_id=user_id, trending=HEAD)
    return rig


def trending(answer: RecommendationsResponse) -> set[str]:
    return {item.content_id for item in answer.items if item.recommendation_type == "trending"}


def test_the_trending_head_is_read_with_the_users_keys_while_its_master_answers(rig: Rig) -> None:
    answer = rig.service.recommend("a1", 10, UNCACHED)
    assert answer.served_from == "computed" and answer.fallbacks == []
    assert {"t31", "t32", "t33"} <= trending(answer)
    assert rig.store.head_reads == 1
    assert rig.count("trending_heads_total", source="request") == 1


def test_a_dead_trending_master_leaves_users_elsewhere_whole_with_the_snapshots_trending(
        rig: Rig) -> None:
    rig.store.refusing = {"B"}
    answers = [rig.service.recommend("a1", 10, UNCACHED) for _ in range(FAIL_MAX + 3)]
    assert {(a.served_from, tuple(a.fallbacks)) for a in answers} == {("computed", ())}
    assert all(set(SNAPSHOT_TRENDING) <= trending(a) and not {"t31", "t32", "t33"} & trending(a)
               for a in answers)
    assert rig.count("trending_heads_total", source="snapshot") == FAIL_MAX + 3
    assert rig.count("fallbacks_total", dependency="feature_store") == 0
    # The failures counted against the list's master only: its breaker opened, so the head is
    # asked no more; the user's own master's breaker stayed closed.
    assert rig.store.head_reads == FAIL_MAX
    assert rig.redis_breakers.states() == {"A": "closed", "B": "open"}


def test_a_user_whose_own_keys_are_on_the_dead_master_still_gets_the_flagged_fallback(
        rig: Rig) -> None:
    rig.store.refusing = {"B"}
    answer = rig.service.recommend("b1", 10, UNCACHED)
    assert answer.served_from == "fallback" and answer.fallbacks == ["feature_store"]
    assert rig.count("trending_heads_total", source="snapshot") == 0


def test_the_head_is_read_again_once_its_masters_breaker_lets_a_trial_through(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    rig.store.refusing = {"B"}
    for _ in range(FAIL_MAX):
        rig.service.recommend("a1", 10, UNCACHED)
    rig.store.refusing = set()
    breaker = rig.redis_breakers.part("B")
    monkeypatch.setattr(breaker, "_reset_s", 0.0)   # the reset is over: half-open
    answer = rig.service.recommend("a1", 10, UNCACHED)
    assert {"t31", "t32", "t33"} <= trending(answer) and breaker.state == "closed"


def test_a_request_places_the_users_keys_once_for_its_cache_read_state_and_cache_write(
        tmp_path: Path) -> None:
    """Placing a key reads the client's slot map: the request's breakers all take the one
    master it found first (the store's own routing is not counted)."""
    placed: list[str] = []

    def placing(user_id: str) -> str:
        placed.append(user_id)
        return master_of(user_id)

    rig = Rig(tmp_path, masters=placing, trending_master="B")
    rig.store.master_of = master_of
    rig.store.users["a1"] = world.user([], user_id="a1", trending=HEAD)
    answer = rig.service.recommend("a1", 10, CacheUse(read=True, write=True))
    assert answer.served_from == "computed" and ("a1", 10) in rig.store.cache
    assert placed == ["a1"]


def test_a_timeout_of_the_lists_master_cannot_be_placed_and_stays_a_fallback(rig: Rig) -> None:
    """A slow master is not told from a slow user's one without waiting on each: the answer
    is the fallback, counted against every master, as before."""
    rig.store.slow = {"B"}
    answer = rig.service.recommend("a1", 10, UNCACHED)
    assert answer.fallbacks == ["feature_store"]
    assert rig.store.head_reads == 1   # not asked again without the head


def test_on_one_server_the_head_is_read_with_the_user_and_a_failure_is_not_retried(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.store.refusing = {"redis"}
    answer = rig.service.recommend("a1", 10, UNCACHED)
    assert answer.fallbacks == ["feature_store"] and rig.store.head_reads == 1
