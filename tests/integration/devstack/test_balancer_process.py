"""HAProxy, configured as make run-cluster configures it, in front of two real model servers: one
is killed (kill -9) under open-loop load and no client request fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.models import ModelRepository
from services.common.models.testing import logistic_model
from services.common.probe import http_ready
from services.devstack.balancer import Balanced, haproxy_config
from tests.chaos.load import open_loop
from tests.harness import REPO_ROOT, free_port

pytestmark = pytest.mark.integration

BODY = {"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP32",
                    "data": [1.0, 1.0]}]}


def start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, **env},
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def await_ready(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not http_ready(url, timeout_s=0.5):
        assert time.monotonic() < deadline, f"{url} never answered"
        time.sleep(0.1)


def test_an_instance_killed_under_load_costs_no_request(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "models")
    repository.register("fraud", logistic_model([0.5, -0.5], 0.0), feature_names=("a", "b"),
                        metrics={}, training_data_hash="h", description="test")
    public, first, second = free_port(), free_port(), free_port()
    instances = [start([sys.executable, "-m", "services.modelserver"], tmp_path / f"m{n}.log",
                       {"MLSD_MODEL_REPOSITORY": str(repository.root),
                        "MLSD_MODEL_SERVER_PORT": str(port), "MLSD_ENVIRONMENT": "test"})
                 for n, port in enumerate((first, second))]
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config([Balanced("model-server", "MLSD_MODEL_SERVER_PORT",
                                               public, (first, second))],
                                     tmp_path / "haproxy.sock"))
    balancer = start(["haproxy", "-db", "-W", "-f", str(config)], tmp_path / "haproxy.log", {})
    try:
        for port in (first, second, public):
            await_ready(f"http://127.0.0.1:{port}/readyz")
        time.sleep(2.5)  # both servers seen healthy by HAProxy's checks (rise 2, every 1 s)

        async def infer(client: httpx.AsyncClient, n: int) -> tuple[int, dict[str, Any]]:
            response = await client.post(f"http://127.0.0.1:{public}/v2/models/fraud/infer",
                                         json=BODY)
            return response.status_code, {}

        def kill_first() -> None:
            instances[0].send_signal(signal.SIGKILL)

        answers = open_loop(infer, 100.0, 10.0, [(3.0, kill_first)], timeout_s=10.0)
        statuses = Counter(a.status for a in answers)
        assert statuses == Counter({200: 1000}), statuses
        with httpx.Client() as client:  # HAProxy says which server it took out, and why
            assert client.get(f"http://127.0.0.1:{public}/readyz").status_code == 200
    finally:
        balancer.terminate()
        for process in (*instances, balancer):
            if process.poll() is None:
                process.terminate()
            process.wait(20)
