"""docs/reliability.md shows the committed chaos reports: its outcome tables are the generated
ones, so a number on the page is a number in benchmarks/results/chaos/."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.tables import (
    availability_table,
    broker_crash_table,
    broker_session_table,
    failed_runs_table,
    failover_repro_table,
    merged_run_table,
    node_breakers_table,
    onset_table,
    poison_table,
    postgres_failover_table,
    redis_master_crash_runs_table,
    redis_master_crash_table,
    scale_up_table,
    service_crash_table,
    slow_dependency_table,
    soak_brokers_table,
    soak_misses_table,
    soak_start_table,
    trending_master_table,
)
from tests.harness import REPO_ROOT

DOC = REPO_ROOT / "docs" / "reliability.md"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "chaos"


@pytest.mark.parametrize("table", [broker_crash_table, redis_master_crash_table, poison_table,
                                   service_crash_table, slow_dependency_table,
                                   availability_table, postgres_failover_table])
def test_each_fault_table_is_generated_from_its_committed_report(
        table: Callable[[Path], str]) -> None:
    assert table(RESULTS) in DOC.read_text()


def test_the_broker_session_runs_are_shown_side_by_side() -> None:
    assert broker_session_table(RESULTS / "broker_session") in DOC.read_text()


def test_the_redis_failover_runs_before_and_after_the_fix_are_shown() -> None:
    assert redis_master_crash_runs_table(RESULTS / "redis_master_crash_runs") in DOC.read_text()
    assert redis_master_crash_runs_table(RESULTS / "redis_master_crash_runs" / "before_fix") \
        in DOC.read_text()
    assert failover_repro_table(RESULTS / "redis_failover_repro" / "runs.json") \
        in DOC.read_text()


def test_fault_2_before_and_after_the_breakers_per_master_is_shown_side_by_side() -> None:
    assert node_breakers_table(RESULTS / "node_breakers") in DOC.read_text()


def test_fault_4s_onset_before_and_after_is_shown_side_by_side() -> None:
    assert onset_table(RESULTS / "onset") in DOC.read_text()


def test_fault_2_with_the_trending_lists_master_killed_is_shown_before_and_after() -> None:
    assert trending_master_table(RESULTS / "trend_master") in DOC.read_text()


def test_the_soaks_misses_are_shown_by_cause_and_the_start_before_and_after() -> None:
    soak = RESULTS / "soak_repeats" / "availability_soak_2026-12-07T0431.json"
    assert soak_misses_table(soak) in DOC.read_text()
    assert soak_start_table(RESULTS / "soak_start") in DOC.read_text()


def test_session_15s_run_of_every_fault_on_the_merged_code_is_shown() -> None:
    assert merged_run_table(RESULTS / "merged_2026-12-07") in DOC.read_text()
    assert merged_run_table(RESULTS / "merged_2026-12-07" / "rerun") in DOC.read_text()
    assert merged_run_table(RESULTS / "acl_2026-12-07") in DOC.read_text()
    assert soak_misses_table(RESULTS / "merged_2026-12-07" / "availability_soak.json") \
        in DOC.read_text()


def test_session_17s_fresh_clone_run_of_every_fault_is_shown() -> None:
    assert merged_run_table(RESULTS / "fresh_clone_2026-12-07T1530") in DOC.read_text()


def test_session_16s_load_step_and_soak_beside_the_earlier_soaks_are_shown() -> None:
    session = RESULTS / "session16_2026-12-07"
    assert merged_run_table(session / "failed_1050") in DOC.read_text()
    assert merged_run_table(session) in DOC.read_text()
    assert soak_misses_table(session / "availability_soak.json") in DOC.read_text()
    assert soak_brokers_table([RESULTS / "merged_2026-12-07" / "availability_soak.json",
                               RESULTS / "forked_2026-12-07" / "availability_soak.json",
                               session / "availability_soak.json"]) in DOC.read_text()


def test_the_runs_that_broke_a_promise_are_shown_too() -> None:
    assert failed_runs_table(RESULTS / "failed") in DOC.read_text()
    assert scale_up_table(RESULTS / "failed") in DOC.read_text()


def test_the_committed_reports_kept_the_promises_they_are_shown_for() -> None:
    broker = json.loads((RESULTS / "broker_crash.json").read_text())["results"]
    assert broker["lost"] == 0 and set(broker["statuses"]) <= {"202", "503"}
    redis = json.loads((RESULTS / "redis_master_crash.json").read_text())["results"]
    assert set(redis["fraud"]["statuses"]) == set(redis["recommender"]["statuses"]) == {"200"}
    poison = json.loads((RESULTS / "poison_events.json").read_text())["results"]
    assert poison["dead_letters_found"] == poison["dead_letters_expected"]
    crash = json.loads((RESULTS / "service_crash.json").read_text())["results"]
    assert crash["fraud"]["errors_after_retry"] == crash["recommender"]["errors_after_retry"] == 0
    postgres = json.loads((RESULTS / "postgres_failover.json").read_text())["results"]
    assert postgres["lost"] == postgres["rows_beyond_one_per_transaction"] == 0
    assert postgres["records_process_alive"] and postgres["kill_to_records_writing_s"] is not None
    slow = json.loads((RESULTS / "slow_dependency.json").read_text())["results"]
    for phase in ("redis_slow", "model_server_stalled"):
        assert slow[phase]["fraud"]["p99_after_first_1s_ms"] <= 50
        assert slow[phase]["recommender"]["p99_after_first_1s_ms"] <= 100
