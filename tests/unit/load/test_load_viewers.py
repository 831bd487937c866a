"""The recommendation load test's population (load-tests/viewers.py) on a small list of users."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.load_tests_modules import load

viewers = load("viewers")

USERS = [f"u{n}" for n in range(1_000)]


def _population(users: list[str] | None = None, seed: int = 0, **mix: Any) -> Any:
    return viewers.Population(USERS if users is None else users,
                              viewers.Mix(**mix) if mix else None, seed=seed)


def _take(n: int, population: Any | None = None, seed: int = 0, **mix: Any) -> list[Any]:
    stream = viewers.TrafficGenerator(population or _population(**mix), random.Random(seed))
    return [next(stream) for _ in range(n)]


def test_requests_ask_for_a_world_user_or_a_cold_id_with_k_in_range() -> None:
    for request in _take(5_000):
        assert re.fullmatch(r"u\d+", request.user_id)
        assert 1 <= request.k <= 100
        assert request.path == f"/v1/recommendations/{request.user_id}?k={request.k}"
        assert (request.user_id in USERS) == (request.segment != viewers.COLD)


def test_segments_get_their_share_of_requests() -> None:
    segments = Counter(r.segment for r in _take(20_000, hot_share=0.6, cold_share=0.05))
    assert 0.58 < segments[viewers.HOT] / 20_000 < 0.62
    assert 0.04 < segments[viewers.COLD] / 20_000 < 0.06
    assert 0.33 < segments[viewers.TAIL] / 20_000 < 0.37


def test_a_few_hot_users_send_most_requests() -> None:
    users = Counter(r.user_id for r in _take(20_000, hot_users=10, hot_share=0.8))
    top_ten = sum(n for _, n in users.most_common(10))
    assert top_ten / 20_000 > 0.75
    assert len(users) > 500  # and a long tail asks once or twice


def test_hot_users_follow_zipf_the_first_asks_about_twice_as_often_as_the_second() -> None:
    population = _population(hot_users=5, hot_share=1.0, cold_share=0.0)
    users = Counter(r.user_id for r in _take(30_000, population))
    first, second, fifth = (users[population.hot[rank]] for rank in (0, 1, 4))
    assert 1.8 < first / second < 2.2
    assert 4.3 < first / fifth < 5.7


def test_the_hot_users_are_the_same_for_every_client_of_a_run_but_not_the_first_ids() -> None:
    population = _population(hot_users=20)
    assert population.hot == _population(hot_users=20).hot
    assert set(population.hot) != {f"u{n}" for n in range(20)}  # shuffled, seeded
    assert not set(population.hot) & set(population.tail)
    assert {r.user_id for r in _take(2_000, population, seed=1) if r.segment == viewers.HOT} \
        <= set(population.hot)


def test_tail_requests_never_ask_about_a_hot_user() -> None:
    population = viewers.Population(USERS, viewers.MIXES["skewed"])
    tail = {r.user_id for r in _take(5_000, population) if r.segment == viewers.TAIL}
    assert tail and not tail & set(population.hot)


def test_the_default_mix_ranks_the_whole_population_with_a_tenth_unknown() -> None:
    population = _population()
    assert population.mix == viewers.MIXES["population"] and population.tail == ()
    assert set(population.hot) == set(USERS)
    requests = _take(60_000, population)
    segments = Counter(r.segment for r in requests)
    assert 0.09 < segments[viewers.COLD] / 60_000 < 0.11 and viewers.TAIL not in segments
    users = Counter(r.user_id for r in requests if r.segment == viewers.HOT)
    assert len(users) > 0.9 * len(USERS)  # nearly everyone asks at least once
    first, second = users[population.hot[0]], users[population.hot[1]]
    assert 1.4 < first / second < 2.1  # 2 ** 0.8 = 1.74
    expected_top = 1 / sum(rank ** -0.8 for rank in range(1, len(USERS) + 1))  # 6.5 %
    assert abs(first / sum(users.values()) - expected_top) < 0.01


def test_cold_users_are_ids_no_world_has_and_rarely_repeat() -> None:
    cold = [r.user_id for r in _take(20_000, hot_share=0.3, cold_share=0.5)
            if r.segment == viewers.COLD]
    assert all(int(u[1:]) >= viewers.COLD_USER_BASE for u in cold)
    assert len(set(cold)) > 0.98 * len(cold)


def test_a_cold_id_that_happens_to_be_in_the_world_is_drawn_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(viewers, "COLD_USER_SPAN", 3)
    base = viewers.COLD_USER_BASE
    population = viewers.Population(["u1", f"u{base}", f"u{base + 1}"],
                                    viewers.Mix(hot_users=1, hot_share=0.0, cold_share=1.0))
    assert {r.user_id for r in _take(20, population)} == {f"u{base + 2}"}


def test_k_is_mostly_10_and_sometimes_another_size() -> None:
    ks = Counter(r.k for r in _take(20_000))
    assert 0.83 < ks[10] / 20_000 < 0.87
    assert set(ks) == set(viewers.K_WEIGHTS)


def test_the_same_seed_gives_the_same_stream() -> None:
    assert _take(500, seed=3) == _take(500, seed=3)
    assert _take(500, seed=3) != _take(500, seed=4)


def test_a_world_smaller_than_the_hot_head_keeps_a_tail() -> None:
    population = _population(["u1", "u2", "u3"], hot_users=60)
    assert len(population.hot) == 2 and len(population.tail) == 1


@pytest.mark.parametrize("mix", [
    {"hot_share": 0.9, "cold_share": 0.2},
    {"hot_share": -0.1},
    {"hot_users": 0},
    {"k_weights": {101: 1.0}},
    {"k_weights": {10: 0.0}},
])
def test_an_impossible_mix_is_refused(mix: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        viewers.Mix(**mix)


def test_load_users_reads_the_viewing_worlds_users(tmp_path: Path) -> None:
    pd.DataFrame({"user_id": ["u0", "u1"], "profile": ["adult", "kids"],
                  "max_maturity": [4, 1]}).to_parquet(tmp_path / "users.parquet")
    assert viewers.load_users(tmp_path) == ["u0", "u1"]


def test_load_users_says_how_to_make_a_missing_world(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make models"):
        viewers.load_users(tmp_path)


# --- the answers ---------------------------------------------------------------------------

REQUEST = viewers.RecsRequest(viewers.TAIL, "u42", 3)


def _answer(**changes: Any) -> dict[str, Any]:
    answer = {"user_id": "u42", "items": [{"content_id": "t1"}], "variant": "control",
              "model_version": 3, "served_from": "cache", "processing_time_ms": 1.5}
    return {k: v for k, v in {**answer, **changes}.items() if v is not ...}


def test_counts_well_formed_answers_by_served_from() -> None:
    tally = viewers.Tally()
    for source in ("cache", "cache", "computed", "fallback"):
        assert tally.record(_answer(served_from=source), REQUEST) is None
    assert tally.served_from == {"cache": 2, "computed": 1, "fallback": 1}
    assert tally.problems() == []
    assert tally.line() == ("served_from: cache 2 (50.0%), computed 1 (25.0%), "
                            "fallback 1 (25.0%); 0 malformed")


@pytest.mark.parametrize(("body", "problem"), [
    (None, "not a JSON object"),
    (_answer(served_from=...), "missing served_from"),
    (_answer(served_from="disk"), "served_from 'disk' not in cache, computed, fallback"),
    (_answer(user_id="u7"), "user_id is not the one asked about"),
    (_answer(items=[{}, {}, {}, {}]), "items is not a list of at most k"),
])
def test_a_malformed_answer_is_a_problem_that_fails_the_endpoint(body: Any, problem: str) -> None:
    tally = viewers.Tally()
    assert tally.record(body, REQUEST) == problem
    assert tally.served_from.total() == 0
    assert tally.problems() == [f"1 malformed answer(s), e.g. {problem}"]


def test_a_workers_tally_adds_up_at_the_master() -> None:
    master, worker = viewers.Tally(), viewers.Tally()
    master.record(_answer(), REQUEST)
    worker.record(_answer(served_from="computed"), REQUEST)
    worker.record(None, REQUEST)
    master.merge(worker.as_dict())
    assert master.served_from == {"cache": 1, "computed": 1}
    assert master.malformed.total() == 1


def test_the_tally_is_written_as_csv_the_report_reads(tmp_path: Path) -> None:
    tally = viewers.Tally()
    tally.record(_answer(), REQUEST)
    tally.record(None, REQUEST)
    tally.write_csv(tmp_path / "recs_served_from.csv")
    assert viewers.read_tally_csv(tmp_path / "recs_served_from.csv") == {
        "cache": 1, "computed": 0, "fallback": 0, "malformed": 1}
