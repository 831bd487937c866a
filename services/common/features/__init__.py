"""The feature store: typed feature views on Redis, event-time guarded writes, one-trip reads."""

from services.common.features.catalog import FeatureCatalog
from services.common.features.definitions import (
    Entity,
    Feature,
    FeatureView,
    InvalidEntity,
    UnknownFeature,
)
from services.common.features.memory_store import InMemoryFeatureStore
from services.common.features.ports import (
    FeatureRow,
    FeatureStatus,
    FeatureStore,
    FeatureStoreUnavailable,
    FeatureWrite,
    WriteOutcome,
    WriteReport,
)
from services.common.features.redis_store import RedisFeatureStore
from services.common.features.values import (
    FeatureInput,
    FeatureType,
    FeatureValue,
    InvalidFeatureValue,
)

__all__ = [
    "Entity",
    "Feature",
    "FeatureCatalog",
    "FeatureInput",
    "FeatureRow",
    "FeatureStatus",
    "FeatureStore",
    "FeatureStoreUnavailable",
    "FeatureType",
    "FeatureValue",
    "FeatureView",
    "FeatureWrite",
    "InMemoryFeatureStore",
    "InvalidEntity",
    "InvalidFeatureValue",
    "RedisFeatureStore",
    "UnknownFeature",
    "WriteOutcome",
    "WriteReport",
]
