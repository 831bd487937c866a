"""Structured JSON logs and Prometheus metrics, declared once per service on its own registry."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from pythonjsonlogger.json import JsonFormatter
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Include both budgets (fraud 0.05 s, recommendations 0.1 s) as bucket edges so that
# "share of requests inside budget" is exact, not interpolated.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
)


# prometheus_client's switch: when set, every metric of the process lives in a file there, and
# /metrics sums the files of all the processes that share it (services/common/workers.py sets it).
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# How one gauge's values from several worker processes become a series: "liveall" keeps one per
# live process (label pid); "livesum", "livemax", "livemin" merge them.
GaugeMode = Literal["liveall", "livesum", "livemax", "livemin", "livemostrecent"]


def configure_logging(service: str, level: str = "INFO", json_logs: bool = True) -> None:
    """Route every logger to stderr, as one JSON object per line tagged with the service name."""
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        ))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python logs every connection step at INFO; warnings are what matter here. Even at
    # DEBUG: its admin client logs its whole configuration at DEBUG, the SASL password included.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
    # Its SCRAM login warns of "credentials in the clear" on every SASL_PLAINTEXT connection;
    # SCRAM sends a proof, never the password (what crosses in the clear on loopback is the
    # events: docs/reliability.md, "Kafka with authentication").
    logging.getLogger("kafka.net.sasl.scram").setLevel(max(logging.ERROR, root.level))


class Metrics:
    """A service's metrics: one registry, every name prefixed `<service>_`."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry if registry is not None else CollectorRegistry()

    def _name(self, what: str) -> str:
        return f"{self.service}_{what}"

    def latency(self, what: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram:
        """A latency histogram in seconds; `what` ends in `_seconds`."""
        return Histogram(self._name(what), doc, labels, registry=self.registry,
                         buckets=LATENCY_BUCKETS_S)

    def counter(self, what: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        """A counter; prometheus_client exposes it with the `_total` suffix."""
        return Counter(self._name(what), doc, labels, registry=self.registry)

    def gauge(self, what: str, doc: str, labels: tuple[str, ...] = (),
              multiprocess_mode: GaugeMode = "liveall") -> Gauge:
        """A gauge; `multiprocess_mode` says how a service running several workers merges it
        (a single process ignores it)."""
        return Gauge(self._name(what), doc, labels, registry=self.registry,
                     multiprocess_mode=multiprocess_mode)

    def exposed(self) -> CollectorRegistry:
        """What /metrics serves: this registry, or, in a process that is one of several workers,
        every worker's samples merged from their files (counters and histograms summed), so a
        scrape that lands on any worker sees the whole service."""
        directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
        if not directory:
            return self.registry
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]  # untyped upstream
        return merged


def _route_template(app: ASGIApp, scope: Scope) -> str:
    """The route's path template (/v1/users/{user_id}), so label cardinality stays bounded."""
    for route in getattr(app, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class RequestMetricsMiddleware:
    """ASGI middleware: request latency by method, route template and status code."""

    def __init__(self, app: ASGIApp, metrics: Metrics, router: Any) -> None:
        self.app = app
        self.router = router
        self.duration = metrics.latency(
            "http_request_duration_seconds", "HTTP request latency from first byte in to last out",
            ("method", "route", "status"),
        )
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            # Starlette records the matched route in the scope; routes of included routers
            # are only found there, so matching again is the fallback (e.g. a 404).
            route = getattr(scope.get("route"), "path", None) or _route_template(self.router, scope)
            key = (scope["method"], route, status)
            if (child := self._children.get(key)) is None:  # labels() locks and builds a key
                child = self._children[key] = self.duration.labels(*key[:2], str(status))
            child.observe(time.perf_counter() - start)
