"""The policy file on disk, re-read when it changes: edit, save, and the next decisions use it.

A file that fails to parse or validate is refused with a logged reason and a counted reload
failure; decisions go on with the last good policy. At start-up a bad file stops the service.
"""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

from services.fraud.policy import PolicyError, parse_policy
from services.fraud.rules import RuleEngine

logger = logging.getLogger(__name__)


def load_engine(path: Path) -> RuleEngine:
    """The file's policy, compiled; PolicyError names the file and what is wrong with it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return RuleEngine(parse_policy(data))
    except (OSError, tomllib.TOMLDecodeError, PolicyError) as exc:
        raise PolicyError(f"{path}: {exc}") from exc


class PolicyFile:
    """The current RuleEngine; its file's modification time is checked at most every
    `check_interval_s` seconds, on the calling thread (a stat costs microseconds)."""

    def __init__(self, path: Path, check_interval_s: float = 1.0,
                 on_reload: Callable[[str], None] = lambda outcome: None) -> None:
        self.path = path
        self._interval_s = check_interval_s
        self._on_reload = on_reload
        self._engine = load_engine(path)
        self._stamp = self._modified()
        self._next_check = time.monotonic() + check_interval_s
        self._lock = threading.Lock()

    def engine(self) -> RuleEngine:
        if time.monotonic() >= self._next_check and self._lock.acquire(blocking=False):
            try:
                self._next_check = time.monotonic() + self._interval_s
                self._reload_if_changed()
            finally:
                self._lock.release()
        return self._engine

    def _modified(self) -> tuple[int, int]:
        stat = self.path.stat()
        return stat.st_mtime_ns, stat.st_size

    def _reload_if_changed(self) -> None:
        try:
            stamp = self._modified()
        except OSError:
            return  # mid-rename or removed: keep the policy in hand, look again later
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            engine = load_engine(self.path)
        except PolicyError as exc:
            logger.error("policy file refused; keeping the last good policy",
                         extra={"error": str(exc), "version": self._engine.policy.version})
            self._on_reload("refused")
            return
        logger.info("policy reloaded", extra={"version": engine.policy.version,
                                              "rules": len(engine.policy.rules)})
        self._engine = engine
        self._on_reload("loaded")
