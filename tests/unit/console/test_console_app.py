"""The console's routes with no stack behind it: pages still render, every problem is a
readable message with a 4xx (the user's input) or a 503 (a service down), never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.console.app import create_app
from services.console.settings import ConsoleSettings
from tests.harness import free_port

SERVICES = ("INGEST", "MODEL_SERVER", "EXPERIMENTS", "RECOMMENDER", "FRAUD", "STREAM")


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    for name in SERVICES:  # nothing listens on these
        monkeypatch.setenv(f"MLSD_{name}_PORT", str(free_port()))
    monkeypatch.setenv("MLSD_FRAUD_STREAM_METRICS_PORT", str(free_port()))
    settings = ConsoleSettings(console_reports_dir=tmp_path, console_timeout_s=0.5,
                               console_prometheus_url=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/", "/recommendations?user=u42", "/fraud", "/experiments",
                                  "/load"])
def test_every_page_renders_with_the_stack_down(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200 and "<nav>" in response.text


def test_the_board_shows_every_service_down(client: TestClient) -> None:
    text = client.get("/fragments/board").text
    assert text.count('data-health="down"') == 10 and 'data-box="redis"' in text
    assert "(Prometheus did not answer)" in text  # and the board read each service instead


def test_a_service_that_is_down_is_a_503_that_says_so(client: TestClient) -> None:
    response = client.get("/fragments/recommendations", params={"user": "u42"})
    assert response.status_code == 503
    assert "recommender did not answer" in response.text and "make status" in response.text
    response = client.post("/fragments/preset/ordinary")
    assert response.status_code == 503 and "fraud did not answer" in response.text


def test_bad_input_is_a_4xx_with_a_message(client: TestClient) -> None:
    cases = [client.get("/fragments/recommendations", params={"user": "u1", "k": "ten"}),
             client.post("/fragments/watch", content="user=u1&k=5&content_id="),
             client.post("/fragments/score", content="amount=lots&latitude=1&longitude=2"),
             client.post("/fragments/preset/nonsense"),
             client.post("/fragments/load", content="design=fraud&rps=1e9&duration_s=5"),
             client.post("/fragments/load", content="design=mainframe&rps=5&duration_s=5"),
             client.post("/fragments/load", content="%ff%fe=\x00")]
    for response in cases:
        assert 400 <= response.status_code < 500, response.text
        assert 'class="problem"' in response.text and "Traceback" not in response.text


def test_only_pngs_under_the_plot_folders_are_served(client: TestClient,
                                                      tmp_path: Path) -> None:
    (tmp_path / "load").mkdir()
    (tmp_path / "load" / "p99.png").write_bytes(b"\x89PNG")
    (tmp_path / "secret.png").write_bytes(b"\x89PNG")
    assert client.get("/files/reports/p99.png").status_code == 200
    for path in ("/files/reports/../secret.png", "/files/reports/%2e%2e/secret.png",
                 "/files/elsewhere/p99.png", "/files/evaluation/../../pyproject.toml"):
        assert client.get(path).status_code == 404, path
