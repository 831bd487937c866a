"""A child process stopped: asked with a signal, killed if it has not stopped in time."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any], timeout_s: float = 30.0,
                 stop_signal: signal.Signals = signal.SIGTERM) -> int:
    """Sends `stop_signal` unless the process has exited, waits up to `timeout_s` for it to
    stop, then kills it (SIGKILL); returns its exit code once it is reaped."""
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
