"""The load sweep (load-tests/sweep.py): its stop rule, its knee, its record; stepped against a
fake driver, and once for real against the floor server in its own process."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import re
import socket
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services.common.loopback import free_port
from tests.load_tests_modules import load

sweep = load("sweep")
openloop = load("openloop")
slo = load("slo")
viewers = load("viewers")

RECS = "GET /v1/recommendations/{user_id}"
PNG = b"\x89PNG\r\n\x1a\n"


def _step(rate: float, p99: float, within: bool | None = None, target: str = "service",
          failures: int = 0) -> Any:
    inside = p99 <= 100.0 and failures == 0 if within is None else within
    rate, p99 = float(rate), float(p99)
    return sweep.Step("recs", target, rate, rate, int(rate * 10), failures, p99 / 3, p99 / 2,
                      p99, p99 * 1.5, 1.0, True, inside, "" if inside else "over", 10.0)


def _steps(*p99s: float) -> list[Any]:
    return [_step(100.0 * (i + 1), p99) for i, p99 in enumerate(p99s)]


# --- the stop rule -------------------------------------------------------------------------


def test_a_target_goes_on_while_its_steps_are_within_budget() -> None:
    assert sweep.stop_reason([], 100.0) is None
    assert sweep.stop_reason(_steps(10, 40, 99), 100.0) is None


def test_one_step_over_budget_but_under_twice_it_is_given_another_chance() -> None:
    assert sweep.stop_reason(_steps(10, 150), 100.0) is None
    assert sweep.stop_reason(_steps(10, 150, 60), 100.0) is None
    assert sweep.stop_reason(_steps(150, 60, 150), 100.0) is None  # not in a row


def test_two_steps_over_budget_in_a_row_stop_a_target() -> None:
    reason = sweep.stop_reason(_steps(10, 150, 180), 100.0)
    assert reason is not None and "200 and 300 req/s in a row" in reason


def test_one_step_over_twice_the_budget_stops_a_target_at_once() -> None:
    reason = sweep.stop_reason(_steps(10, 201), 100.0)
    assert reason is not None and "over 2x the 100 ms budget" in reason
    assert sweep.stop_reason(_steps(10, 200), 100.0) is None  # at twice: one more chance


def test_failures_over_the_gate_count_as_over_budget_whatever_the_latency() -> None:
    refused = [_step(100, 1.0, failures=500), _step(200, 1.0, failures=900)]
    assert sweep.stop_reason(refused, 100.0) is not None


# --- the knee ------------------------------------------------------------------------------


def test_the_knee_is_the_highest_rate_within_budget() -> None:
    assert sweep.knee(_steps(10, 40, 90, 150, 400)) == 300.0


def test_a_noisy_step_over_budget_below_the_knee_does_not_lower_it() -> None:
    assert sweep.knee(_steps(10, 150, 60, 150, 180)) == 300.0


def test_no_step_within_budget_has_no_knee() -> None:
    assert sweep.knee(_steps(150, 400)) is None
    assert sweep.knee([]) is None


# --- a run judged as a step ----------------------------------------------------------------


def _run(latencies_ms: Sequence[float], errors: Sequence[str] = (), lag_ms: float = 0.5) -> Any:
    errors = [*errors, *[""] * (len(latencies_ms) - len(errors))]
    results = [openloop.Result(RECS, i / 100, ms, lag_ms, 0 if e else 200, e)
               for i, (ms, e) in enumerate(zip(latencies_ms, errors, strict=True))]
    return openloop.Run(results, len(results) / 100, 3)


def _measure(run: Any, problems: Sequence[str] = ()) -> Any:
    return sweep.measure("recs", sweep.SERVICE, 100.0, run, slo.Slo({RECS: 100.0}), RECS,
                         openloop.POISSON, problems)


def test_a_step_has_the_gates_numbers_and_its_verdict() -> None:
    step = _measure(_run([5.0] * 990 + [80.0] * 10))
    assert (step.requests, step.failures, step.p50_ms, step.p99_ms) == (1_000, 0, 5.0, 5.0)
    assert (step.achieved_rps, step.max_ms, step.within_budget, step.problems) == (
        100.0, 80.0, True, "")
    over = _measure(_run([5.0] * 980 + [150.0] * 20))
    assert (over.p99_ms, over.within_budget, over.problems) == (150.0, False,
                                                                 "p99 150 ms > 100 ms")


def test_failed_requests_break_the_gate_and_do_not_count_as_achieved() -> None:
    step = _measure(_run([5.0] * 1_000, errors=["HTTP 503"] * 2))
    assert (step.failures, step.achieved_rps, step.within_budget) == (2, 99.8, False)


def test_a_malformed_answer_breaks_the_gate() -> None:
    step = _measure(_run([5.0] * 100), ["1 malformed answer(s), e.g. items is not a list"])
    assert not step.within_budget
    assert "malformed" in step.problems


def test_a_step_the_driver_sent_late_says_it_measured_the_generator() -> None:
    step = _measure(_run([30.0] * 100, lag_ms=25.0))
    assert (step.driver_kept_up, step.lag_p99_ms) == (False, 25.0)
    assert "driver fell behind" in sweep.progress_line(step)
    assert _measure(_run([30.0] * 100)).driver_kept_up


# --- stepping ------------------------------------------------------------------------------


def _settings(rates: Sequence[float]) -> Any:
    return sweep.Settings(tuple(rates), 1.0, 0.0, openloop.CONSTANT, 7, 1.0, 10)


def test_targets_step_up_alternating_on_the_same_schedule_until_each_breaks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The service breaks from 300 req/s, the floor never: the service stops after 300 and 400,
    the floor goes on alone to the last rate."""
    sent: list[tuple[str, float, list[float]]] = []

    async def fake_step(target: Any, rate: float, due: Sequence[float], name: str,
                        settings: Any) -> Any:
        sent.append((target.kind, rate, list(due)))
        slow = target.kind == sweep.SERVICE and rate >= 300
        return _run([150.0 if slow else 5.0] * len(due))

    monkeypatch.setattr(sweep, "run_step", fake_step)
    design = openloop.DESIGNS["recs"]
    targets = [sweep.Target(kind, "http://x", repeat(openloop.Call("GET", "/x")),
                            viewers.Tally()) for kind in (sweep.SERVICE, sweep.FLOOR)]
    sweep.sweep_design("recs", design, targets, _settings([100, 200, 300, 400, 500, 600]))

    service, floor = targets
    assert [s.offered_rps for s in service.steps] == [100, 200, 300, 400]
    assert service.stopped is not None and "300 and 400 req/s in a row" in service.stopped
    assert [s.offered_rps for s in floor.steps] == [100, 200, 300, 400, 500, 600]
    assert floor.stopped is None
    assert [kind for kind, _, _ in sent[:4]] == ["service", "floor", "floor", "service"]
    by_rate = {(kind, rate): due for kind, rate, due in sent}
    assert by_rate["service", 200] == by_rate["floor", 200]
    assert len(by_rate["floor", 600]) == 600  # constant arrivals: rate x 1 s


def test_ctrl_c_ends_the_sweep_but_keeps_what_was_measured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    async def interrupted_at_the_third(target: Any, rate: float, due: Sequence[float],
                                       name: str, settings: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return _run([5.0] * len(due))

    @contextlib.contextmanager
    def no_floor(*_: Any) -> Iterator[str]:
        yield "http://127.0.0.1:1"

    monkeypatch.setattr(sweep, "run_step", interrupted_at_the_third)
    monkeypatch.setattr(sweep, "floor_server", no_floor)
    code = sweep.main(["recs", "--floor-only", "--rates", "10,20,30", "--pause", "0",
                       "--world", f"recs={_viewing_world(tmp_path)}", "--out",
                       str(tmp_path / "out")])

    assert code == 1
    floor = json.loads((tmp_path / "out" / "sweep.json").read_text())["designs"]["recs"]["floor"]
    assert [s["offered_rps"] for s in floor["steps"]] == [10.0, 20.0]
    assert floor["stopped"] == sweep.INTERRUPTED


# --- the record ----------------------------------------------------------------------------


def _targets(service_p99s: Sequence[float], floor_p99s: Sequence[float]) -> list[Any]:
    targets = []
    for kind, p99s in ((sweep.SERVICE, service_p99s), (sweep.FLOOR, floor_p99s)):
        target = sweep.Target(kind, "http://127.0.0.1:8030", iter(()), viewers.Tally())
        target.steps = [_step(100.0 * (i + 1), p99, target=kind) for i, p99 in enumerate(p99s)]
        target.stopped = sweep.stop_reason(target.steps, 100.0)
        targets.append(target)
    return targets


def _record(targets: Sequence[Any], rates: Sequence[float] = (100, 200, 300)) -> Any:
    return sweep.record({"recs": (openloop.DESIGNS["recs"], targets)}, _settings(rates),
                        datetime(2026, 12, 6, tzinfo=UTC), sweep.machine(), ["recs"])


def test_the_record_says_when_where_with_what_and_how_the_sweep_ran(tmp_path: Path) -> None:
    result = _record(_targets([10, 150, 300], [2, 3, 4]))
    text = sweep.write(result, tmp_path)

    back = json.loads((tmp_path / "sweep.json").read_text())
    assert back["generated"] == "2026-12-06T00:00:00Z"
    assert back["machine"]["nproc"] >= 1 and back["machine"]["memory_gib"] > 0
    assert back["machine"]["cpu_model"]
    assert len(back["machine"]["load_average_at_start"]) == 3
    assert len(back["machine"]["load_average_at_end"]) == 3
    assert {"python", "aiohttp", "fastapi", "uvicorn"} <= set(back["versions"])
    assert re.fullmatch(r"[0-9a-f]{40}", back["git"]["commit"])
    assert back["settings"]["step_duration_s"] == 1.0
    assert back["settings"]["rates_rps"] == [100, 200, 300]
    recs = back["designs"]["recs"]
    assert (recs["endpoint"], recs["p99_budget_ms"]) == (RECS, 100.0)
    assert (recs["service"]["knee_rps"], recs["service"]["knee_is_lower_bound"]) == (100.0, False)
    assert "over 2x" in recs["service"]["stopped"]
    assert (recs["floor"]["knee_rps"], recs["floor"]["knee_is_lower_bound"]) == (300.0, True)
    assert recs["floor"]["stopped"] == "ran out of rates"
    assert [s["requests"] for s in recs["service"]["steps"]] == [1_000, 2_000, 3_000]

    with (tmp_path / "sweep.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["target"], r["offered_rps"], r["p99_ms"]) for r in rows[:4]] == [
        ("service", "100.0", "10.0"), ("service", "200.0", "150.0"), ("service", "300.0", "300.0"),
        ("floor", "100.0", "2.0")]
    assert (tmp_path / "p99_vs_rate.png").read_bytes().startswith(PNG)
    assert (tmp_path / "summary.md").read_text() == text + "\n"
    assert "- recs service: knee 100 req/s" in text
    assert "- recs floor: knee at least 300 req/s (ran out of rates)" in text
    assert "| 200 | 50 / 75 / 150 **over** | 200 | 0 of 2,000 |" in text


def test_a_service_over_budget_from_the_first_step_has_no_knee(tmp_path: Path) -> None:
    text = sweep.write(_record(_targets([400], [2])), tmp_path)
    assert "- recs service: no knee, over budget from the lowest step" in text


@pytest.mark.parametrize("text", ["", "100,x", "200,100", "100,100", "0,100", "-5"])
def test_rates_must_be_positive_and_ascending(text: str) -> None:
    with pytest.raises(Exception, match="rates"):
        sweep.parse_rates(text)


def test_rates_are_read_from_a_comma_list() -> None:
    assert sweep.parse_rates("100,250, 1000") == (100.0, 250.0, 1000.0)


# --- end to end ----------------------------------------------------------------------------


def _viewing_world(directory: Path) -> Path:
    pd.DataFrame({"user_id": [f"u{n}" for n in range(200)] + ["a/b c%ü"]}).to_parquet(
        directory / "users.parquet")
    return directory


def test_a_design_whose_service_does_not_answer_is_skipped_and_the_sweep_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    @contextlib.contextmanager
    def no_floor(*_: Any) -> Iterator[str]:
        yield "http://127.0.0.1:1"

    monkeypatch.setattr(sweep, "floor_server", no_floor)
    down = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.INFO):
        code = sweep.main(["recs", "--host", f"recs={down}", "--rates", "10",
                           "--world", f"recs={_viewing_world(tmp_path)}", "--out",
                           str(tmp_path / "out")])

    assert code == 1
    assert f"recs: SKIPPED, the service at {down} does not answer" in caplog.text
    recs = json.loads((tmp_path / "out" / "sweep.json").read_text())["designs"]["recs"]
    assert recs["service"]["skipped"].startswith(f"the service at {down} does not answer")
    assert recs["service"]["steps"] == recs["floor"]["steps"] == []
    assert "- recs service: SKIPPED" in (tmp_path / "out" / "summary.md").read_text()


def test_a_floor_only_sweep_steps_the_real_floor_server_and_stops_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """floor.py in its own process, recs traffic (ids with /, space, %, ü among them) for two
    0.5 s steps: every answer passes the recommendation contract, and the server is gone after."""
    with caplog.at_level(logging.INFO):
        code = sweep.main(["recs", "--floor-only", "--rates", "20,40", "--step-duration", "0.5s",
                           "--pause", "0", "--world", f"recs={_viewing_world(tmp_path)}",
                           "--out", str(tmp_path / "out")])

    assert code == 0
    recs = json.loads((tmp_path / "out" / "sweep.json").read_text())["designs"]["recs"]
    assert "service" not in recs
    steps = recs["floor"]["steps"]
    assert [s["offered_rps"] for s in steps] == [20.0, 40.0]
    assert all(s["requests"] > 0 and s["failures"] == 0 for s in steps), steps
    assert not any("malformed" in s["problems"] for s in steps)
    assert "KNEE recs floor" in caplog.text
    url = re.search(r"floor: (http://127\.0\.0\.1:\d+)", caplog.text)
    assert url is not None
    with socket.socket() as client, pytest.raises(OSError):
        client.connect(("127.0.0.1", int(url.group(1).rsplit(":", 1)[1])))
