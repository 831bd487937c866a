"""`make run` while `make run-cluster` runs (what `make seed` and the demo's jobs call first):
it checks the cluster and starts nothing of the single-node stack; without the cluster's settings
in the shell it says how to get them, where the job after it would have looked for 6379 and
9092 (a fresh clone's `set -a; source .state/cluster/env; make seed` failed that way)."""

from __future__ import annotations

from typing import Any

import pytest

import services.devstack.__main__ as devstack
from services.common.settings import PlatformSettings
from services.devstack.parts import Part


class Supervisor:
    def __init__(self) -> None:
        self.started = False

    def startAllProcesses(self, wait: bool) -> None:  # noqa: N802 (supervisor's XML-RPC name)
        self.started = True


@pytest.fixture
def cluster_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Supervisor:
    supervisor = Supervisor()
    monkeypatch.setattr(devstack, "STATE", tmp_path)
    monkeypatch.setattr(devstack, "supervisord_running", lambda: True)
    monkeypatch.setattr(devstack, "cluster_running", lambda: True)
    monkeypatch.setattr(devstack, "supervisor", lambda: supervisor)
    monkeypatch.setattr(devstack, "cluster_parts",
                        lambda: [Part("kafka-1", "127.0.0.1:19092", lambda: True)])
    monkeypatch.setattr(devstack, "stack_parts", lambda settings: pytest.fail(
        "the single-node stack's parts were checked"))
    return supervisor


def test_with_the_clusters_settings_the_jobs_use_it(
        cluster_runs: Supervisor, capsys: pytest.CaptureFixture[str]) -> None:
    assert devstack.run(PlatformSettings(redis_cluster=True), timeout_s=1) == 0
    assert not cluster_runs.started
    assert "the jobs use it" in capsys.readouterr().out


def test_without_them_it_says_how_to_get_them(
        cluster_runs: Supervisor, capsys: pytest.CaptureFixture[str]) -> None:
    assert devstack.run(PlatformSettings(redis_cluster=False), timeout_s=1) == 1
    assert not cluster_runs.started
    out = capsys.readouterr().out
    assert "source .state/cluster/env" in out


def test_an_unhealthy_cluster_fails(cluster_runs: Supervisor, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(devstack, "cluster_parts",
                        lambda: [Part("kafka-1", "127.0.0.1:19092", lambda: False)])
    monkeypatch.setattr(devstack, "process_info",
                        lambda: {"kafka-1": {"statename": "FATAL"}})
    assert devstack.run(PlatformSettings(redis_cluster=True), timeout_s=1) == 1
    assert "not healthy" in capsys.readouterr().out
