"""The open-loop driver (load-tests/openloop.py): its schedule, its clock, its verdict; driven
against a tiny aiohttp server in the test's own event loop."""

from __future__ import annotations

import asyncio
import csv
import json
import random
import socket
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from itertools import pairwise, repeat
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.load_tests_modules import load

openloop = load("openloop")
slo = load("slo")
viewers = load("viewers")

NAME = "GET /x"
SIMPLE = openloop.Call("GET", "/x")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _drive(handler: Handler, due: Sequence[float], calls: Iterator[Any] | None = None,
           timeout_s: float = 2.0, port: int | None = None) -> Any:
    """Run the driver's schedule against handler (or against nothing listening on port)."""

    async def go() -> Any:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            url = f"http://127.0.0.1:{port or server.port}"
            async with aiohttp.ClientSession(url) as session:
                return await openloop.drive(session, NAME, calls or repeat(SIMPLE), due, timeout_s)
        finally:
            await server.close()

    return asyncio.run(go())


async def _ok(_: web.Request) -> web.Response:
    return web.json_response({})


# --- the clock -----------------------------------------------------------------------------


def test_latency_counts_from_the_due_time_so_queueing_behind_a_slow_answer_shows() -> None:
    """A server that answers one request at a time in 30 ms, asked every 5 ms: Locust's users
    would each wait for their answer and report ~30 ms; the open loop keeps sending, and the
    requests queue behind each other."""
    lock, arrivals = asyncio.Lock(), []

    async def one_at_a_time(_: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        async with lock:
            await asyncio.sleep(0.030)
        return web.json_response({})

    run = _drive(one_at_a_time, [i * 0.005 for i in range(8)])

    assert arrivals[-1] - arrivals[0] < 0.150  # sent on schedule, not after each answer (240 ms)
    latencies = [r.latency_ms for r in run.results]
    assert 25 < latencies[0] < 100
    assert latencies[-1] > 150  # 8 x 30 ms served, minus the 35 ms it was due after the first
    assert latencies == sorted(latencies)
    assert run.peak_in_flight >= 4


def test_a_request_the_driver_sends_late_carries_the_lateness_in_its_latency_and_lag() -> None:
    """The first answer blocks the whole event loop for 100 ms, the driver's with it: requests
    due meanwhile go out late, and say so."""

    async def blocking(request: web.Request) -> web.Response:
        if request.query.get("n") == "0":
            time.sleep(0.100)  # blocks the loop, as a driver with too much to do would
        return web.json_response({})

    calls = (openloop.Call("GET", f"/x?n={n}") for n in range(3))
    run = _drive(blocking, [0.0, 0.020, 0.040], calls)

    late = run.results[1]
    assert late.lag_ms > 50
    assert late.latency_ms >= late.lag_ms
    line, kept_up = openloop.lag_line(run, 50.0, openloop.CONSTANT)
    assert not kept_up
    assert "the driver fell behind its schedule" in line


def test_results_say_when_each_request_was_due_and_are_in_that_order() -> None:
    due = [0.0, 0.010, 0.020, 0.030]
    run = _drive(_ok, due)
    assert [r.due_s for r in run.results] == due
    assert all(r.ok and r.status == 200 and r.name == NAME for r in run.results)
    assert run.seconds >= 0.030


# --- failures ------------------------------------------------------------------------------


def test_an_error_status_is_a_failure() -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=503)

    (result,) = _drive(broken, [0.0]).results
    assert (result.status, result.error, result.ok) == (503, "HTTP 503", False)


def test_no_answer_within_the_timeout_is_a_failure_timed_to_when_the_driver_gave_up() -> None:
    async def stuck(_: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({})

    (result,) = _drive(stuck, [0.0], timeout_s=0.05).results
    assert (result.status, result.error) == (0, "no answer within 0.05 s")
    assert 45 < result.latency_ms < 900


def test_a_refused_connection_is_a_failure() -> None:
    with socket.socket() as probe:  # a port nobody listens on once this closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (result,) = _drive(_ok, [0.0], port=port).results
    assert result.status == 0
    assert result.error.startswith("ClientConnector")


# --- the schedule --------------------------------------------------------------------------


def test_a_constant_schedule_is_evenly_spaced() -> None:
    due = openloop.schedule(4.0, 2.0, openloop.CONSTANT, random.Random(0))
    assert due == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]


def test_a_poisson_schedule_has_the_rate_and_exponential_gaps() -> None:
    due = openloop.schedule(500.0, 40.0, openloop.POISSON, random.Random(1))
    gaps = [b - a for a, b in pairwise(due)]
    assert 19_600 < len(due) < 20_400
    assert all(0 <= t < 40.0 for t in due) and due == sorted(due)
    assert 0.95 < statistics.stdev(gaps) / statistics.mean(gaps) < 1.05  # exponential: cv 1
    assert due == openloop.schedule(500.0, 40.0, openloop.POISSON, random.Random(1))


@pytest.mark.parametrize(("rate", "seconds", "arrival"),
                         [(0.0, 1.0, "poisson"), (10.0, 0.0, "poisson"), (10.0, 1.0, "bursty")])
def test_an_impossible_schedule_is_refused(rate: float, seconds: float, arrival: str) -> None:
    with pytest.raises(ValueError):
        openloop.schedule(rate, seconds, arrival, random.Random(0))


@pytest.mark.parametrize(("text", "seconds"),
                         [("30s", 30.0), ("2m", 120.0), ("1h30m", 5_400.0), ("45", 45.0),
                          ("1.5s", 1.5)])
def test_durations_are_read_as_locust_writes_them(text: str, seconds: float) -> None:
    assert openloop.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30x", "s", "1m 30s"])
def test_a_duration_it_cannot_read_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        openloop.parse_duration(text)


# --- the verdict ---------------------------------------------------------------------------


def _run(latencies_ms: Sequence[float], errors: Sequence[str] = (), lag_ms: float = 0.2) -> Any:
    errors = [*errors, *[""] * (len(latencies_ms) - len(errors))]
    results = [openloop.Result(NAME, i / 100, ms, lag_ms, 0 if e else 200, e)
               for i, (ms, e) in enumerate(zip(latencies_ms, errors, strict=True))]
    return openloop.Run(results, len(results) / 100, 3)


def _design(tallies_answers: bool = False) -> Any:
    return openloop.Design(NAME, 50.0, "http://127.0.0.1:1", 100.0, Path("."),
                           openloop.fraud_calls, tallies_answers)


def _judge(run: Any, tmp_path: Path, tally: Any = None, design: Any = None) -> int:
    gate = slo.Slo({NAME: 50.0})
    return int(openloop.judge_run(run, design or _design(), gate, tally or viewers.Tally(),
                                  str(tmp_path / "openloop")))


def test_a_run_within_budget_passes_and_is_written_down(tmp_path: Path) -> None:
    assert _judge(_run([10.0] * 1_000), tmp_path) == 0
    (row,) = csv.DictReader((tmp_path / "openloop_slo.csv").open())
    assert (row["name"], row["requests"], row["p99_ms"], row["verdict"]) == (
        NAME, "1000", "10.0", "PASS")
    assert float(row["rps"]) == pytest.approx(100.0)
    assert len(openloop.read_results(tmp_path / "openloop_requests.csv")) == 1_000


def test_a_run_over_budget_or_with_too_many_failures_fails(tmp_path: Path) -> None:
    assert _judge(_run([10.0] * 980 + [60.0] * 20), tmp_path) == 1
    assert _judge(_run([10.0] * 1_000, errors=["HTTP 500"] * 2), tmp_path) == 1
    assert _judge(_run([10.0] * 1_000, errors=["HTTP 500"]), tmp_path) == 0


def test_a_run_without_requests_fails(tmp_path: Path) -> None:
    assert _judge(openloop.Run([], 0.0, 0), tmp_path) == 1


def test_a_single_malformed_answer_fails_the_run_and_served_from_is_written(
        tmp_path: Path) -> None:
    tally = viewers.Tally()
    tally.served_from.update({"cache": 999})
    tally.malformed.update({"missing served_from": 1})
    assert _judge(_run([10.0] * 1_000), tmp_path, tally, _design(tallies_answers=True)) == 1
    assert viewers.read_tally_csv(tmp_path / "openloop_served_from.csv")["malformed"] == 1


def test_results_are_written_and_read_back(tmp_path: Path) -> None:
    run = _run([1.23456, 7.0], errors=["", "no answer within 5 s"])
    openloop.write_results(run.results, tmp_path / "requests.csv")
    back = openloop.read_results(tmp_path / "requests.csv")
    assert [(r.latency_ms, r.status, r.error) for r in back] == [
        (1.235, 200, ""), (7.0, 0, "no answer within 5 s")]


def test_a_driver_that_kept_up_says_so() -> None:
    line, kept_up = openloop.lag_line(_run([10.0] * 100, lag_ms=0.4), 100.0, openloop.POISSON)
    assert kept_up
    assert line == ("driver: 100 requests due at 100 req/s (poisson), up to 3 in flight; "
                    "sent late by p50 0.4 ms, p99 0.4 ms, max 0.4 ms (kept up)")


# --- the recommendation calls --------------------------------------------------------------


def test_recs_calls_check_each_answer_against_the_contract_and_count_served_from(
        tmp_path: Path) -> None:
    pd.DataFrame({"user_id": ["u1", "u2", "u3"]}).to_parquet(tmp_path / "users.parquet")
    tally = viewers.Tally()
    call = next(openloop.recs_calls(tmp_path, random.Random(0), tally))
    user_id = call.path.split("/")[-1].split("?")[0]
    answer = {"user_id": user_id, "items": [], "variant": "control", "model_version": 1,
              "served_from": "computed", "processing_time_ms": 4.2}

    assert call.method == "GET" and call.path.startswith("/v1/recommendations/u")
    assert call.check(200, json.dumps(answer).encode()) is None
    assert call.check(200, b"<html>") == "malformed answer: not a JSON object"
    assert call.check(503, b"") == "HTTP 503"
    assert tally.served_from == {"computed": 1}
    assert tally.malformed.total() == 1


def test_uncached_recs_calls_ask_for_a_fresh_list_and_fail_any_other_answer(
        tmp_path: Path) -> None:
    pd.DataFrame({"user_id": ["u1", "u2", "u3"]}).to_parquet(tmp_path / "users.parquet")
    tally = viewers.Tally()
    call = next(openloop.DESIGNS["recs-uncached"].calls(tmp_path, random.Random(0), tally))
    assert call.headers == {"Cache-Control": "no-cache, no-store"}
    user_id = call.path.split("/")[-1].split("?")[0]
    answer = {"user_id": user_id, "items": [], "variant": "control", "model_version": 1,
              "served_from": "computed", "processing_time_ms": 4.2}
    assert call.check(200, json.dumps(answer).encode()) is None
    for other in ("cache", "fallback"):
        assert call.check(200, json.dumps({**answer, "served_from": other}).encode()) == \
            f"served from {other}, not computed"
    assert next(openloop.recs_calls(tmp_path, random.Random(0), tally)).headers is None
