"""A service's worker processes as the operating system sees them: find, kill, await a new one."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.multiprocess import MultiProcessCollector

from services.common.workers import workers_of


def live_workers(parent_pid: int) -> set[int]:
    """The uvicorn workers under a service's parent process that have not died
    (services/common/workers.py)."""
    return {worker.pid for worker in workers_of(parent_pid)}


def await_workers(parent_pid: int, count: int, timeout_s: float = 30.0) -> set[int]:
    """The worker set once it has `count` live members (or AssertionError)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = live_workers(parent_pid)
        if len(pids) == count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"{parent_pid} has not {count} workers after {timeout_s} s")


def await_started(log: Path, count: int, timeout_s: float = 60.0) -> None:
    """Until a service's log says `count` workers finished their start-up (uvicorn's
    "Application startup complete."): a worker's process exists well before it accepts, and
    one still starting takes CPU from the first requests (or AssertionError)."""
    deadline = time.monotonic() + timeout_s
    while log.read_text(errors="replace").count("Application startup complete") < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{log.name}: fewer than {count} workers started")
        time.sleep(0.05)


def jvm_options(pid: int) -> list[str]:
    """The -XX and -Xshare options a JVM runs with, from its command line (a Kafka node's
    script execs java, so the node's process is the JVM): which compiler and class archive a
    soak's brokers ran, as started, not as configured (infra/kafka/cluster-node.sh)."""
    return [arg for arg in psutil.Process(pid).cmdline()
            if arg.startswith(("-XX:TieredStopAtLevel", "-XX:SharedArchiveFile", "-Xshare"))]


def kill_worker(pid: int) -> None:
    """kill -9: the worker's open connections die with it, as in a crash."""
    psutil.Process(pid).send_signal(signal.SIGKILL)


def worker_requests(pid: int, route_part: str) -> int:
    """Requests a worker has answered on routes containing `route_part`, from its own file of
    the service's multiprocess metrics (services/common/workers.py), found among the files it
    holds open (a forked worker's /proc environ is its parent's at exec, without the metrics
    directory the parent named later): the merged /metrics says how many in all, this says
    which worker served them. 0 before its first answer (no file yet)."""
    files = sorted({f.path for f in psutil.Process(pid).open_files()  # held more than once
                    if Path(f.path).name == f"histogram_{pid}.db"})
    total = 0.0
    for metric in MultiProcessCollector.merge(files) if files else []:
        for sample in metric.samples:
            if sample.name.endswith("http_request_duration_seconds_count") \
                    and route_part in sample.labels.get("route", ""):
                total += sample.value
    return int(total)


def worker_connections(pid: int, port: int) -> int:
    """Established TCP connections a worker holds on the service's port."""
    return sum(1 for c in psutil.Process(pid).net_connections(kind="tcp")
               if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)


class WorkerSampler:
    """Every `every_s`, each live worker's requests served, CPU seconds and connections: how a
    service's load is spread over its workers, over time."""

    def __init__(self, parent_pid: int, port: int, route_part: str, every_s: float = 1.0) -> None:
        self._parent, self._port, self._route = parent_pid, port, route_part
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()
        self.samples: list[dict[str, Any]] = []

    def __enter__(self) -> WorkerSampler:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._sample()

    def _sample(self) -> None:
        workers: dict[str, dict[str, float]] = {}
        for pid in sorted(live_workers(self._parent)):
            try:
                cpu = psutil.Process(pid).cpu_times()
                workers[str(pid)] = {"requests": worker_requests(pid, self._route),
                                     "cpu_s": round(cpu.user + cpu.system, 2),
                                     "connections": worker_connections(pid, self._port)}
            except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError):
                continue  # a worker that died or is still starting
        machine = psutil.cpu_times()
        self.samples.append({"t_s": round(time.monotonic() - self._start, 1),
                             # the whole machine's idle CPU seconds (all cores): whether the
                             # workers had cores left to grow into
                             "machine_idle_s": round(machine.idle + machine.iowait, 2),
                             "workers": workers})

    def idle_cores(self, from_s: float, to_s: float) -> float | None:
        """The machine's idle cores on average from the first sample at or after `from_s` to the
        last at or before `to_s` (None: fewer than two samples in between)."""
        inside = [s for s in self.samples if from_s <= s["t_s"] <= to_s]
        if len(inside) < 2 or inside[-1]["t_s"] <= inside[0]["t_s"]:
            return None
        idle = float(inside[-1]["machine_idle_s"] - inside[0]["machine_idle_s"])
        elapsed = float(inside[-1]["t_s"] - inside[0]["t_s"])
        return round(idle / elapsed, 2)

    def between(self, from_s: float, to_s: float) -> dict[str, dict[str, float]]:
        """Per worker, what it served and burnt from the first sample at or after `from_s` to
        the last at or before `to_s` (a worker started in between counts from zero)."""
        inside = [s for s in self.samples if from_s <= s["t_s"] <= to_s]
        if not inside:
            return {}
        first, last = inside[0]["workers"], inside[-1]["workers"]
        zero = {"requests": 0.0, "cpu_s": 0.0}
        return {pid: {"requests": int(now["requests"] - first.get(pid, zero)["requests"]),
                      "cpu_s": round(now["cpu_s"] - first.get(pid, zero)["cpu_s"], 2),
                      "connections_at_end": int(now["connections"])}
                for pid, now in last.items()}
