"""What the controller measures: a route's p99 from the service's Prometheus histogram, the
balancer's queue from HAProxy's stats socket, and the worker processes under the service."""

from __future__ import annotations

import csv
import io
import math
import socket
from collections.abc import Callable, Mapping

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from services.common.workers import supervisor_of, workers_of

Buckets = dict[float, float]  # upper bound (seconds) -> cumulative count


def latency_buckets(metrics_text: str, metric: str, labels: Mapping[str, str]) -> Buckets:
    """The cumulative bucket counts of `metric`, summed over every series whose labels include
    `labels` (all statuses of one route, say)."""
    buckets: Buckets = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != metric:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            if any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            bound = float(sample.labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def window_p99_ms(before: Buckets, after: Buckets) -> float | None:
    """The p99 of the requests observed between two scrapes, as the upper bound of the bucket
    it falls in (an over-estimate: the controller errs towards more workers); None when no
    request was answered in between."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    for bound, count in zip(bounds, counts, strict=True):
        if count >= 0.99 * total:
            return bound * 1000 if math.isfinite(bound) else float(bounds[-2]) * 1000 * 2
    return None  # unreachable: the +Inf bucket holds every request


SCRAPE_TIMEOUT_S = 2.0


def scrape(url: str, timeout_s: float = SCRAPE_TIMEOUT_S) -> str:
    return httpx.get(url, timeout=timeout_s).text


def next_window(before: Buckets, read: Callable[[], Buckets],
                timeout_s: float = SCRAPE_TIMEOUT_S) -> tuple[float | None, Buckets]:
    """This window's p99 (window_p99_ms) and the buckets the next window starts from.

    A scrape that failed is the service not answering its own /metrics within `timeout_s`: it
    is overloaded, exactly when a worker must be added, so the window counts as over any budget
    (its p99 at least the timeout) instead of stopping the controller; the next window starts
    from the last buckets read, so it covers this window's requests too."""
    try:
        after = read()
    except httpx.HTTPError:
        return timeout_s * 1000, before
    return window_p99_ms(before, after), after


def haproxy_queue(socket_path: str, backend: str, timeout_s: float = 1.0) -> int:
    """Requests waiting in HAProxy for a server of `backend` (`qcur` of its BACKEND row)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout_s)
        connection.connect(socket_path)
        connection.sendall(b"show stat\n")
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode().lstrip("# ")
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("pxname") == backend and row.get("svname") == "BACKEND":
            return int(row.get("qcur") or 0)
    raise LookupError(f"HAProxy at {socket_path} has no backend {backend!r}")


def supervisor_pid(port: int) -> int:
    """The uvicorn supervisor serving `port`: the process holding its listening socket, or the
    supervisor of the worker holding it (a worker shares the socket; which of them the kernel
    names first is not ours to know)."""
    for connection in psutil.net_connections(kind="tcp"):
        if (connection.status == psutil.CONN_LISTEN and connection.laddr
                and connection.laddr.port == port and connection.pid):
            return int(supervisor_of(psutil.Process(connection.pid)).pid)
    raise LookupError(f"no process listens on port {port}")


def worker_count(parent_pid: int) -> int:
    """Live uvicorn workers under the supervisor (services/common/workers.py)."""
    return len(workers_of(parent_pid))
