"""Definitions held in process and refreshed from the store on a thread: reads never wait on Redis.

    in_file = load_definitions_file(Path("config/experiments/experiments.toml"))
    cache = DefinitionCache(RedisDefinitionStore(client, ns), interval_s=2.0,
                            seed=in_file, fallback=in_file)
    cache.start()                        # one refresh now, then one every interval_s
    definition = cache.get("rec-algorithm")

`seed`: definitions stored when their key is absent (HSETNX), by the first refresh that reaches
the store; a key already stored (changed through the admin API) is never overwritten.

Each refresh costs one GET of the version; the definitions are read and parsed only when it
moved. The current set is an immutable mapping swapped whole, so a reader sees one version or the
next, never a mix. If the store is down the last good set stays (at start-up: `fallback`, the
version-controlled file); a stored definition that stops validating keeps its last good version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Literal

from services.designs.experiments.definitions import ExperimentDefinition
from services.designs.experiments.store import DefinitionStore

logger = logging.getLogger(__name__)

Outcome = Literal["loaded", "unchanged", "failed"]
Source = Literal["store", "fallback"]


class DefinitionCache:
    def __init__(self, store: DefinitionStore, interval_s: float = 2.0,
                 seed: Sequence[ExperimentDefinition] = (),
                 fallback: Sequence[ExperimentDefinition] = (),
                 on_refresh: Callable[[Outcome], None] = lambda outcome: None) -> None:
        self._store = store
        self._seed = list(seed)   # emptied once stored
        self._interval_s = interval_s
        self._on_refresh = on_refresh
        self._definitions: Mapping[str, ExperimentDefinition] = MappingProxyType(
            {d.key: d for d in fallback})
        self._version: int | None = None   # None until the store answered once
        self._refreshed_at: float | None = None
        self._failing = False
        self._lock = threading.Lock()      # one refresh at a time (thread and explicit calls)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="experiment-definitions",
                                        daemon=True)

    @property
    def source(self) -> Source:
        return "fallback" if self._version is None else "store"

    @property
    def version(self) -> int | None:
        """The store's version of the current set; None while serving the fallback."""
        return self._version

    def seconds_since_refresh(self) -> float | None:
        """Since the store last answered; None if it never did."""
        at = self._refreshed_at
        return None if at is None else time.monotonic() - at

    def get(self, key: str) -> ExperimentDefinition | None:
        return self._definitions.get(key)

    def all(self) -> list[ExperimentDefinition]:
        """Every definition, sorted by key."""
        return sorted(self._definitions.values(), key=lambda d: d.key)

    def running(self) -> list[ExperimentDefinition]:
        return [d for d in self.all() if d.status == "running"]

    def start(self) -> None:
        self.refresh()
        self._thread.start()

    def close(self, join_timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(join_timeout_s)

    def refresh(self) -> Outcome:
        """Read the store once if its version moved; never raises."""
        with self._lock:
            outcome = self._refresh()
        self._on_refresh(outcome)
        return outcome

    def _refresh(self) -> Outcome:
        try:
            if self._seed:
                added = self._store.add_missing(self._seed)
                logger.info("experiment definitions seeded", extra={"added": added})
                self._seed = []
            version = self._store.version()
            if version == self._version:
                self._succeeded()
                return "unchanged"
            snapshot = self._store.snapshot()
        except Exception as exc:  # whatever the store raised, the last good set stays
            if not self._failing:
                logger.warning("experiment definitions not refreshed; keeping the last good set",
                               extra={"error": f"{type(exc).__name__}: {exc}",
                                      "source": self.source, "version": self._version})
            self._failing = True
            return "failed"
        current = self._definitions
        fresh = {d.key: d for d in snapshot.definitions}
        fresh.update({key: current[key] for key in snapshot.invalid if key in current})
        self._definitions = MappingProxyType(fresh)
        self._version = snapshot.version
        self._succeeded()
        logger.info("experiment definitions loaded",
                    extra={"version": snapshot.version, "experiments": sorted(fresh)})
        return "loaded"

    def _succeeded(self) -> None:
        if self._failing:
            logger.info("experiment definitions refresh recovered")
        self._failing = False
        self._refreshed_at = time.monotonic()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            self.refresh()
