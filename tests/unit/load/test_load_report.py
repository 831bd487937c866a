"""The load-test report (load-tests/report.py) from small hand-written runs."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from tests.load_tests_modules import load

report = load("report")
openloop = load("openloop")
slo = load("slo")
viewers = load("viewers")

RECS = "GET /v1/recommendations/{user_id}"
PNG = b"\x89PNG\r\n\x1a\n"
PERCENTILE_COLUMNS = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%",
                      "99.99%", "100%"]


def _history_row(second: int, name: str, p50: str, p95: str, p99: str) -> dict[str, Any]:
    """A row of Locust's --csv-full-history file (stats_history.csv)."""
    percentiles = dict.fromkeys(PERCENTILE_COLUMNS, p99)
    percentiles.update({"50%": p50, "95%": p95, "99%": p99})
    return {"Timestamp": 1_763_700_000 + second, "User Count": 30,
            "Type": "GET" if name != "Aggregated" else "", "Name": name, "Requests/s": 300.0,
            "Failures/s": 0.0, **percentiles, "Total Request Count": 300 * second,
            "Total Failure Count": 0, "Total Median Response Time": 3,
            "Total Average Response Time": 5.0, "Total Min Response Time": 1,
            "Total Max Response Time": 80, "Total Average Content Size": 2_000}


def _write_locust(directory: Path, p99: float = 16.0) -> None:
    stats = slo.EndpointStats(RECS, 8_900, 2, p50_ms=3.0, p95_ms=12.0, p99_ms=p99, max_ms=80.5,
                              rps=296.7)
    slo.write_csv(slo.evaluate(slo.Slo({RECS: 100.0}), [stats]), directory / "locust_slo.csv")
    rows = [_history_row(0, RECS, "N/A", "N/A", "N/A"),   # before the first request
            _history_row(1, RECS, "0", "0", "0"),         # before the first 10 s window
            _history_row(2, RECS, "3", "12", "15"),
            _history_row(2, "Aggregated", "3", "12", "15"),
            _history_row(3, RECS, "3", "13", "16")]
    with (directory / "locust_stats_history.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tally = viewers.Tally()
    tally.served_from.update({"cache": 6_000, "computed": 2_400, "fallback": 500})
    tally.write_csv(directory / "locust_served_from.csv")


def _write_open_loop(directory: Path, lag_ms: float = 0.3) -> None:
    # 3 s at 100 req/s: 2 ms answers, except 10 of 250 ms in the second second
    results = [openloop.Result(RECS, n / 100, 250.0 if 150 <= n < 160 else 2.0, lag_ms, 200)
               for n in range(300)]
    openloop.write_results(results, directory / "openloop_requests.csv")
    stats = slo.latency_stats(RECS, [r.latency_ms for r in results], 0, 3.0)
    slo.write_csv(slo.evaluate(slo.Slo({RECS: 100.0}), [stats]), directory / "openloop_slo.csv")


def test_writes_a_png_per_endpoint_and_a_summary_with_both_modes_side_by_side(
        tmp_path: Path) -> None:
    run = tmp_path / "recs"
    run.mkdir()
    _write_locust(run)
    _write_open_loop(run)

    text = report.write_report(run)

    assert (run / "GET_v1_recommendations_user_id.png").read_bytes().startswith(PNG)
    assert (run / "summary.md").read_text() == text
    assert text.startswith("# Load test: recs (FAIL)")
    assert "| budget: p99 ≤ 100 ms | closed loop (Locust) | open loop |" in text
    assert "| requests | 8,900 | 300 |" in text
    assert "| p50 ms | 3 | 2 |" in text
    assert "| p99 ms | 16 | 250 |" in text
    assert "| max ms | 80.5 | 250.0 |" in text
    assert "| req/s | 296.7 | 100.0 |" in text
    assert "| errors | 2 (0.022%) | 0 (0.000%) |" in text
    assert "| verdict | PASS | FAIL: p99 250 ms > 100 ms |" in text
    assert ("| served_from | cache 67%, computed 27%, fallback 6%; 0 malformed | not run |"
            in text)
    assert "p50 0.3 ms, p99 0.3 ms, max 0.3 ms; it kept up with its schedule." in text
    assert "![GET /v1/recommendations/{user_id}](GET_v1_recommendations_user_id.png)" in text


def test_a_mode_that_did_not_run_is_shown_as_not_run(tmp_path: Path) -> None:
    _write_open_loop(tmp_path)
    text = report.write_report(tmp_path)
    assert "| p99 ms | not run | 250 |" in text
    assert (tmp_path / "GET_v1_recommendations_user_id.png").read_bytes().startswith(PNG)


def test_a_lagging_driver_is_called_out(tmp_path: Path) -> None:
    _write_open_loop(tmp_path, lag_ms=40.0)
    assert "the driver fell behind its schedule" in report.write_report(tmp_path)


def test_a_directory_without_a_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no load-test run"):
        report.write_report(tmp_path)
    assert report.main([str(tmp_path)]) == 1


def test_locusts_history_gives_each_endpoint_its_percentiles_once_there_is_a_window(
        tmp_path: Path) -> None:
    _write_locust(tmp_path)
    (series,) = report.locust_series(tmp_path / "locust_stats_history.csv").values()
    assert series.seconds == [2, 3]
    assert series.ms == {"p50": [3.0, 3.0], "p95": [12.0, 13.0], "p99": [15.0, 16.0]}


def test_the_open_loop_percentiles_cover_the_last_ten_seconds_by_due_time() -> None:
    results = [openloop.Result(RECS, s + (n + 0.5) / 10, ms, 0.1, 200)
               for s, ms in ((0, 5.0), (1, 50.0), (11, 7.0)) for n in range(10)]
    series = report.open_loop_series(results)[RECS]
    assert series.seconds[:3] == [1.0, 2.0, 3.0]
    assert series.ms["p50"][:2] == [5.0, 5.0]
    assert series.ms["p99"][:2] == [5.0, 50.0]
    at_12 = series.seconds.index(12.0)  # the 50 ms second has left the window
    assert series.ms["p99"][at_12] == 7.0
