"""Why each title is in the list, in words a person reads, and the type the API reports.

    discovery slot                   -> discovery           "Something different: ..."
    cold start, new release          -> new_release         "New release: out in the last weeks"
    cold start, trending source      -> trending            "Trending now"
    cold start otherwise             -> popular             "Popular this month"
    close to a watched title         -> similar_to_watched  "Because you watched <title>"
    trending, no personal source     -> trending            "Trending now"
    collaborative, nothing close     -> discovery           "Viewers with similar taste liked this"

"Close" is the cosine of item embeddings (co-watching) for collaborative candidates and of
content vectors (genres, era, maturity) for content-based ones, at least ANCHOR_MIN_COSINE.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from services.common.arrays import FloatArray, IntArray
from services.designs.recs.items import ItemArtifacts
from services.recommender.candidates import Source

ANCHOR_MIN_COSINE = 0.5


class RecommendationType(StrEnum):
    TRENDING = "trending"
    SIMILAR_TO_WATCHED = "similar_to_watched"
    DISCOVERY = "discovery"
    POPULAR = "popular"
    NEW_RELEASE = "new_release"


@dataclass(frozen=True)
class Explanation:
    type: RecommendationType
    text: str


def _unit(matrix: npt.NDArray[np.floating]) -> FloatArray:
    m = np.asarray(matrix, dtype=np.float64)
    norm = np.linalg.norm(m, axis=1, keepdims=True)
    unit: FloatArray = np.divide(m, norm, out=np.zeros_like(m), where=norm > 0)
    return unit


def nearest_watched(rows: IntArray, watched: IntArray,
                    vectors: npt.NDArray[np.floating]) -> tuple[IntArray, FloatArray]:
    """For each row, the watched title with the highest cosine, and that cosine (-1: none)."""
    if len(watched) == 0 or len(rows) == 0:
        return np.full(len(rows), -1, dtype=np.int64), np.full(len(rows), -1.0)
    cosines = _unit(vectors[rows]) @ _unit(vectors[watched]).T
    best = np.argmax(cosines, axis=1)
    return watched[best].astype(np.int64), cosines[np.arange(len(rows)), best]


def explain_all(rows: IntArray, sources: list[frozenset[Source]], discovery: list[bool],
                watched: IntArray, items: ItemArtifacts, cold: bool) -> list[Explanation]:
    """One explanation per picked row (same order)."""
    by_taste, taste_cos = nearest_watched(rows, watched, items.embeddings)
    by_content, content_cos = nearest_watched(rows, watched, items.content)
    explained = []
    for i, row in enumerate(rows.tolist()):
        if discovery[i]:
            genres = ", ".join(items.genres_of(row)).lower() or "something new"
            explained.append(Explanation(RecommendationType.DISCOVERY,
                                         f"Something different: viewers with similar taste "
                                         f"liked this {genres} title"))
            continue
        found = sources[i]
        if cold and Source.NEW_RELEASE in found:
            explained.append(Explanation(RecommendationType.NEW_RELEASE,
                                         "New release: out in the last weeks"))
            continue
        if cold:
            explained.append(Explanation(RecommendationType.TRENDING, "Trending now")
                             if Source.TRENDING in found else
                             Explanation(RecommendationType.POPULAR, "Popular this month"))
            continue
        anchor, cosine = ((by_taste[i], taste_cos[i]) if Source.COLLABORATIVE in found
                          else (by_content[i], content_cos[i]))
        if cosine >= ANCHOR_MIN_COSINE and (found & {Source.COLLABORATIVE, Source.CONTENT}):
            explained.append(Explanation(RecommendationType.SIMILAR_TO_WATCHED,
                                         f"Because you watched {items.name(int(anchor))}"))
        elif Source.TRENDING in found and not found & {Source.COLLABORATIVE, Source.CONTENT}:
            explained.append(Explanation(RecommendationType.TRENDING, "Trending now"))
        elif Source.POPULAR in found:
            explained.append(Explanation(RecommendationType.POPULAR, "Popular this month"))
        else:
            explained.append(Explanation(RecommendationType.DISCOVERY,
                                         "Viewers with similar taste liked this"))
    return explained
