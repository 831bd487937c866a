"""A child process stopped (services/common/processes.py): asked first, killed when it will not
stop in time, left alone once it has exited; real child processes, no servers."""

from __future__ import annotations

import signal
import subprocess
import sys

from services.common.processes import stop_process

# Says it is ready once its SIGTERM handler (or SIG_IGN) is in place, then sleeps.
CHILD = ("import signal, sys, time\n"
         "signal.signal(signal.SIGTERM, signal.{handler})\n"
         "print('ready', flush=True)\n"
         "time.sleep(60)\n")


def child(handler: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", CHILD.format(handler=handler)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


def test_a_child_that_stops_when_asked_exits_on_the_signal() -> None:
    process = child("SIG_DFL")
    assert stop_process(process, timeout_s=10) == -signal.SIGTERM


def test_the_signal_asked_is_the_one_sent() -> None:
    process = child("SIG_IGN")      # ignores SIGTERM, not SIGUSR1
    assert stop_process(process, timeout_s=10, stop_signal=signal.SIGUSR1) == -signal.SIGUSR1


def test_a_child_that_ignores_the_signal_is_killed_after_the_timeout() -> None:
    process = child("SIG_IGN")
    assert stop_process(process, timeout_s=0.2) == -signal.SIGKILL


def test_a_child_that_has_exited_gives_its_exit_code() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    assert stop_process(process, timeout_s=0.2) == 3
