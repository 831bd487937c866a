"""Online fraud features: the Redis state, recorded and read in one round trip, and the vectors.

    store = RedisFraudState(client)                    # redis.Redis or RedisCluster
    store.record(transactions=[txn], frauds=[report])  # stream processor: record only
    _, state = store.record_and_read([txn, ...])       # scorer: record and read, one pipeline
    matrix = batch_features([txn, ...], state).matrix  # float32 [n, 32], FRAUD_FEATURES order
    vector = fraud_features(txn, FraudState(...))      # one hand-made state

The layout is specified in docs/fraud-features-online.md.
"""

from services.designs.fraud.commands import decode_batch, record_calls, report_commands
from services.designs.fraud.features import (
    VELOCITY_NAMES,
    FeatureBatch,
    FeatureVector,
    batch_features,
    fraud_features,
    haversine_km,
)
from services.designs.fraud.layout import KEY_FAMILIES, LOGS, VIEWS, digest, epoch_ms
from services.designs.fraud.redis_state import RedisFraudState
from services.designs.fraud.state import (
    CardUse,
    FraudReport,
    FraudState,
    KnownFraud,
    Spend,
    StateBatch,
    TransactionLike,
)

__all__ = [
    "KEY_FAMILIES",
    "LOGS",
    "VELOCITY_NAMES",
    "VIEWS",
    "CardUse",
    "FeatureBatch",
    "FeatureVector",
    "FraudReport",
    "FraudState",
    "KnownFraud",
    "RedisFraudState",
    "Spend",
    "StateBatch",
    "TransactionLike",
    "batch_features",
    "decode_batch",
    "digest",
    "epoch_ms",
    "fraud_features",
    "haversine_km",
    "record_calls",
    "report_commands",
]
