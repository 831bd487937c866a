"""Drift: the population stability index (PSI) of every model input and of the score, online,
against the distribution the model was trained on (pure, numpy; no I/O).

    training rows ─▶ DriftReference: per column, decile edges + each bin's share ─▶ JSON beside
                     the model version (DRIFT_REFERENCE_FILE)
    live rows ─────▶ DriftWindow: the last `size` rows' bins (a ring) ─▶ psi() per column
                     PSI = sum over bins of (live - ref) x ln(live / ref)

Read as the industry reads it: below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a major
one. Shares are floored at EPSILON so an empty bin gives a large, finite PSI. Edges are
training quantiles: a column with few distinct values (a flag, a count) gets fewer bins, one
per distinct value range, never empty ones.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common.arrays import FloatArray

DRIFT_REFERENCE_FILE = "drift_reference.json"
SCORE = "score"          # the reference's name for the model's output column
BINS = 10
EPSILON = 1e-4
MAJOR_SHIFT = 0.25       # the alert rules' threshold (infra/prometheus/rules/designs.yml)



def psi(expected: Sequence[float] | FloatArray, actual: Sequence[float] | FloatArray) -> float:
    """PSI between two share vectors over the same bins (each sums to 1)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class ColumnReference:
    edges: tuple[float, ...]    # inner edges: bin i holds edges[i-1] < x <= edges[i]
    shares: tuple[float, ...]   # len(edges) + 1 shares of the training rows

    def bins(self, values: FloatArray) -> npt.NDArray[np.intp]:
        return np.searchsorted(np.asarray(self.edges), values, side="left")


def column_reference(values: npt.ArrayLike, bins: int = BINS) -> ColumnReference:
    """Quantile edges of the training values (distinct ones only) and each bin's share."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return ColumnReference((), (1.0,))
    # An edge at the maximum would leave the bin above it empty in training: dropped.
    quantiles = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    edges = tuple(float(e) for e in quantiles[quantiles < x.max()])
    counts = np.bincount(np.searchsorted(np.asarray(edges), x, side="left"),
                         minlength=len(edges) + 1)
    return ColumnReference(edges, tuple(float(c) for c in counts / counts.sum()))


@dataclass(frozen=True)
class DriftReference:
    """One model version's training distribution: its input columns, then SCORE."""

    names: tuple[str, ...]
    columns: tuple[ColumnReference, ...]
    rows: int                   # training rows it was built from
    description: str = ""

    @classmethod
    def of(cls, matrix: npt.ArrayLike, names: Sequence[str], scores: npt.ArrayLike,
           description: str = "", bins: int = BINS) -> DriftReference:
        x = np.asarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValueError(f"matrix must be [rows, {len(names)}], got {x.shape}")
        columns = [column_reference(x[:, j], bins) for j in range(x.shape[1])]
        columns.append(column_reference(scores, bins))
        return cls((*names, SCORE), tuple(columns), int(x.shape[0]), description)

    def to_json(self) -> str:
        return json.dumps({
            "description": self.description, "rows": self.rows, "bins": "training quantiles",
            "columns": [{"name": n, "edges": list(c.edges), "shares": list(c.shares)}
                        for n, c in zip(self.names, self.columns, strict=True)]}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, names: Sequence[str]) -> DriftReference:
        """Refuses a reference whose input columns are not `names` in order (then SCORE)."""
        data = json.loads(text)
        columns = data["columns"]
        found = tuple(c["name"] for c in columns)
        if found != (*names, SCORE):
            raise ValueError(f"drift reference columns {found} are not the model's {names} + "
                             f"{SCORE}")
        built = []
        for c in columns:
            edges, shares = tuple(map(float, c["edges"])), tuple(map(float, c["shares"]))
            if len(shares) != len(edges) + 1 or not math.isclose(sum(shares), 1.0,
                                                                   abs_tol=1e-6):
                raise ValueError(f"drift reference column {c['name']}: shares must be one more "
                                 "than edges and sum to 1")
            built.append(ColumnReference(edges, shares))
        return cls(found, tuple(built), int(data["rows"]), str(data.get("description", "")))


class DriftWindow:
    """The last `size` observed rows, binned against one reference; thread-safe."""

    def __init__(self, reference: DriftReference, size: int = 10_000,
                 min_rows: int = 500) -> None:
        self.reference = reference
        self._size = size
        self._min_rows = min_rows
        self._bins = np.zeros((size, len(reference.columns)), dtype=np.int16)
        # Every column's inner edges in one matrix, padded with +inf: a row is binned in one
        # comparison over all columns instead of one searchsorted call per column (36 calls a
        # batch were 4 % of the fraud service's CPU under load, py-spy).
        counts = [len(c.edges) for c in reference.columns]
        self._edges = np.full((len(counts), max(counts, default=0)), np.inf)
        for j, column in enumerate(reference.columns):
            self._edges[j, :counts[j]] = column.edges
        self._edge_counts = np.asarray(counts, dtype=np.int16)
        self._next = 0
        self._filled = 0
        self._lock = threading.Lock()

    @property
    def rows(self) -> int:
        return self._filled

    def observe(self, matrix: npt.ArrayLike, scores: npt.ArrayLike) -> None:
        """Rows of the model's inputs (in reference order) and their scores."""
        x = np.asarray(matrix, dtype=np.float64)
        s = np.asarray(scores, dtype=np.float64)
        if not len(x):
            return
        x = x[-self._size:]
        s = s[-self._size:]
        binned = self.bins(np.column_stack((x, s)))
        with self._lock:
            positions = (self._next + np.arange(len(binned))) % self._size
            self._bins[positions] = binned
            self._next = int((self._next + len(binned)) % self._size)
            self._filled = min(self._size, self._filled + len(binned))

    def bins(self, rows: FloatArray) -> npt.NDArray[np.int16]:
        """Each value's bin in its column, as ColumnReference.bins (searchsorted, side left)
        finds it: the number of edges below the value; NaN sorts past every edge."""
        binned: npt.NDArray[np.int16] = (self._edges[None, :, :] < rows[:, :, None]).sum(
            axis=2, dtype=np.int16)
        missing = np.isnan(rows)
        if missing.any():
            binned[missing] = np.broadcast_to(self._edge_counts, rows.shape)[missing]
        return binned

    def psi(self) -> dict[str, float]:
        """Each column's PSI over the window; NaN until `min_rows` rows were seen."""
        with self._lock:
            held = self._bins[:self._filled].copy()
        if len(held) < self._min_rows:
            return {name: math.nan for name in self.reference.names}
        values = {}
        for j, (name, column) in enumerate(zip(self.reference.names, self.reference.columns,
                                               strict=True)):
            counts = np.bincount(held[:, j], minlength=len(column.shares))
            values[name] = psi(column.shares, counts / counts.sum())
        return values
