"""What the soak says about each miss: the probes' records (services/devstack/probes.py) read
right, and each miss given the first cause its record shows (tests/chaos/misses.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from services.devstack.probes import ForkTracker, gc_pauses, gc_pauses_in
from tests.chaos.load import Answer
from tests.chaos.misses import answer_flags, by_cause, describe

START = datetime(2026, 12, 7, 4, 40, tzinfo=UTC).timestamp()
PAUSE = ("[2026-12-07T04:40:{s}+0000] GC({n}) Pause Young (Normal) (G1 Evacuation Pause) "
         "45M->12M(384M) {ms}ms")
IDLE = {"aof_rewrite_in_progress": 0, "rdb_bgsave_in_progress": 0, "latest_fork_usec": 900}


def info(forks: int, *, rewriting: bool = False, saving: bool = False) -> dict[str, Any]:
    return {**IDLE, "total_forks": forks, "aof_rewrite_in_progress": int(rewriting),
            "rdb_bgsave_in_progress": int(saving)}


def test_a_gc_log_gives_each_pause_on_the_runs_clock() -> None:
    log = "\n".join([
        "[2026-12-07T04:40:00.084+0000] Using G1",
        PAUSE.format(s="12.345", n=3, ms="45.000"),
        "[2026-12-07T04:40:13.000+0000] GC(4) Concurrent Mark Cycle 25.123ms",
        "[2026-12-07T04:40:14.000+0000] GC(4) Pause Remark 20M->20M(384M) 1.500ms"])
    assert gc_pauses(log, START) == [
        {"from_s": 12.3, "to_s": 12.345, "ms": 45.0,
         "what": "Pause Young (Normal) (G1 Evacuation Pause)"},
        {"from_s": 13.999, "to_s": 14.0, "ms": 1.5, "what": "Pause Remark"}]


def test_a_restarted_brokers_logs_are_read_together_and_the_run_alone_kept(
        tmp_path: Path) -> None:
    first, second = tmp_path / "kafka-1-gc-10.log", tmp_path / "kafka-1-gc-20.log"
    first.write_text(PAUSE.format(s="05.000", n=1, ms="20.0") + "\n"
                     + PAUSE.format(s="59.000", n=2, ms="20.0"))  # after the run: left out
    second.write_text(PAUSE.format(s="02.000", n=1, ms="30.0"))
    pauses = gc_pauses_in({"kafka-1": [first, second]}, START, until_s=30.0)
    assert [p["to_s"] for p in pauses["kafka-1"]] == [2.0, 5.0]


def test_a_rewrite_seen_at_several_polls_is_one_window() -> None:
    tracker = ForkTracker()
    for at, now in [(0.1, info(3)), (0.2, info(4, rewriting=True)), (0.3, info(4, rewriting=True)),
                    (0.4, info(4))]:
        tracker.observe(at, now)
    assert tracker.forks == [{"from_s": 0.1, "to_s": 0.3, "kind": "aof_rewrite", "fork_ms": 0.9}]


def test_a_fork_over_between_two_polls_shows_by_the_counter() -> None:
    tracker = ForkTracker()
    tracker.observe(1.0, info(3))
    tracker.observe(1.1, info(4))
    assert tracker.forks == [{"from_s": 1.0, "to_s": 1.1, "kind": "short", "fork_ms": 0.9}]


def test_a_fork_running_before_the_run_is_not_counted_but_a_restarted_nodes_is() -> None:
    tracker = ForkTracker()
    tracker.observe(0.1, info(7, saving=True))  # began before the first poll
    tracker.observe(0.2, info(7))
    tracker.observe(0.3, None)  # killed
    tracker.observe(0.4, info(1, saving=True))  # restarted: its counter starts afresh
    assert tracker.forks == [{"from_s": 0.3, "to_s": 0.4, "kind": "rdb_bgsave", "fork_ms": 0.9}]


def miss(sent_s: float, latency_ms: float, service: str = "fraud",
         **flags: Any) -> Answer:
    return Answer(sent_s, 200, latency_ms, {"service": service, **flags})


def cpu(t_s: float, busy: float, others: float = 0.01) -> dict[str, Any]:
    return {"t_s": t_s, "busy": busy, "steal": 0.0,
            "groups": {"kafka-1": 0.5, "fraud": 0.2, "redis-1": 0.1, "stream": 0.05,
                       "others": others}}


def described(a: Answer, fault: str | None = None,
              forks: dict[str, list[dict[str, Any]]] | None = None,
              gc: dict[str, list[dict[str, Any]]] | None = None,
              busy: float = 1.0, others: float = 0.01) -> dict[str, Any]:
    return describe(a, 50.0, fault, forks or {}, gc or {},
                    [cpu(99.0, 0.5), cpu(100.1, busy, others), cpu(101.1, 0.5)], cores=2)


def test_a_miss_in_a_faults_window_is_the_faults_whatever_else_went_on() -> None:
    fork = {"redis-2": [{"from_s": 99.0, "to_s": 101.0, "kind": "aof_rewrite"}]}
    assert described(miss(100.0, 80.0), "kill kafka-1 at 95.0 s", forks=fork)["cause"] == "fault"


def test_the_loads_first_seconds_are_the_start_of_load() -> None:
    assert described(miss(0.2, 120.0))["cause"] == "start of load"


def test_a_miss_in_flight_while_a_node_forked_is_the_forks() -> None:
    forks = {"redis-2": [{"from_s": 100.05, "to_s": 103.0, "kind": "aof_rewrite"}],
             "redis-5": [{"from_s": 90.0, "to_s": 91.0, "kind": "rdb_bgsave"}]}
    record = described(miss(100.0, 80.0), forks=forks)
    assert record["cause"] == "redis fork"
    assert record["redis_forks"] == [{"node": "redis-2", "kind": "aof_rewrite",
                                      "from_s": 100.05, "to_s": 103.0}]


def test_only_a_gc_pause_of_ten_ms_or_more_counts() -> None:
    short = {"kafka-2": [{"from_s": 100.01, "to_s": 100.02, "ms": 9.0}]}
    long = {"kafka-2": [{"from_s": 100.01, "to_s": 100.05, "ms": 40.0}]}
    assert described(miss(100.0, 120.0, "ingest"), gc=short)["cause"] == "unexplained"
    assert described(miss(100.0, 120.0, "ingest"), gc=long)["cause"] == "kafka gc pause"


def test_a_gc_pause_is_no_cause_for_a_service_that_publishes_off_its_path() -> None:
    long = {"kafka-2": [{"from_s": 100.01, "to_s": 100.05, "ms": 40.0}]}
    record = described(miss(100.0, 80.0, "fraud"), gc=long)
    assert record["kafka_gc_pauses"] == [{"broker": "kafka-2", "ms": 40.0, "to_s": 100.05}]
    assert record["cause"] == "unexplained"


def test_a_second_with_the_cores_busy_is_saturation_and_names_who_took_them() -> None:
    record = described(miss(100.0, 80.0), busy=1.96)
    assert record["cause"] == "cores saturated"
    assert record["cpu"] == {"t_s": 100.1, "busy": 1.96, "steal": 0.0, "others": 0.01,
                             "top": {"kafka-1": 0.5, "fraud": 0.2, "redis-1": 0.1,
                                     "stream": 0.05}}
    assert described(miss(100.0, 80.0), busy=1.8)["cause"] == "unexplained"


def test_half_a_core_of_work_outside_the_run_is_named_as_such() -> None:
    assert described(miss(100.0, 80.0), busy=1.8, others=0.6)["cause"] == \
        "other work on the machine"
    assert described(miss(100.0, 80.0), busy=1.8, others=0.3)["cause"] == "unexplained"


def test_where_the_time_went_follows_the_services_own_processing_time() -> None:
    assert described(miss(100.0, 80.0, server_ms=70.0))["where"] == "in the handler"
    assert described(miss(100.0, 80.0, server_ms=12.0))["where"] == "outside the handler"
    assert described(miss(100.0, 80.0, "ingest"))["where"] == "unknown"


def test_misses_are_counted_by_cause_and_service() -> None:
    records = [described(miss(0.1, 90.0)), described(miss(100.0, 90.0, "recommender"),
                                                     "kill redis-1 at 99.0 s")]
    table = by_cause(records, ("ingest", "fraud", "recommender"))
    assert table["start of load"] == {"ingest": 0, "fraud": 1, "recommender": 0}
    assert table["fault"] == {"ingest": 0, "fraud": 0, "recommender": 1}
    assert sum(sum(row.values()) for row in table.values()) == 2


def test_an_answers_own_flags_are_read_per_service() -> None:
    def response(body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(200, json=body)

    assert answer_flags("fraud", response({"degraded": True, "processing_time_ms": 61.2})) == {
        "degraded": True, "server_ms": 61.2}
    assert answer_flags("recommender", response(
        {"fallbacks": ["model"], "served_from": "computed", "processing_time_ms": 7.0})) == {
        "fallback": True, "fallbacks": ["model"], "served_from": "computed", "server_ms": 7.0}
    assert answer_flags("ingest", response({"spooled": ["e1"]})) == {"spooled": True}
    assert answer_flags("fraud", httpx.Response(503, text="not json")) == {}
