"""Online fraud features: the Redis state the stream keeps, one read per transaction, the vector.

    writer = RedisFraudStateWriter(client)            # stream processor: transactions, reports
    writer.apply(transactions=[txn], frauds=[report])
    state = RedisFraudStateReader(client).read(txn)   # fraud service: one round trip
    vector = fraud_features(txn, state)                # pure: float32, FRAUD_FEATURES order

The layout is specified in docs/fraud-features-online.md.
"""

from services.common.fraud_online.commands import decode_state, read_commands, write_commands
from services.common.fraud_online.features import FeatureVector, fraud_features, haversine_km
from services.common.fraud_online.layout import VIEWS, StateView, epoch_ms
from services.common.fraud_online.redis_state import RedisFraudStateReader, RedisFraudStateWriter
from services.common.fraud_online.state import (
    CardUse,
    FraudReport,
    FraudState,
    KnownFraud,
    Place,
    Spend,
    TransactionLike,
)

__all__ = [
    "VIEWS",
    "CardUse",
    "FeatureVector",
    "FraudReport",
    "FraudState",
    "KnownFraud",
    "Place",
    "RedisFraudStateReader",
    "RedisFraudStateWriter",
    "Spend",
    "StateView",
    "TransactionLike",
    "decode_state",
    "epoch_ms",
    "fraud_features",
    "haversine_km",
    "read_commands",
    "write_commands",
]
