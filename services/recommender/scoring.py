"""Stage 3 for the control, and how much each source counts for a user with little history.

The control is the design brief's weighted blend: 0.4 collaborative + 0.3 content + 0.2 trending
(+ 0.1 diversity, applied in rerank), each score min-max scaled over the candidates. A user with
few watch events has a noisy taste vector, so content (which needs only genres) is weighted up;
a user with none gets popularity and trending. The treatment's relevance is the ranker's
probability (services/recommender/service.py calls the model server).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from services.common.arrays import FloatArray
from services.recommender.candidates import CandidateSizes
from services.recommender.rerank import min_max

FEW_EVENTS = 5  # below this many watch events a user's taste vector is mostly noise

BLEND_WEIGHTS = {"collaborative": 0.4, "content": 0.3, "trending": 0.2}
LIGHT_USER_WEIGHTS = {"collaborative": 0.2, "content": 0.5, "trending": 0.2}
COLD_START_WEIGHTS = {"popularity": 0.5, "trending": 0.4}


@dataclass(frozen=True)
class Personalization:
    """How far a user's history carries: full, light (few events) or cold (none)."""

    level: Literal["full", "light", "cold"]
    weights: Mapping[str, float]
    sizes: CandidateSizes


def personalization(watch_count: int, sizes: CandidateSizes) -> Personalization:
    if watch_count <= 0:
        return Personalization("cold", COLD_START_WEIGHTS, CandidateSizes(0, 0, sizes.trending))
    if watch_count < FEW_EVENTS:
        # Content-based weighted up in the candidates too: twice its share, half the cf share.
        light = CandidateSizes(max(1, sizes.collaborative // 2), max(sizes.content * 2, 1),
                               sizes.trending)
        return Personalization("light", LIGHT_USER_WEIGHTS, light)
    return Personalization("full", BLEND_WEIGHTS, sizes)


def blend(scores: Mapping[str, FloatArray], weights: Mapping[str, float]) -> FloatArray:
    """sum over weighted terms of weight x min-max(score) over the candidates."""
    n = len(next(iter(scores.values())))
    total = np.zeros(n)
    for name, weight in weights.items():
        total += weight * min_max(scores[name])
    return total
