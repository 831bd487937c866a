"""GrowthBook-compatible bucketing: FNV-1a hashes, bucket ranges, variation choice, namespaces.

Every function gives the same answer as GrowthBook's SDKs for the same inputs (checked against
their published conformance cases, vendored in tests/unit/experiments/data/growthbook/):

    hash v1  (fnv1a32(value + seed) % 1000) / 1000          the original, slightly biased
    hash v2  (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
             hash("seed", "a", 2) == 0.0505

Strings are hashed as UTF-16 code units, as GrowthBook's JavaScript SDK does (`charCodeAt`), and
its Python SDK 4.0.0 too (make bench-peers compares them on non-ASCII ids, emoji included). For
ASCII, and for any character of the Basic Multilingual Plane, that equals hashing code points;
for a character beyond it (an emoji) a code-point reading would disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF
WEIGHT_TOLERANCE = 0.01  # GrowthBook falls back to equal weights beyond 0.99-1.01

Range = tuple[float, float]


def _code_units(text: str) -> Sequence[int]:
    """The UTF-16 code units of `text`: its bytes when ASCII (one unit each, the fast path),
    else its UTF-16 encoding read two bytes at a time (a lone surrogate passes as itself)."""
    if text.isascii():
        return text.encode("ascii")
    raw = text.encode("utf-16-le", "surrogatepass")
    return [raw[i] | raw[i + 1] << 8 for i in range(0, len(raw), 2)]


def fnv1a32(text: str, state: int = FNV_OFFSET) -> int:
    """FNV-1a 32-bit over the UTF-16 code units of `text`, continuing from `state` (so
    fnv1a32(b, fnv1a32(a)) == fnv1a32(a + b): a fixed prefix can be hashed once)."""
    h = state
    for unit in _code_units(text):
        h = ((h ^ unit) * FNV_PRIME) & _MASK
    return h


def gb_hash(seed: str, value: str, version: int) -> float | None:
    """GrowthBook's hash of `value` with `seed`, in [0, 1); None for an unknown version."""
    if version == 2:
        return v2_from_state(fnv1a32(seed), value)
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def v2_from_state(seed_state: int, value: str) -> float:
    """Hash version 2 with the seed already hashed (fnv1a32(seed)): the per-call part."""
    return (fnv1a32(str(fnv1a32(value, seed_state))) % 10000) / 10000


def equal_weights(n: int) -> list[float]:
    return [1 / n] * n if n > 0 else []


def bucket_ranges(n: int, coverage: float | None = 1.0,
                  weights: Sequence[float] | None = None) -> list[Range]:
    """Variation i owns [start_i, start_i + coverage * w_i), start_i the sum of the weights before
    it. Lowering coverage shrinks each range from its end and never moves a start, so a unit
    never changes variation, it only leaves or joins. Out-of-bounds input is corrected as
    GrowthBook does: coverage clamped to [0, 1], bad weights replaced by equal ones."""
    cover = 1.0 if coverage is None else min(max(coverage, 0.0), 1.0)
    equal = equal_weights(n)
    chosen = list(weights) if weights is not None else equal
    if len(chosen) != n or abs(sum(chosen) - 1) > WEIGHT_TOLERANCE:
        chosen = equal
    ranges: list[Range] = []
    cumulative = 0.0
    for weight in chosen:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + cover * weight))
    return ranges


def choose_variation(bucket: float, ranges: Sequence[Range]) -> int:
    """The index of the range holding `bucket` (start inclusive, end exclusive), else -1."""
    for i, (start, end) in enumerate(ranges):
        if start <= bucket < end:
            return i
    return -1


def in_namespace(unit_id: str, namespace_id: str, start: float, end: float) -> bool:
    """Whether the unit falls in [start, end) of the namespace's own hash space (hash v1 seeded
    "__<namespace id>"): experiments sharing a namespace with disjoint ranges share no unit."""
    bucket = (fnv1a32(unit_id + "__" + namespace_id) % 1000) / 1000
    return start <= bucket < end
