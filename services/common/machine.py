"""What machine a measurement ran on: CPU model, cores, OS, Python, load average (results JSON)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return platform.processor() or "unknown"
    return next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")), platform.processor() or "unknown")


def usable_cpus() -> int:
    """The cores this process may run on (taskset, a container's cpuset), not the host's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def describe() -> dict[str, Any]:
    """The machine as a results file records it; the load average says what else ran then."""
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "nproc": usable_cpus(),
            "os": platform.platform(), "python": platform.python_version(),
            "load_average": list(os.getloadavg())}
