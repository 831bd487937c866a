"""Ingest latency over HTTP on the real broker: POST /v1/events with 1 and with 100 watch events.

    .venv/bin/python benchmarks/ingest_latency.py [--url http://127.0.0.1:8000] [--samples 300]

Without --url it starts its own redis-server and Kafka broker the way the tests do, and the real
`python -m services.ingest` process on a free port. One httpx client (keep-alive) posts the two
batch sizes interleaved, one request at a time, so machine noise hits both alike; each latency is
client-side, from sending the request to reading the 202, which ingest only answers after Kafka
acknowledged every event (acks=all). Raw samples go to reports/ingest-latency/<UTC time>.json and
the summary table for docs/ingest.md to the log.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

logger = logging.getLogger("ingest_latency")
REPO_ROOT = Path(__file__).resolve().parents[1]
BATCH_SIZES = (1, 100)
PERCENTILES = (50, 90, 99)
USERS = 1000


@contextmanager
def ingest_url(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    from services.common.loopback import free_port  # noqa: PLC0415
    from services.devstack.servers import start_kafka, start_redis  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as workdir:
        redis_server = start_redis(Path(workdir))
        kafka_server = start_kafka(Path(workdir))
        port = free_port()
        env = {**os.environ, "MLSD_INGEST_PORT": str(port), "MLSD_ENVIRONMENT": "test",
               "MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka_server.address,
               "MLSD_REDIS_URL": redis_server.address, "MLSD_LOG_LEVEL": "WARNING",
               "MLSD_INGEST_SPOOL_PATH": str(Path(workdir) / "spool.sqlite3")}
        with (Path(workdir) / "ingest.log").open("wb") as log:
            ingest = subprocess.Popen([sys.executable, "-m", "services.ingest"], env=env,
                                      stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url)
            yield url
        finally:
            ingest.terminate()
            ingest.wait(30)
            kafka_server.stop()
            redis_server.stop()


def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"ingest at {url} was not ready after {timeout_s:.0f} s")


def batch(size: int, run: str, counter: Iterator[int]) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    events = []
    for _ in range(size):
        n = next(counter)
        events.append({"id": f"bench-{run}-{n}", "type": "watch", "source": "bench", "time": now,
                       "data": {"user_id": f"u{n % USERS}", "content_id": f"t{n % 997}",
                                "watch_seconds": 60 + n % 3000, "completed": n % 5 == 0}})
    return {"events": events}


def measure(client: httpx.Client, url: str, samples: int, warmup: int) -> dict[int, list[float]]:
    run = uuid.uuid4().hex[:8]  # fresh ids: every event is published, none is a duplicate
    counter = iter(range(10**9))
    latencies_ms: dict[int, list[float]] = {size: [] for size in BATCH_SIZES}
    for i in range(warmup + samples):
        for size in BATCH_SIZES:
            body = json.dumps(batch(size, run, counter)).encode()
            start = time.perf_counter()
            response = client.post(f"{url}/v1/events", content=body,
                                   headers={"content-type": "application/json"})
            elapsed_ms = (time.perf_counter() - start) * 1000
            if response.status_code != 202:
                raise RuntimeError(f"POST answered {response.status_code}: {response.text}")
            if i >= warmup:
                latencies_ms[size].append(elapsed_ms)
    return latencies_ms


def summary(samples_ms: Sequence[float]) -> dict[str, float]:
    values = np.asarray(samples_ms)
    stats = {f"p{p}_ms": float(np.percentile(values, p)) for p in PERCENTILES}
    return stats | {"mean_ms": float(values.mean()), "max_ms": float(values.max())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running ingest instead of starting one with its servers")
    parser.add_argument("--samples", type=int, default=300, help="posts per batch size")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--reports", type=Path, default=REPO_ROOT / "reports/ingest-latency")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every request at INFO

    load_before = os.getloadavg()[0]  # other work on a shared machine shows up in the tail
    with ingest_url(args.url) as url, httpx.Client(timeout=30) as client:
        latencies_ms = measure(client, url, args.samples, args.warmup)
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "machine": platform.platform(),
        "cpus": str(os.cpu_count()),
        "load_avg_1m": f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        "how": "client-side time.perf_counter around each POST, one httpx keep-alive client, "
               "batch sizes interleaved, warm-up excluded; broker, Redis, ingest and client on "
               "the same machine",
    }

    logger.info("| events per post | posts | p50 ms | p90 ms | p99 ms | mean ms | max ms |")
    logger.info("|---|---|---|---|---|---|---|")
    results = []
    for size, samples in latencies_ms.items():
        s = summary(samples)
        logger.info("| %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f |", size, len(samples),
                    s["p50_ms"], s["p90_ms"], s["p99_ms"], s["mean_ms"], s["max_ms"])
        results.append({"events_per_post": size, "summary": s, "latencies_ms": samples})
    args.reports.mkdir(parents=True, exist_ok=True)
    raw = args.reports / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    raw.write_text(json.dumps({"meta": meta, "cases": results}, indent=1))
    logger.info("%s; raw samples: %s", meta, raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
