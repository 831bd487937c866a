"""A service's worker processes as the operating system sees them: find, kill, await a new one."""

from __future__ import annotations

import signal
import time

import psutil


def worker_pids(parent_pid: int) -> set[int]:
    """The uvicorn workers under a service's parent process (services/common/workers.py).

    The workers are multiprocessing "spawn" children; the resource tracker multiprocessing may
    start beside them is a child too, and is not a worker.
    """
    pids = set()
    for child in psutil.Process(parent_pid).children():
        try:
            command = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "spawn_main" in command and "resource_tracker" not in command:
            pids.add(child.pid)
    return pids


def live_workers(parent_pid: int) -> set[int]:
    """The workers that have not died (a killed one stays a zombie until its parent reaps it)."""
    return {pid for pid in worker_pids(parent_pid) if _alive(pid)}


def await_workers(parent_pid: int, count: int, timeout_s: float = 30.0) -> set[int]:
    """The worker set once it has `count` live members (or AssertionError)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = live_workers(parent_pid)
        if len(pids) == count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"{parent_pid} has not {count} workers after {timeout_s} s")


def kill_worker(pid: int) -> None:
    """kill -9: the worker's open connections die with it, as in a crash."""
    psutil.Process(pid).send_signal(signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
