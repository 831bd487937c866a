"""The console's board from a real Prometheus scraping a real service, as it runs under Compose."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from services.common.probe import process_ready
from services.common.processes import stop_process
from services.console.diagram import BOXES
from services.console.prometheus import PrometheusUnavailable, PrometheusVitals
from services.console.vitals import Vitals
from tests.harness import REPO_ROOT, free_port

pytestmark = pytest.mark.integration
JOB = "experiments"  # the scrape job the service stands in for


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    """A real service on the platform's shell: the console itself, which needs nothing else."""
    port = free_port()
    log = (tmp_path / "service.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "services.console"], cwd=REPO_ROOT,
                               env={**os.environ, "MLSD_CONSOLE_PORT": str(port)},
                               stdout=log, stderr=subprocess.STDOUT)
    assert process_ready(f"http://127.0.0.1:{port}/readyz", process, 60), "service not ready"
    yield f"127.0.0.1:{port}"
    stop_process(process, 20)


@pytest.fixture
def prometheus(tmp_path: Path, service: str) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: Debian's prometheus package (infra/bootstrap.sh) has it"
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [service]}]}]}))
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    assert process_ready(f"{url}/-/ready", process, 60), "prometheus not ready"
    yield url
    stop_process(process, 20)


def read(url: str) -> dict[str, Vitals]:
    async def go() -> dict[str, Vitals]:
        async with httpx.AsyncClient(timeout=5) as client:
            return await PrometheusVitals(client, url).read(BOXES)
    return asyncio.run(go())


def test_the_board_reads_rate_and_p99_from_prometheus(prometheus: str, service: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        for _ in range(20):  # traffic the service counts (its stylesheet; not a probe)
            assert httpx.get(f"http://{service}/static/console.css", timeout=5).status_code == 200
        found = read(prometheus)
        seen = found[JOB]
        if seen.rate_rps and seen.p99_ms is not None:
            break
        assert time.monotonic() < deadline, f"no rate from Prometheus: {seen}"
        time.sleep(1)
    assert 0 < seen.p99_ms < 250 and seen.lag is None
    # a job Prometheus does not scrape: no traffic, no p99, not an error
    assert found["fraud"] == Vitals(0.0, None, None, None)


def test_a_prometheus_that_does_not_answer_is_named(service: str) -> None:
    with pytest.raises(PrometheusUnavailable, match="ConnectError"):
        read(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PrometheusUnavailable, match="not a query result"):
        read(f"http://{service}/static")  # answers, but not Prometheus's JSON
