"""`python -m services.autoscaler`: every window, measure the service and add or remove one worker.

Workers are added and removed with the signals uvicorn's supervisor understands (SIGTTIN: one
more, SIGTTOU: one fewer), so the service keeps its port, its other workers and their
connections: nothing restarts. Each decision is logged with what it was made from.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from services.autoscaler.observe import (
    haproxy_queue,
    latency_buckets,
    next_window,
    scrape,
    supervisor_pid,
    worker_count,
)
from services.autoscaler.policy import Observation, Policy, Scaler
from services.autoscaler.settings import AutoscalerSettings
from services.common.telemetry import configure_logging

logger = logging.getLogger(__name__)
LATENCY_METRIC = "http_request_duration_seconds"


def policy_of(settings: AutoscalerSettings) -> Policy:
    return Policy(p99_budget_ms=settings.autoscaler_p99_budget_ms,
                  queue_budget=settings.autoscaler_queue_budget,
                  min_workers=settings.autoscaler_min_workers,
                  max_workers=settings.autoscaler_max_workers,
                  up_after=settings.autoscaler_up_after,
                  down_after=settings.autoscaler_down_after,
                  cooldown_s=settings.autoscaler_cooldown_s)


def run(settings: AutoscalerSettings, stop_after_s: float | None = None) -> None:
    scaler = Scaler(policy_of(settings))
    metrics_url = f"http://127.0.0.1:{settings.autoscaler_port}/metrics"
    labels = {"route": settings.autoscaler_route}
    # the histogram is named <service>_http_request_duration_seconds: match on the suffix
    def read() -> dict[float, float]:
        return _buckets(metrics_url, labels)

    _, before = next_window({}, read)
    started = time.monotonic()
    while stop_after_s is None or time.monotonic() - started < stop_after_s:
        time.sleep(settings.autoscaler_interval_s)
        p99_ms, after = next_window(before, read)
        if after is before:
            logger.warning("the service did not answer its metrics in time: counted as over "
                           "budget", extra={"url": metrics_url})
        parent = supervisor_pid(settings.autoscaler_port)
        queue = (haproxy_queue(settings.autoscaler_haproxy_socket,
                               settings.autoscaler_haproxy_backend)
                 if settings.autoscaler_haproxy_socket else 0)
        seen = Observation(p99_ms, queue, worker_count(parent))
        before = after
        step = scaler.decide(seen, time.monotonic())
        if step:
            os.kill(parent, signal.SIGTTIN if step > 0 else signal.SIGTTOU)
        logger.info("window", extra={"p99_ms": seen.p99_ms, "queue": seen.queue,
                                     "workers": seen.workers, "step": step})


def _buckets(url: str, labels: dict[str, str]) -> dict[float, float]:
    text = scrape(url)
    name = next((line.split()[2] for line in text.splitlines()
                 if line.startswith("# TYPE") and line.split()[2].endswith(LATENCY_METRIC)),
                LATENCY_METRIC)
    return latency_buckets(text, name, labels)


def main() -> None:
    settings = AutoscalerSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    run(settings)


if __name__ == "__main__":
    main()
