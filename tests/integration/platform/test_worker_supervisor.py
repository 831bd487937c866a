"""The worker supervisor's workers as the autoscaler and the chaos tests find them, forked and
spawned alike (services/common/workers.py): real processes on a real port. The autoscaler
counted workers by multiprocessing's spawn command line, so forked workers read as none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from services.autoscaler.observe import supervisor_pid, worker_count
from services.common.loopback import free_port
from services.common.workers import is_worker, workers_of

pytestmark = pytest.mark.integration

SERVE = ("from services.common.settings import PlatformSettings\n"
         "from services.common.workers import serve_workers\n"
         "serve_workers('tests.support.worker_app:app', PlatformSettings(), '127.0.0.1', "
         "{port}, 2)")


def await_count(parent: int, count: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while worker_count(parent) != count:
        assert time.monotonic() < deadline, f"{worker_count(parent)} workers, not {count}"
        time.sleep(0.05)


@pytest.fixture(params=["fork", "spawn"])
def supervisor(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {**os.environ, "MLSD_WORKERS_START": request.param}
    process = subprocess.Popen([sys.executable, "-c", SERVE.format(port=port)], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "never served"
            time.sleep(0.1)
        yield process, port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_its_workers_are_counted_and_its_supervisor_found_from_its_port(
        supervisor: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = supervisor
    await_count(process.pid, 2)
    assert supervisor_pid(port) == process.pid


def test_a_killed_worker_is_replaced_and_counted_again(
        supervisor: tuple[subprocess.Popen[bytes], int]) -> None:
    process, _ = supervisor
    await_count(process.pid, 2)
    victim = next(child for child in psutil.Process(process.pid).children() if is_worker(child))
    victim.kill()
    deadline = time.monotonic() + 30
    while victim.pid in {child.pid for child in psutil.Process(process.pid).children()}:
        assert time.monotonic() < deadline, "the killed worker was never reaped"
        time.sleep(0.05)
    await_count(process.pid, 2)


def test_its_workers_are_its_live_children_but_the_resource_tracker(
        supervisor: tuple[subprocess.Popen[bytes], int]) -> None:
    """A killed worker the supervisor has not reaped yet (it is stopped) is a zombie, not a
    worker; spawned, the resource tracker beside the workers is none either."""
    process, _ = supervisor
    await_count(process.pid, 2)
    workers = workers_of(process.pid)
    others = [child for child in psutil.Process(process.pid).children()
              if child.pid not in {worker.pid for worker in workers}]
    assert len(workers) == 2 and len(others) <= 1
    assert all("resource_tracker" in " ".join(other.cmdline()) for other in others)
    victim, survivor = workers
    process.send_signal(signal.SIGSTOP)
    try:
        victim.kill()
        deadline = time.monotonic() + 10
        while victim.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the killed worker never died"
            time.sleep(0.02)
        assert [w.pid for w in workers_of(process.pid)] == [survivor.pid]
    finally:
        process.send_signal(signal.SIGCONT)
    await_count(process.pid, 2)
