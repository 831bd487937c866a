"""Stage 1 and 2: candidate sources over the whole catalog, and the filter every source obeys.

Each source is a top-N over the titles a user may be shown (`eligible`): exact search, because
the catalog is 2,500 titles and one matrix-vector product over all of them costs ~50 µs. An ANN
index (HNSW, IVF-PQ) takes over when that product stops fitting the 10 ms candidate budget:
around a few million titles x 32 dims on one core (docs/recommendations.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from services.common.arrays import BoolArray, FloatArray, IntArray
from services.designs.recs import definitions as rf
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.state import UserVectors


class Source(StrEnum):
    COLLABORATIVE = "collaborative"   # taste vector . item embedding
    CONTENT = "content"               # genre profile vs content vectors
    TRENDING = "trending"             # time-decayed watch counts
    POPULAR = "popular"               # watches in the last 30 days (cold start)
    NEW_RELEASE = "new_release"       # released in the last few weeks, newest first (cold start)


@dataclass(frozen=True)
class CandidateSizes:
    """How many candidates each source proposes before scoring."""

    collaborative: int = 100
    content: int = 50
    trending: int = 50


def eligible_mask(items: ItemArtifacts, watched: IntArray, max_maturity: int) -> BoolArray:
    """Titles a user may be shown: not watched already, within the profile's maturity limit."""
    mask: BoolArray = items.maturity_levels <= max_maturity
    mask[np.asarray(watched, dtype=np.int64)] = False
    return mask


def top_eligible(scores: FloatArray, eligible: BoolArray, n: int) -> IntArray:
    """Rows of the n best eligible scores, best first (ties to the lower row); fewer if fewer."""
    rows = np.flatnonzero(eligible)
    if n <= 0 or len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    values = scores[rows]
    if len(rows) > n:
        keep = np.argpartition(-values, n - 1)[:n]
        rows, values = rows[keep], values[keep]
    order = np.lexsort((rows, -values))
    best: IntArray = rows[order].astype(np.int64)
    return best


def collaborative_scores(user: UserVectors, items: ItemArtifacts) -> FloatArray:
    """cf_score of every title (the ranker's feature, for the whole catalog at once)."""
    scores: FloatArray = items.embeddings.astype(np.float64) @ user.taste
    return scores


def content_scores(user: UserVectors, items: ItemArtifacts) -> FloatArray:
    """content_score of every title: cosine of the user's profile and each content vector."""
    scores: FloatArray = rf.content_scores(user.profile, items.content)[0]
    return scores


def new_releases(release_seconds: FloatArray, eligible: BoolArray, now_s: float,
                 window_s: float, n: int) -> IntArray:
    """Rows of eligible titles released in (now - window, now], newest first (ties: lower row).

    No watch is needed: a title the catalog added a minute ago is a candidate at once.
    """
    released = np.asarray(release_seconds, dtype=np.float64)
    recent = eligible & (released > now_s - window_s) & (released <= now_s)
    rows = np.flatnonzero(recent)
    newest: IntArray = rows[np.lexsort((rows, -released[rows]))][:max(n, 0)].astype(np.int64)
    return newest


def ordered_eligible(rows: IntArray, eligible: BoolArray, n: int) -> IntArray:
    """The first n eligible rows of an already ranked list (e.g. the trending head)."""
    kept: IntArray = rows[eligible[rows]][:n]
    return kept


@dataclass(frozen=True)
class Candidates:
    """The union of the sources' lists: each title once, in the order first found."""

    rows: IntArray
    sources: tuple[frozenset[Source], ...]      # every source that proposed each row

    def __len__(self) -> int:
        return len(self.rows)

    def from_source(self, source: Source) -> npt.NDArray[np.bool_]:
        return np.fromiter((source in s for s in self.sources), dtype=bool, count=len(self))


def union(lists: Mapping[Source, IntArray]) -> Candidates:
    """Merge the sources' lists; a title two sources found is one candidate with both sources."""
    found: dict[int, set[Source]] = {}
    for source, rows in lists.items():
        for row in rows.tolist():
            found.setdefault(row, set()).add(source)
    return Candidates(np.fromiter(found, dtype=np.int64, count=len(found)),
                      tuple(frozenset(s) for s in found.values()))
