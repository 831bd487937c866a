"""The fraud API as two worker processes on one port, on real Redis and Kafka: both serve, and
/metrics on that port counts every request of both, through a worker's death and restart."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import platform_topics
from tests.e2e.conftest import ServiceProcess
from tests.harness import ServerProcess

pytestmark = pytest.mark.integration
StartService = Callable[..., ServiceProcess]


def body(run: str, n: int) -> dict[str, Any]:
    return {"transaction_id": f"{run}-{n}", "user_id": f"cust{n % 50}", "card_id": f"card{n % 50}",
            "amount": 42.0, "currency": "EUR", "transaction_type": "purchase",
            "merchant_id": "m1", "merchant_category": "grocery", "terminal_id": "term1",
            "latitude": 48.8566, "longitude": 2.3522, "timestamp": datetime.now(UTC).isoformat(),
            "ip_address": "81.2.3.4", "device_id": "dev1"}


def score_all(url: str, run: str, numbers: range) -> None:
    """Concurrent requests, each on a new connection, so that the kernel hands them to
    whichever worker accepts first (a kept-alive connection stays with one worker)."""
    def one(n: int) -> int:
        return httpx.post(f"{url}/v1/score", json=body(run, n), timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, numbers)) == {200}


def decisions_by_pid(metrics_dir: Path) -> dict[int, float]:
    """Each worker's own count of HTTP decisions, read from its counter file (counter_<pid>.db)."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        counts[pid] = sum(value for key, value, _, _ in MmapedDict.read_all_values_from_file(
            str(path)) if _decision_on_http(key))
    return counts


def _decision_on_http(key: str) -> bool:
    _, sample, labels, _ = json.loads(key)
    return bool(sample == "fraud_decisions_total" and labels.get("path") == "http")


def exposed(url: str) -> dict[str, float]:
    """/metrics, summed per sample name and the labels this test looks at."""
    totals: dict[str, float] = {}
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "fraud_decisions_total" and sample.labels["path"] == "http":
                key = "decisions"
            elif (sample.name == "fraud_http_request_duration_seconds_count"
                  and sample.labels["route"] == "/v1/score"):
                key = "score requests"
            else:
                continue
            totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def until(check: Callable[[], bool], timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_two_workers_serve_one_port_and_metrics_count_the_requests_of_both(
        start_service: StartService, kafka_server: ServerProcess, tmp_path: Path) -> None:
    ensure_topics(kafka_server.address, platform_topics(3))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    fraud = start_service("fraud", MLSD_FRAUD_WORKERS="2", TMPDIR=str(scratch))
    [metrics_dir] = scratch.glob("fraud-metrics-*")
    run = uuid.uuid4().hex[:8]

    sent = 0
    while sent < 2000 and sum(1 for n in decisions_by_pid(metrics_dir).values() if n) < 2:
        score_all(fraud.url, run, range(sent, sent + 40))
        sent += 40

    served = decisions_by_pid(metrics_dir)
    assert len([pid for pid, n in served.items() if n]) == 2, served
    assert {parent_of(pid) for pid in served} == {fraud.process.pid}
    assert until(lambda: exposed(fraud.url) == {"decisions": sent, "score requests": sent}), (
        exposed(fraud.url), sent)

    # A worker that dies is replaced; what it counted stays in the service's totals.
    os.kill(min(served), signal.SIGKILL)
    assert until(lambda: len(decisions_by_pid(metrics_dir)) == 3, timeout_s=60), fraud.log_tail()
    assert until(lambda: httpx.get(f"{fraud.url}/readyz", timeout=2).status_code == 200)
    score_all(fraud.url, run, range(sent, sent + 40))
    assert until(lambda: exposed(fraud.url) == {"decisions": sent + 40,
                                                "score requests": sent + 40})

    assert fraud.stop() == 0
    assert not metrics_dir.exists()  # each start counts from zero
