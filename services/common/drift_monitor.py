"""Drift on /metrics: a service feeds the rows its model scored; the PSI of each input and of the
score against that model version's training reference is a gauge, `<service>_drift_psi{column}`.

The reference is read from the model repository beside the version that answered
(DRIFT_REFERENCE_FILE); a version without one (trained before drift references existed) is
logged once and leaves the gauges NaN, which no alert rule fires on. A new version starts a new
window: its rows are compared with its own training data, not the last version's.

`rows_per_call` keeps a random few of each call's rows: a recommender request scores ~160
candidates of one user, so a window of whole requests holds ~60 users, too few for a column
that is one value a user (on the undrifted world, user_activity read 0.13 with whole requests,
0.02 over all 4,899 users and with 10 rows a request: benchmarks/results/
recs_drift_scenario.json); 10 rows a request spread the same window over 1,000 users.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from services.common.drift import DRIFT_REFERENCE_FILE, SCORE, DriftReference, DriftWindow
from services.common.models import ModelRepository
from services.common.models.errors import ModelError
from services.common.telemetry import Metrics

logger = logging.getLogger(__name__)

UPDATE_S = 5.0  # the gauges are recomputed at most this often, on the scoring thread


class DriftMonitor:
    def __init__(self, *, repository: ModelRepository | None, model_name: str,
                 feature_names: Sequence[str], metrics: Metrics, window: int = 10_000,
                 min_rows: int = 500, rows_per_call: int | None = None, seed: int = 0) -> None:
        self._repository = repository
        self._model_name = model_name
        self._names = tuple(feature_names)
        self._window_size = window
        self._min_rows = min_rows
        self._windows: dict[int, DriftWindow | None] = {}
        self._updated = 0.0
        self._lock = threading.Lock()
        self._rows_per_call = rows_per_call
        self._rng = np.random.default_rng(seed)   # drawn under the lock: not thread-safe
        self._last: int | None = None
        # Set, not computed on scrape: a service with several workers exports each worker's
        # gauges from its own files, where a callback would not run.
        self._gauge = metrics.gauge(
            "drift_psi", f"population stability index of each {model_name} model input and of "
            "its score over the last scored rows, against the serving version's training "
            "reference (> 0.25: a major shift; NaN: no reference or too few rows yet)",
            ("column",), multiprocess_mode="livemax")
        self._rows = metrics.gauge("drift_window_rows", "rows in the drift window (the PSI's "
                                   "sample)", multiprocess_mode="livemax")
        self._publish({})

    def observe(self, version: int, matrix: npt.ArrayLike, scores: npt.ArrayLike) -> None:
        """The rows `version` scored (its inputs in feature order) and its scores."""
        window = self._window(version)
        if window is None:
            return
        x, s = np.asarray(matrix), np.asarray(scores)
        if self._rows_per_call is not None and len(x) > self._rows_per_call:
            with self._lock:
                kept = np.sort(self._rng.choice(len(x), self._rows_per_call, replace=False))
            x, s = x[kept], s[kept]
        window.observe(x, s)
        now = time.monotonic()
        with self._lock:
            self._last = version
            due = now - self._updated >= UPDATE_S
            if due:
                self._updated = now
        if due:
            self._publish(window.psi(), window.rows)

    def publish_now(self) -> None:
        """The gauges from the last observed version's window now, not at the next due update
        (a benchmark or a test reading them at once)."""
        window = None if self._last is None else self._windows.get(self._last)
        if window is not None:
            self._publish(window.psi(), window.rows)

    def _publish(self, values: dict[str, float], rows: int = 0) -> None:
        for name in (*self._names, SCORE):
            self._gauge.labels(name).set(values.get(name, math.nan))
        self._rows.set(rows)

    def _window(self, version: int) -> DriftWindow | None:
        if version not in self._windows:
            reference = self._load(version)
            self._windows[version] = (None if reference is None else DriftWindow(
                reference, self._window_size, self._min_rows))
            self._updated = 0.0  # a new version: its first rows publish at once
            self._publish({})
        return self._windows[version]

    def _load(self, version: int) -> DriftReference | None:
        if self._repository is None:
            return None
        try:
            path = self._repository.extra_file(self._model_name, version, DRIFT_REFERENCE_FILE)
            return DriftReference.from_json(path.read_text(), self._names)
        except (OSError, ValueError, KeyError, ModelError) as exc:
            logger.warning("no drift reference for model version: its drift is not measured",
                           extra={"model": self._model_name, "version": version,
                                  "error": str(exc)})
            return None
