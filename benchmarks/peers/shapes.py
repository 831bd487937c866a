"""The compared shapes, in one place for our side: the feature catalog, its values, the refs.

Feast's side (feast_side.py, in the peers' virtualenv, which cannot import the project) writes
the same views, kinds and values; the driver checks both return the same values before timing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.common.features import (
    Entity,
    Feature,
    FeatureCatalog,
    FeatureType,
    FeatureView,
    FeatureWrite,
    RedisFeatureStore,
)
from services.common.features.values import FeatureInput

VIEWS, FEATURES_PER_VIEW, ENTITIES = 5, 10, 100
NAMESPACE = "bench"  # never collides with the stack's "fs" keys
# benchmarks/feature_store_read.py's catalog: per view 6 floats, 2 ints, a string, a bool
KINDS = [FeatureType.FLOAT64] * 6 + [FeatureType.INT64] * 2 + [FeatureType.STRING,
                                                               FeatureType.BOOL]
VALUES: dict[str, FeatureInput] = {"float64": 1234.5678, "int64": 42, "string": "PT",
                                   "bool": True}


def catalog() -> FeatureCatalog:
    user = Entity("user")
    return FeatureCatalog(
        FeatureView(f"bench_view_{v}", user,
                    tuple(Feature(f"f{i}", kind) for i, kind in enumerate(KINDS)),
                    ttl=timedelta(hours=1))
        for v in range(VIEWS))


def refs() -> list[str]:
    return [f"bench_view_{v}:f{i}" for v in range(VIEWS) for i in range(FEATURES_PER_VIEW)]


def entity_rows(entities: int) -> list[dict[str, str]]:
    return [{"user": f"user{e}"} for e in range(entities)]


def seed(store: RedisFeatureStore, features: FeatureCatalog) -> None:
    now = datetime.now(UTC)
    store.write_batch([
        FeatureWrite(view.name, f"user{e}", {f.name: VALUES[f.dtype] for f in view.features}, now)
        for view in features for e in range(ENTITIES)])
