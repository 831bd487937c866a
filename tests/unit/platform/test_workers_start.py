"""How the worker supervisor starts a worker (services/common/workers.py): forked from the parent
by default, spawned when set. Checked through uvicorn's own get_subprocess, the call its
supervisor makes for every worker, first, replacement or added: a uvicorn upgrade that stops
reading the module's context fails here, not silently in a soak."""

from __future__ import annotations

from multiprocessing.context import ForkProcess, SpawnProcess

import pytest
import uvicorn
import uvicorn._subprocess
from uvicorn._subprocess import get_subprocess

from services.common.settings import PlatformSettings
from services.common.workers import start_workers_by


def _never_run(sockets: list[object] | None = None) -> None:
    raise AssertionError("the process is built, not started")


@pytest.fixture(autouse=True)
def _restore_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvicorn._subprocess, "spawn", uvicorn._subprocess.spawn)


def worker_process() -> object:
    return get_subprocess(uvicorn.Config("tests:app"), _never_run, [])


def test_workers_are_forked_by_default() -> None:
    start_workers_by(PlatformSettings().workers_start)
    assert isinstance(worker_process(), ForkProcess)


def test_spawned_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_WORKERS_START", "spawn")
    start_workers_by(PlatformSettings().workers_start)
    assert isinstance(worker_process(), SpawnProcess)


def test_any_other_method_is_refused_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSD_WORKERS_START", "forkserver")
    with pytest.raises(ValueError, match="workers_start"):
        PlatformSettings()
