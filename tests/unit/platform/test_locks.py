"""exclusive: one holder at a time of a lock file, the model repository's and the lake
compaction's, each holder with its own open file as separate processes have."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

import pytest

from services.common.locks import exclusive


def test_a_second_holder_waits_until_the_first_leaves(tmp_path: Path) -> None:
    lock_file = tmp_path / "models" / "fraud" / ".lock"
    held, entered, leave = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with exclusive(lock_file):
            held.set()
            leave.wait(5)

    def second() -> None:
        held.wait(5)
        with exclusive(lock_file):
            entered.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    assert held.wait(5)
    assert not entered.wait(0.3)   # the first still holds it
    leave.set()
    assert entered.wait(5)
    for thread in threads:
        thread.join(5)


def test_the_lock_files_folder_is_made_and_the_lock_is_free_after_an_error(
        tmp_path: Path) -> None:
    lock_file = tmp_path / "lake" / ".compaction.lock"
    with pytest.raises(RuntimeError), exclusive(lock_file):
        raise RuntimeError("compaction failed")
    with lock_file.open("a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)   # BlockingIOError if still held
