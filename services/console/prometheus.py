"""The board's numbers from Prometheus, when one runs: its one-minute windows, per scrape job.

Without it (`make run` starts none) the console reads each /metrics itself (vitals.py); with it
(MLSD_CONSOLE_PROMETHEUS_URL, set under Compose) the numbers are the ones the dashboard and the
alerts see. Jobs are named after the services (infra/prometheus/prometheus*.yml), so a box whose
name is a job is read here; the rest (one box per fraud scorer) are still scraped."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import httpx

from services.console.diagram import Box
from services.console.vitals import PLATFORM_ROUTES, Vitals

WINDOW = "1m"
JOBS = frozenset({"ingest", "model-server", "stream", "experiments", "recommender", "fraud"})
LATENCY = '{__name__=~".+_http_request_duration_seconds_%s", %s}'


class PrometheusUnavailable(Exception):
    """No answer, or not a query result: the board falls back to its own scrapes."""


def selector(box: Box) -> str:
    route = (f'route="{box.route}"' if box.route is not None
             else f'route!~"{"|".join(sorted(PLATFORM_ROUTES))}"')
    return f'job="{box.name}", {route}'


def queries(box: Box) -> dict[str, str]:
    """PromQL for one box: the rules' own shape (rules/platform.yml: rate over a window, buckets
    summed by le before the quantile)."""
    chosen = selector(box)
    return {
        "rate": f"sum(rate({LATENCY % ('count', chosen)}[{WINDOW}]))",
        "p99": f"histogram_quantile(0.99, sum by (le) "
               f"(rate({LATENCY % ('bucket', chosen)}[{WINDOW}])))",
        "events": f'sum(rate({{__name__=~".+_consumer_events_total", job="{box.name}"}}'
                  f"[{WINDOW}]))",
        "lag": f'sum({{__name__=~".+_consumer_lag_records", job="{box.name}"}})',
    }


def scalar(body: object) -> float | None:
    """The one value of an instant-vector answer; None when empty or NaN (no requests)."""
    if not isinstance(body, dict) or body.get("status") != "success":
        raise PrometheusUnavailable(f"not a query result: {str(body)[:200]}")
    result = body["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


class PrometheusVitals:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url.rstrip("/")

    async def query(self, promql: str) -> float | None:
        try:
            response = await self.client.get(f"{self.url}/api/v1/query", params={"query": promql})
            return scalar(response.json())
        except (httpx.HTTPError, ValueError, KeyError) as error:
            raise PrometheusUnavailable(f"{type(error).__name__}: {error}") from error

    async def read(self, boxes: Sequence[Box]) -> dict[str, Vitals]:
        """Vitals of every box that is a scrape job (PrometheusUnavailable: none at all)."""
        jobs = [box for box in boxes if box.name in JOBS]
        answers = await asyncio.gather(*(self._box(box) for box in jobs))
        return {box.name: vitals for box, vitals in zip(jobs, answers, strict=True)}

    async def _box(self, box: Box) -> Vitals:
        names, promql = zip(*queries(box).items(), strict=True)
        values = dict(zip(names, await asyncio.gather(*(self.query(q) for q in promql)),
                          strict=True))
        p99 = values["p99"]
        return Vitals(rate_rps=values["rate"] or 0.0, p99_ms=None if p99 is None else p99 * 1000,
                      events_per_s=values["events"], lag=values["lag"])
