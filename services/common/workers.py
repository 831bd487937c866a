"""Several worker processes behind one port: uvicorn's supervisor, with the workers' metrics merged.

One Python process runs on one core at a time (the interpreter lock), so a CPU-bound service
serves more by running more processes. The parent binds the port once and starts `workers`
processes that accept from that one socket; it restarts a worker that dies and stops them all on
SIGTERM. Each worker builds its own app from the environment (`factory`, an import string such
as "services.fraud.__main__:worker_app"), so each has its own clients, caches and breaker; what
must be shared lives in Redis.

Metrics use prometheus_client's multiprocess mode: the parent makes a fresh directory per start
and names it in PROMETHEUS_MULTIPROC_DIR before the workers start; each worker writes its samples
to files there, and /metrics on any worker serves the sum of all (`Metrics.exposed`). The files of
a dead worker stay, so counters never go backwards; its live-mode gauges are dropped. The
directory is removed when the parent stops.

Workers are forked from the parent, which has imported the service already, as gunicorn's
`--preload` does; uvicorn spawns them, and a spawned worker imports everything again: about
1.5 s of CPU each on the project's slower machine, taken from the workers still serving while a
dead one is replaced (the soak's misses beside a worker kill, docs/reliability.md). Each worker
still builds its own app, clients and model sessions after the fork: the parent makes none.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from socket import socket
from typing import Literal

import psutil
import uvicorn
import uvicorn._subprocess
from fastapi import FastAPI
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import mark_process_dead
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from services.common.http import SettingsT, serve
from services.common.settings import PlatformSettings
from services.common.telemetry import MULTIPROCESS_DIR_VARIABLE, configure_logging

logger = logging.getLogger(__name__)


@contextmanager
def multiprocess_metrics_dir(service: str) -> Iterator[Path]:
    """A fresh, empty directory for this start's metric files, named in the environment the
    workers inherit; removed afterwards (an old run's counts must not add to this run's)."""
    directory = Path(tempfile.mkdtemp(prefix=f"{service}-metrics-"))
    previous = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    os.environ[MULTIPROCESS_DIR_VARIABLE] = str(directory)
    # prometheus_client picks its value class from the environment once, when it is imported:
    # this parent imported it before the directory existed, and a forked worker inherits the
    # choice (a spawned one imports it again). Chosen again now, for the metrics the workers
    # build after the fork; the parent builds none.
    single_process = prometheus_values.ValueClass
    prometheus_values.ValueClass = prometheus_values.get_value_class()  # type: ignore[no-untyped-call]
    try:
        yield directory
    finally:
        prometheus_values.ValueClass = single_process
        if previous is None:
            os.environ.pop(MULTIPROCESS_DIR_VARIABLE, None)
        else:
            os.environ[MULTIPROCESS_DIR_VARIABLE] = previous
        shutil.rmtree(directory, ignore_errors=True)


class _Supervisor(Multiprocess):
    """uvicorn's worker supervisor, telling prometheus_client when a worker has died."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket], metrics_dir: Path) -> None:
        super().__init__(config, sockets)
        self._metrics_dir = metrics_dir

    def keep_subprocess_alive(self) -> None:
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        for pid in before - {process.pid for process in self.processes}:
            if pid is not None:
                mark_process_dead(pid, str(self._metrics_dir))  # type: ignore[no-untyped-call]

    def failed_to_start(self) -> bool:
        return any(process.exitcode == STARTUP_FAILURE for process in self.processes)


def is_worker(child: psutil.Process) -> bool:
    """Whether a child of the supervising parent is one of its workers, forked or spawned: every
    child is but multiprocessing's resource tracker, which a spawning parent starts beside them.
    NoSuchProcess if it has gone."""
    return not any("resource_tracker" in part for part in child.cmdline())


def workers_of(parent_pid: int) -> list[psutil.Process]:
    """The live workers under a supervising parent: its children but the resource tracker, and
    none that has died (a killed worker stays a zombie until its parent reaps it) or gone."""
    workers = []
    for child in psutil.Process(parent_pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and is_worker(child):
                workers.append(child)
        except psutil.NoSuchProcess:
            continue
    return workers


def supervisor_of(process: psutil.Process) -> psutil.Process:
    """The worker supervisor a process on a service's port belongs to: its parent when it is a
    worker (forked: its parent's command line; spawned: multiprocessing's), else itself."""
    parent = process.parent()
    command = process.cmdline()
    if parent is not None and (parent.cmdline() == command
                               or any("spawn_main" in part for part in command)):
        return parent
    return process


def start_workers_by(method: Literal["fork", "spawn"]) -> None:
    """uvicorn's supervisor starts every worker, first, replacement or added, through its
    module's multiprocessing context (`uvicorn._subprocess.spawn`; uvicorn is pinned): this sets
    it. Called in the supervising parent, whose only thread is the supervisor's (BLAS runs one
    thread a process here, `blas_threads`): a fork copies no other thread's held lock."""
    uvicorn._subprocess.spawn = multiprocessing.get_context(method)  # type: ignore[assignment]


def serve_workers(factory: str, settings: PlatformSettings, host: str, port: int,
                  workers: int) -> None:
    """`python -m services.<name>` with `workers` processes on host:port; returns when they have
    stopped (SIGTERM or SIGINT), and exits with uvicorn's start-up failure code if a worker could
    not start (a broken app fails the same way on every restart: better to stop and say so)."""
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    start_workers_by(settings.workers_start)
    with multiprocess_metrics_dir(settings.service_name) as metrics_dir:
        config = uvicorn.Config(factory, factory=True, host=host, port=port, workers=workers,
                                log_config=None, access_log=False)
        supervisor = _Supervisor(config, [config.bind_socket()], metrics_dir)
        logger.info("starting workers", extra={"workers": workers, "port": port,
                                               "metrics_dir": str(metrics_dir)})
        supervisor.run()
    if supervisor.failed_to_start():
        sys.exit(STARTUP_FAILURE)


def serve_one_or_workers(create_app: Callable[[SettingsT], FastAPI], factory: str,
                         settings: SettingsT, host: str, port: int, workers: int) -> None:
    """`python -m services.<name>` for a service that may run several workers: in this process
    when one is asked for and none is to be added later (`workers_supervised` off), else
    `workers` processes under serve_workers, each built by `factory` (its worker_app)."""
    if workers == 1 and not settings.workers_supervised:
        serve(create_app, settings, host, port)
    else:
        serve_workers(factory, settings, host, port, workers)


def worker_app_from(settings_type: Callable[[], SettingsT],
                    create_app: Callable[[SettingsT], FastAPI]) -> FastAPI:
    """One worker's app, built in the worker: settings and clients are not shared across
    processes, each reads the same environment."""
    settings = settings_type()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    return create_app(settings)
