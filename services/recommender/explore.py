"""The exploration slice: a sampled share of lists shown in a random order, so position has an
effect of its own that logged clicks can measure.

A click on slot 1 says as much about slot 1 as about the title: viewers look at the top first.
On lists the ranker ordered, the best titles sit on top, so clicks by slot mix the two. On a
shuffled list a title lands on any slot alike, and the click rate by slot is the slot's effect
alone: the retraining (services/trainer/ranker_from_lake.py) fits its position bias there and
weights every logged click by it. The price: a shuffled list is a worse list (measured in
docs/evaluation/ab-loop.json's baseline: the click rate of shuffled against ordered lists).
"""

from __future__ import annotations

import zlib

import numpy as np

from services.common.arrays import IntArray

SALT = b"explore:"   # not the shadow's sample: the two slices must not be the same requests


def explored(request_id: str, share: float) -> bool:
    """The same request is always in or out (a replay explores the same requests)."""
    return share > 0 and zlib.crc32(SALT + request_id.encode()) % 10_000 < round(share * 10_000)


def shuffled_order(request_id: str, n: int) -> IntArray:
    """A uniform random order of n slots, drawn from the request id (reproducible)."""
    order: IntArray = np.random.default_rng(zlib.crc32(request_id.encode())).permutation(n)
    return order
