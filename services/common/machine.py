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


def describe() -> dict[str, Any]:
    """The machine as a results file records it; the load average says what else ran then."""
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "os": platform.platform(),
            "python": platform.python_version(), "load_average": list(os.getloadavg())}
