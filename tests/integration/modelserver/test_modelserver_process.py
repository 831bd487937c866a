"""The real model server process on a free port, called by our client, the CLI and tritonclient."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from services.common.models import (
    LocalModelClient,
    ModelError,
    ModelRepository,
    ModelUnavailable,
    RemoteModelClient,
)
from services.common.probe import http_ready
from tests.harness import REPO_ROOT, ServerProcess, free_port

pytestmark = pytest.mark.integration

FEATURES = tuple(f"f{i}" for i in range(8))
TOKEN = "integration-admin-token-0123456789"


@dataclass
class RunningServer:
    server: ServerProcess
    repository: ModelRepository
    rows: np.ndarray

    @property
    def url(self) -> str:
        return self.server.address


def classifier(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(500, len(FEATURES))).astype(np.float32)
    labels = (rows[:, 0] - rows[:, seed % len(FEATURES)] + rng.normal(size=500) > 0).astype(int)
    estimator = LogisticRegression().fit(rows, labels)
    return bytes(to_onnx(estimator, rows[:1], options={id(estimator): {"zipmap": False}})
                 .SerializeToString())


def start_model_server(repository: ModelRepository, workdir: Path) -> ServerProcess:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "modelserver.log"
    env = {**os.environ, "MLSD_MODEL_REPOSITORY": str(repository.root),
           "MLSD_MODEL_SERVER_PORT": str(port), "MLSD_MODEL_SERVER_ADMIN_TOKEN": TOKEN,
           "MLSD_MODEL_RELOAD_INTERVAL_S": "0.2", "MLSD_ENVIRONMENT": "test"}
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "services.modelserver"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                   start_new_session=True)
    server = ServerProcess("modelserver", process, log_path, url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the model server exited with {process.returncode}:\n"
                        f"{server.log_tail()}")
        if http_ready(f"{url}/readyz", timeout_s=0.5):
            return server
        time.sleep(0.1)
    server.stop()
    pytest.fail(f"the model server was not ready after 30 s:\n{server.log_tail()}")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningServer]:
    repository = ModelRepository(tmp_path / "models")
    for seed in (1, 2):
        repository.register("fraud", classifier(seed), feature_names=FEATURES,
                            metrics={"auc": 0.9}, training_data_hash=f"seed-{seed}",
                            description=f"seed {seed}")
    server = start_model_server(repository, tmp_path)
    rows = np.random.default_rng(0).normal(size=(256, len(FEATURES))).astype(np.float32)
    yield RunningServer(server, repository, rows)
    server.stop()


def test_the_remote_client_gets_what_onnx_runtime_answers_in_process(
        running: RunningServer) -> None:
    with RemoteModelClient(running.url, timeout_s=2.0,
                           expected_features={"fraud": FEATURES}) as remote, \
            LocalModelClient(running.repository, reload_interval_s=None) as local:
        for rows in (running.rows[:1], running.rows):  # one row, then a batch of 256
            over_http = remote.predict("fraud", rows)
            in_process = local.predict("fraud", rows)
            assert over_http.model_version == in_process.model_version == 1
            np.testing.assert_array_equal(over_http.outputs["probabilities"],
                                          in_process.outputs["probabilities"])
            np.testing.assert_array_equal(over_http.outputs["label"], in_process.outputs["label"])


def test_json_and_binary_tensors_give_the_same_answer(running: RunningServer) -> None:
    with RemoteModelClient(running.url, timeout_s=2.0, binary=True) as binary, \
            RemoteModelClient(running.url, timeout_s=2.0, binary=False) as plain:
        np.testing.assert_array_equal(binary.predict("fraud", running.rows).outputs["label"],
                                      plain.predict("fraud", running.rows).outputs["label"])


def test_a_promotion_from_the_command_line_reaches_the_running_server_without_a_failed_request(
        running: RunningServer) -> None:
    versions: list[int] = []
    failures: list[ModelError] = []
    stop = threading.Event()

    def predict_until_stopped() -> None:
        with RemoteModelClient(running.url, timeout_s=2.0) as client:
            while not stop.is_set():
                try:
                    versions.append(client.predict("fraud", running.rows[:8]).model_version)
                except ModelError as exc:
                    failures.append(exc)

    worker = threading.Thread(target=predict_until_stopped)
    worker.start()
    time.sleep(0.5)
    promoted_at = time.monotonic()
    subprocess.run([sys.executable, "-m", "services.common.models", "--root",
                    str(running.repository.root), "promote", "fraud", "2"],
                   check=True, cwd=REPO_ROOT, capture_output=True)
    while 2 not in versions and time.monotonic() - promoted_at < 10:
        time.sleep(0.05)
    swapped_after_s = time.monotonic() - promoted_at
    time.sleep(0.3)
    stop.set()
    worker.join()

    assert failures == []
    assert versions[0] == 1 and versions[-1] == 2
    first_new = versions.index(2)
    assert set(versions[first_new:]) == {2}  # once swapped, never back
    assert swapped_after_s < 3.0


def test_rollback_over_http_needs_the_token_and_takes_effect_at_once(
        running: RunningServer) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=running.url, timeout=5.0) as http:
        assert http.post("/v1/admin/models/fraud/promote", json={"version": 2}).status_code == 401
        assert http.post("/v1/admin/models/fraud/promote", json={"version": 2},
                         headers=auth).json()["serving_version"] == 2
        rolled_back = http.post("/v1/admin/models/fraud/rollback", headers=auth)
    assert rolled_back.json()["serving_version"] == 1
    with RemoteModelClient(running.url, timeout_s=2.0) as client:
        assert client.predict("fraud", running.rows[:1]).model_version == 1


def test_the_server_logs_json_and_stops_cleanly_on_sigterm(running: RunningServer) -> None:
    process = running.server.process
    process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells why.
    assert process.wait(timeout=15) == -signal.SIGTERM
    records = [json.loads(line) for line in running.server.log_path.read_text().splitlines()
               if line.startswith("{")]
    messages = [r["message"] for r in records if r["service"] == "modelserver"]
    assert "models loaded" in messages
    assert "Application shutdown complete." in messages


def test_a_server_that_is_gone_is_model_unavailable_within_the_timeout(
        running: RunningServer) -> None:
    running.server.stop()
    with RemoteModelClient(running.url, timeout_s=0.2) as client:
        start = time.monotonic()
        with pytest.raises(ModelUnavailable):
            client.predict("fraud", running.rows[:1])
        assert time.monotonic() - start < 1.0
        assert not client.ready("fraud")


def test_tritonclient_http_works_unchanged(running: RunningServer) -> None:
    import tritonclient.http as triton  # noqa: PLC0415 (a dev dependency; its absence must fail)
    client = triton.InferenceServerClient(running.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("fraud")
    metadata = client.get_model_metadata("fraud")
    assert metadata["inputs"][0]["shape"] == [-1, len(FEATURES)]

    rows = running.rows[:16]
    binary = triton.InferInput("X", list(rows.shape), "FP32")
    binary.set_data_from_numpy(rows)  # the client's default: binary tensor data
    by_default = client.infer("fraud", [binary])
    plain = triton.InferInput("X", list(rows.shape), "FP32")
    plain.set_data_from_numpy(rows, binary_data=False)
    as_json = client.infer("fraud", [plain], model_version="1", request_id="t-1",
                           outputs=[triton.InferRequestedOutput("probabilities",
                                                                binary_data=False)])

    with LocalModelClient(running.repository, reload_interval_s=None) as local:
        expected = local.predict("fraud", rows).outputs["probabilities"]
    np.testing.assert_array_equal(by_default.as_numpy("probabilities"), expected)
    np.testing.assert_array_equal(as_json.as_numpy("probabilities"), expected)
    assert as_json.get_response()["id"] == "t-1"
    with pytest.raises(triton.InferenceServerException, match="400"):
        wrong = triton.InferInput("X", [1, 3], "FP32")
        wrong.set_data_from_numpy(np.zeros((1, 3), np.float32))
        client.infer("fraud", [wrong])
