"""The load tests' SLO gate (load-tests/slo.py), fed fakes of Locust's stats and events."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.load_tests_modules import load

slo = load("slo")

SCORE = "POST /v1/score"
GATE = slo.Slo({SCORE: 50.0})


def _stats(requests: int = 10_000, failures: int = 0, p99: float = 9.0,
           name: str = SCORE) -> Any:
    return slo.EndpointStats(name, requests, failures, p50_ms=3.0, p95_ms=6.0, p99_ms=p99,
                             max_ms=41.25, rps=501.3)


def _verdict(stats: Any, gate: Any = GATE) -> Any:
    (verdict,) = slo.evaluate(gate, [stats])
    return verdict


# --- the rules -----------------------------------------------------------------------------


def test_passes_when_p99_and_failures_are_within_budget() -> None:
    assert _verdict(_stats(p99=9.0, failures=10)).passed


def test_a_p99_equal_to_the_budget_passes() -> None:
    assert _verdict(_stats(p99=50.0)).passed


def test_fails_when_p99_is_over_budget() -> None:
    verdict = _verdict(_stats(p99=51.0))
    assert not verdict.passed
    assert verdict.problems == ("p99 51 ms > 50 ms",)


def test_fails_when_more_than_a_tenth_of_a_percent_of_requests_fail() -> None:
    assert _verdict(_stats(requests=10_000, failures=10)).passed
    verdict = _verdict(_stats(requests=10_000, failures=11))
    assert not verdict.passed
    assert "failures 0.110% > 0.100%" in verdict.problems


def test_fails_an_endpoint_with_a_budget_that_saw_no_requests() -> None:
    (verdict,) = slo.evaluate(GATE, [])
    assert not verdict.passed
    assert verdict.stats.name == SCORE
    assert verdict.problems == ("no requests",)


def test_judges_an_endpoint_without_a_budget_on_failures_alone() -> None:
    other = _stats(name="GET /healthz", p99=900.0)
    verdicts = slo.evaluate(GATE, [_stats(), other])
    assert [v.passed for v in verdicts] == [True, True]
    assert verdicts[1].p99_budget_ms is None
    assert not slo.evaluate(GATE, [_stats(), _stats(name="GET /healthz", failures=500)])[1].passed


def test_budgets_are_per_endpoint() -> None:
    gate = slo.Slo({SCORE: 50.0, "GET /v1/recommendations": 100.0})
    verdicts = slo.evaluate(gate, [_stats(p99=60.0, name="GET /v1/recommendations"),
                                   _stats(p99=60.0)])
    assert [v.passed for v in verdicts] == [True, False]


def test_an_override_replaces_every_budget_and_the_failure_ceiling() -> None:
    gate = slo.Slo({SCORE: 50.0, "GET /v1/recommendations": 100.0})
    overridden = gate.overridden(p99_ms=1.0, max_failure_ratio=0.5)
    assert overridden.p99_budgets_ms == {SCORE: 1.0, "GET /v1/recommendations": 1.0}
    assert overridden.max_failure_ratio == 0.5
    assert gate.overridden() == gate


def test_the_verdict_line_shows_the_numbers_and_the_outcome() -> None:
    line = _verdict(_stats(requests=15_040, failures=3)).line()
    assert line == ("SLO PASS POST /v1/score: p50 3 ms, p95 6 ms, p99 9 ms (budget 50 ms), "
                    "max 41.2 ms, 501.3 req/s, 3 of 15,040 failed (0.020%, max 0.100%)")
    failed = _verdict(_stats(p99=61.0)).line()
    assert failed.startswith("SLO FAIL POST /v1/score:")
    assert failed.endswith("-- p99 61 ms > 50 ms")


def test_writes_the_judged_numbers_as_csv(tmp_path: Path) -> None:
    path = tmp_path / "load" / "fraud_slo.csv"
    slo.write_csv(slo.evaluate(GATE, [_stats(p99=61.0)]), path)
    (row,) = csv.DictReader(path.open())
    assert row["name"] == SCORE and row["p99_ms"] == "61.0" and row["p99_budget_ms"] == "50.0"
    assert row["verdict"] == "FAIL" and row["problems"] == "p99 61 ms > 50 ms"


def test_reads_back_the_verdicts_it_wrote(tmp_path: Path) -> None:
    verdicts = slo.evaluate(slo.Slo({SCORE: 50.0}, 0.01),
                            [_stats(p99=61.0, failures=500), _stats(name="GET /healthz")])
    slo.write_csv(verdicts, tmp_path / "gate.csv")
    assert slo.read_csv(tmp_path / "gate.csv") == verdicts


# --- plain latency lists (the open-loop driver) --------------------------------------------


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]  # 1 ... 100 ms
    assert slo.percentile(values, 0.50) == 50.0
    assert slo.percentile(values, 0.99) == 99.0
    assert slo.percentile(values, 0.29) == 29.0  # 0.29 * 100 is 28.999... in floating point
    assert slo.percentile(values, 1.0) == 100.0
    assert slo.percentile([7.0], 0.99) == 7.0
    assert slo.percentile([], 0.99) == 0.0


def test_latency_lists_become_the_same_numbers_locust_gives_the_gate() -> None:
    latencies = [*[2.0] * 980, *[40.0] * 15, *[90.0] * 5]  # 1,000 requests
    stats = slo.latency_stats(SCORE, latencies, failures=1, seconds=2.0)
    assert stats == slo.EndpointStats(SCORE, 1_000, 1, p50_ms=2.0, p95_ms=2.0, p99_ms=40.0,
                                      max_ms=90.0, rps=500.0)


def test_a_latency_list_over_budget_fails_like_locusts_numbers_do() -> None:
    slow = slo.latency_stats(SCORE, [10.0] * 98 + [60.0] * 2, failures=0, seconds=1.0)
    (verdict,) = slo.evaluate(GATE, [slow])
    assert verdict.problems == ("p99 60 ms > 50 ms",)


def test_percentiles_of_a_latency_list_are_kept_to_a_tenth_of_a_millisecond() -> None:
    stats = slo.latency_stats(SCORE, [1.23456], failures=0, seconds=1.0)
    assert (stats.p50_ms, stats.p99_ms, stats.max_ms) == (1.2, 1.2, 1.23456)


def test_an_empty_latency_list_is_an_endpoint_without_requests() -> None:
    stats = slo.latency_stats(SCORE, [], failures=0, seconds=0.0)
    (verdict,) = slo.evaluate(GATE, [stats])
    assert verdict.problems == ("no requests",)


def test_problems_the_numbers_do_not_show_fail_their_endpoint() -> None:
    (verdict,) = slo.evaluate(GATE, [_stats()], {SCORE: ["3 malformed answer(s)"]})
    assert not verdict.passed
    assert verdict.line().endswith("-- 3 malformed answer(s)")
    assert slo.evaluate(GATE, [_stats()], {SCORE: []})[0].passed


def test_judge_logs_every_verdict_and_returns_the_exit_code(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert slo.judge(slo.evaluate(GATE, [_stats()]), csv_path=tmp_path / "gate.csv") == 0
        assert slo.judge(slo.evaluate(GATE, [_stats(p99=61.0)])) == 1
        assert slo.judge(slo.evaluate(GATE, [_stats()]), ["the driver fell over"]) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert "SLO gate PASSED: 1 endpoint(s) within budget" in messages
    assert "SLO gate FAILED: POST /v1/score" in messages
    assert "SLO FAIL the driver fell over" in messages
    assert (tmp_path / "gate.csv").exists()


# --- Locust at the edge --------------------------------------------------------------------


@dataclass
class FakeEntry:
    """The part of locust.stats.StatsEntry the gate reads."""

    name: str
    num_requests: int
    num_failures: int
    percentiles: dict[float, float]
    max_response_time: float = 41.25
    total_rps: float = 501.3

    def get_response_time_percentile(self, percent: float) -> float:
        return self.percentiles[percent]


@dataclass
class FakeHook:
    listeners: list[Callable[..., None]] = field(default_factory=list)

    def add_listener(self, listener: Callable[..., None]) -> Callable[..., None]:
        self.listeners.append(listener)
        return listener

    def fire(self, **kwargs: Any) -> None:
        for listener in self.listeners:
            listener(**kwargs)


@dataclass
class FakeEvents:
    init_command_line_parser: FakeHook = field(default_factory=FakeHook)
    quitting: FakeHook = field(default_factory=FakeHook)


@dataclass
class FakeParser:
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_argument(self, name: str, **kwargs: Any) -> None:
        self.options[name] = kwargs


def _entry(p99: float, requests: int = 10_000, failures: int = 0) -> FakeEntry:
    return FakeEntry(SCORE, requests, failures, {0.5: 3.0, 0.95: 6.0, 0.99: p99})


def _environment(*entries: FakeEntry, exceptions: int = 0, **options: Any) -> SimpleNamespace:
    return SimpleNamespace(
        stats=SimpleNamespace(entries={(e.name, "POST"): e for e in entries}),
        runner=SimpleNamespace(exceptions={n: object() for n in range(exceptions)}),
        parsed_options=SimpleNamespace(**{"slo_p99_ms": None, "slo_max_failure_ratio": None,
                                          "csv_prefix": None, "worker": False, **options}),
        process_exit_code=None,
    )


def _quit(environment: SimpleNamespace, gate: Any = GATE) -> int | None:
    events = FakeEvents()
    slo.install(events, gate)
    events.quitting.fire(environment=environment)
    return environment.process_exit_code  # type: ignore[no-any-return]


def test_reads_locust_stats_entries_and_skips_empty_ones() -> None:
    (stats,) = slo.endpoint_stats([_entry(9.0), FakeEntry("unused", 0, 0, {})])
    assert stats == slo.EndpointStats(SCORE, 10_000, 0, 3.0, 6.0, 9.0, 41.25, 501.3)


def test_installing_adds_the_override_options_with_their_environment_variables() -> None:
    events, parser = FakeEvents(), FakeParser()
    slo.install(events, GATE)
    events.init_command_line_parser.fire(parser=parser)
    assert parser.options["--slo-p99-ms"]["env_var"] == "LOCUST_SLO_P99_MS"
    assert parser.options["--slo-max-failure-ratio"]["env_var"] == "LOCUST_SLO_MAX_FAILURE_RATIO"


def test_a_run_within_budget_exits_zero_even_with_a_few_failures() -> None:
    assert _quit(_environment(_entry(9.0, failures=3))) == 0


def test_a_run_over_budget_exits_one_and_logs_the_verdict(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert _quit(_environment(_entry(61.0))) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0].startswith("SLO FAIL POST /v1/score: p50 3 ms")
    assert errors[-1] == "SLO gate FAILED: POST /v1/score"


def test_the_command_line_override_tightens_the_budget() -> None:
    assert _quit(_environment(_entry(9.0), slo_p99_ms="5")) == 1
    assert _quit(_environment(_entry(9.0), slo_p99_ms="")) == 0  # the web UI's empty field


def test_the_command_line_override_loosens_the_failure_ceiling() -> None:
    flaky = _entry(9.0, failures=200)
    assert _quit(_environment(flaky)) == 1
    assert _quit(_environment(flaky, slo_max_failure_ratio="0.05")) == 0


def test_a_locustfile_that_raised_fails_the_run() -> None:
    assert _quit(_environment(_entry(9.0), exceptions=1)) == 1


def test_a_worker_leaves_the_verdict_to_the_master() -> None:
    assert _quit(_environment(_entry(61.0), worker=True)) is None


def test_with_csv_output_the_verdicts_are_written_beside_locusts_files(tmp_path: Path) -> None:
    _quit(_environment(_entry(9.0), csv_prefix=str(tmp_path / "fraud")))
    (row,) = csv.DictReader((tmp_path / "fraud_slo.csv").open())
    assert row["verdict"] == "PASS"


def test_problems_installed_with_the_gate_fail_the_run() -> None:
    environment = _environment(_entry(9.0))
    events = FakeEvents()
    slo.install(events, GATE, problems=lambda: {SCORE: ["1 malformed answer(s)"]})
    events.quitting.fire(environment=environment)
    assert environment.process_exit_code == 1
