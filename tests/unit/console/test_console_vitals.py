"""The console's numbers: rate, p99 and lag from two /metrics texts; the diagram's states."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from services.common.telemetry import Metrics
from services.console.charts import bar_widths, gauge_end, line_chart
from services.console.diagram import BOXES, Probe, board, store_health
from services.console.vitals import parse, vitals

ROUTE = "/v1/score"


def exposition(latencies_s: list[float], route: str = ROUTE, lag: float | None = None,
               probes: int = 0) -> str:
    """A real service's /metrics text: the platform's own histogram, observed."""
    metrics = Metrics("fraud", CollectorRegistry())
    duration = metrics.latency("http_request_duration_seconds", "latency",
                               ("method", "route", "status"))
    for seconds in latencies_s:
        duration.labels("POST", route, "200").observe(seconds)
    for _ in range(probes):
        duration.labels("GET", "/readyz", "200").observe(0.0005)
    if lag is not None:
        metrics.gauge("consumer_lag_records", "lag", ("group", "topic", "partition")).labels(
            "g", "t", "0").set(lag)
    return generate_latest(metrics.registry).decode()


def test_rate_and_p99_are_of_the_requests_between_two_scrapes() -> None:
    first = parse(exposition([0.002] * 100), at_s=10.0, route=ROUTE)
    # 200 more requests in the next 2 s: 198 fast, 2 at 40 ms
    second = parse(exposition([0.002] * 298 + [0.04] * 2), at_s=12.0, route=ROUTE)

    seen = vitals(first, second)

    assert seen.rate_rps == pytest.approx(100.0)
    # rank 198 of 200 sits at the top of the 2.5 ms bucket: 0.99 * 200 = 198 requests
    assert seen.p99_ms == pytest.approx(2.5)
    slower = vitals(first, parse(exposition([0.002] * 290 + [0.04] * 10), 12.0, ROUTE))
    assert 25.0 < (slower.p99_ms or 0) <= 50.0  # inside the 25-50 ms bucket


def test_probes_and_scrapes_are_not_the_services_traffic() -> None:
    only_probes = parse(exposition([], probes=50), at_s=1.0)
    assert only_probes.requests == 0 and vitals(None, only_probes).rate_rps is None
    assert vitals(parse(exposition([], probes=5), 0.0), only_probes).p99_ms is None


def test_a_restarted_service_is_read_from_zero_not_as_negative_traffic() -> None:
    before = parse(exposition([0.002] * 500), at_s=0.0, route=ROUTE)
    after = parse(exposition([0.002] * 20), at_s=2.0, route=ROUTE)
    assert vitals(before, after).rate_rps == pytest.approx(10.0)


def test_consumer_lag_is_summed_and_absent_without_a_consumer() -> None:
    assert parse(exposition([], lag=42.0), 0.0).lag == 42.0
    assert parse(exposition([]), 0.0).lag is None


def test_a_store_is_ready_when_every_service_that_checks_it_says_ok() -> None:
    probes = {"fraud": Probe(True, {"redis": "ok", "model": "ok"}),
              "ingest": Probe(False, {"kafka": "not ready"})}
    assert store_health("redis", probes) == "ready"
    assert store_health("kafka", probes) == "not ready"
    assert store_health("redis", {}) == "unknown"


def test_the_board_draws_only_the_services_the_console_has_an_address_for() -> None:
    states = board({"fraud": Probe(None, {}), "ingest": Probe(True, {})}, {})
    names = {s.box.name: s.health for s in states}
    assert names == {"fraud": "down", "ingest": "ready", "redis": "unknown", "kafka": "unknown",
                     "postgres": "unknown"}
    assert {b.name for b in BOXES if b.budget_ms} == {"fraud", "recommender"}


def test_postgresql_is_as_the_records_service_sees_it() -> None:
    up = {s.box.name: s.health for s in board({"records": Probe(True, {"postgres": "ok"})}, {})}
    down = {s.box.name: s.health
            for s in board({"records": Probe(False, {"postgres": "refused"})}, {})}
    assert (up["records"], up["postgres"]) == ("ready", "ready")
    assert (down["records"], down["postgres"]) == ("not ready", "not ready")


def test_the_budget_line_is_always_inside_the_chart() -> None:
    chart = line_chart([(0.0, 5.0), (1.0, None), (2.0, 300.0)], budget_ms=50.0, x_max_s=10.0)
    assert 0 < chart.budget_y < chart.height and chart.y_max_ms >= 300.0
    assert chart.points.count(",") == 2  # the second without answers is left out
    assert line_chart([], 100.0, 5.0).points == ""


def test_gauge_and_bars_scale_to_their_extremes() -> None:
    assert gauge_end(0.0) == (20.0, 100.0) and gauge_end(1.0) == (180.0, 100.0)
    assert gauge_end(7.0) == gauge_end(1.0)
    assert bar_widths([0.6, -0.3, 0.0], width=100) == [100.0, 50.0, 0.0]
    assert bar_widths([]) == []
