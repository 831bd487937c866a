"""Paired bootstrap intervals for the trainers' gates: both models judged on the same resamples.

    units (held-out lists, cards) ─▶ resample with replacement, `resamples` times (one seed)
      ─▶ statistic(resample) for each: a mean of paired differences, or a difference of two
         models' whole-set metrics (average precision) recomputed on the resample
      ─▶ the percentile interval of those values

Pairing is what makes a small gain measurable: each resample holds the same rows for both
models, so what varies together (a hard week, a card with ten frauds) cancels in the difference.
The ranker's gate resamples lists (paired_interval), the offline recs report users
(recs_metrics.bootstrap_interval: mean_interval); the fraud gate resamples cards
(ap_difference_interval), since one compromised card's frauds are not independent rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from services.common.arrays import FloatArray, IntArray

RESAMPLES = 2_000
LEVEL = 0.95
# Cells (resamples x units) drawn at once: bounds the index matrix (8 bytes a cell) and the
# statistic's own work arrays to tens of MB, whatever the number of units.
MAX_CELLS = 4_000_000


def resampled_interval(statistic: Callable[[IntArray], FloatArray], units: int,
                       resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL,
                       max_cells: int | None = MAX_CELLS) -> tuple[float, float]:
    """Percentile interval of `statistic` over resamples of `units` units. `statistic` takes
    a (k, units) matrix of drawn unit indices, one resample a row, and returns k values; the
    rows arrive in chunks of at most `max_cells` cells (None: all at once)."""
    if units < 1:
        raise ValueError("nothing to resample")
    rng = np.random.default_rng(seed)
    chunk = resamples if max_cells is None else max(1, min(resamples, max_cells // units))
    values = []
    for start in range(0, resamples, chunk):
        drawn = rng.integers(0, units, (min(chunk, resamples - start), units))
        values.append(np.asarray(statistic(drawn), dtype=np.float64))
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(np.concatenate(values), [tail, 1.0 - tail])
    return float(low), float(high)


def mean_interval(values: npt.ArrayLike, resamples: int = RESAMPLES, seed: int = 0,
                  level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-unit values (units resampled with
    replacement). Drawn in one chunk: the same numbers for a seed as before this was shared."""
    v = np.asarray(values, dtype=np.float64)
    return resampled_interval(lambda drawn: v[drawn].mean(axis=1), len(v), resamples, seed,
                              level, max_cells=None)


def paired_interval(differences: npt.ArrayLike, resamples: int = RESAMPLES,
                    seed: int = 0, level: float = LEVEL) -> tuple[float, float]:
    """The ranker's gate: the mean of paired per-list differences (production's IPS-weighted
    rank of the clicks minus the challenger's, one a held-out list)."""
    return mean_interval(differences, resamples, seed, level)


def weighted_average_precision(labels: npt.ArrayLike, scores: npt.ArrayLike,
                               weights: FloatArray) -> FloatArray:
    """Average precision of one model under each row of `weights` (k, n): a bootstrap resample
    is the same rows counted 0, 1, 2 ... times. sklearn's definition, ties included: precision
    is read at the end of each group of equal scores, sum over groups of (recall gained) x
    (precision there); with all weights 1 it is average_precision_score (tested)."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    ends = np.flatnonzero(np.r_[np.diff(s[order]) != 0, True])  # last row of each tie group
    w = weights[:, order]
    seen = np.cumsum(w, axis=1)[:, ends]
    caught = np.cumsum(w * y[order], axis=1)[:, ends]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(seen > 0, caught / seen, 0.0)
        gained = np.diff(caught, axis=1, prepend=0.0)
        ap: FloatArray = (gained * precision).sum(axis=1) / caught[:, -1]
    return ap    # NaN for a resample without a positive


def ap_difference_interval(labels: npt.ArrayLike, challenger: npt.ArrayLike,
                           production: npt.ArrayLike, clusters: npt.ArrayLike,
                           resamples: int = RESAMPLES, seed: int = 0,
                           level: float = LEVEL) -> tuple[float, float]:
    """Paired bootstrap interval of AP(challenger) - AP(production) on the same rows,
    resampling whole clusters (cards): a drawn card brings all its rows, as often as drawn."""
    _, cluster = np.unique(np.asarray(clusters), return_inverse=True)
    cluster = cluster.ravel()
    n_clusters = int(cluster.max()) + 1

    def difference(drawn: IntArray) -> FloatArray:
        counts = np.stack([np.bincount(row, minlength=n_clusters) for row in drawn])
        weights = counts[:, cluster].astype(np.float64)
        gap: FloatArray = (weighted_average_precision(labels, challenger, weights)
                           - weighted_average_precision(labels, production, weights))
        return gap

    # each chunk's work arrays are (k, rows), not (k, cards): bound them by the rows
    rows = len(cluster)
    return resampled_interval(difference, n_clusters, resamples, seed, level,
                              max_cells=max(n_clusters, MAX_CELLS * n_clusters // rows))
