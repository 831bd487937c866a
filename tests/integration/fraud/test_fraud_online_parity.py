"""No train/serve skew: a world replayed through the stream handlers gives the offline features.

The events the seeder publishes for a world (services/seeder/history.py: transactions in time
order, each fraud label at its label_time) go through the production path on real Redis,
straight from their wire format: batches recorded and read by RedisFraudState as the scorers do,
labels by FraudLabelHandler. Each batch is read once as it is recorded, and once more after the
stream processor (TransactionFeaturesHandler) recorded it again, as on a redelivery; both must
equal services.trainer.fraud_features.fraud_feature_matrix on every row and feature.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import redis

from services.common.bus.envelope import Event, decode_event
from services.designs.fraud.features import batch_features
from services.designs.fraud.redis_state import RedisFraudState
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.designs.payloads import TransactionData
from services.seeder.history import transaction_messages
from services.stream.fraud_labels import FraudLabelHandler
from services.stream.transactions import TransactionFeaturesHandler
from services.trainer.fraud_features import fraud_feature_matrix
from services.trainer.worlds.transactions import TransactionWorldConfig, generate_transactions

pytestmark = pytest.mark.integration

WORLD = TransactionWorldConfig(n_customers=150, n_terminals=300, n_days=45, seed=3)
Vector = npt.NDArray[np.float32]


def world_events(transactions: pd.DataFrame) -> Iterator[Event]:
    """The seeder's events, unshifted (naive world times read as UTC), every label arrived."""
    every_label = datetime(2100, 1, 1, tzinfo=UTC)
    for message in transaction_messages(transactions, timedelta(0), now=every_label):
        yield decode_event(message.value)


def _scored(store: RedisFraudState, batch: list[TransactionData]) -> Vector:
    _, state = store.record_and_read(batch)
    return batch_features(batch, state).matrix


def replay(client: redis.Redis, transactions: pd.DataFrame,
           batch_size: int = 40) -> Iterator[tuple[Vector, Vector]]:
    """Batches of consecutive transactions (cut at each label), scored as the scorers do: one
    record-and-read round trip for the batch. Then the stream processor records the batch
    again and the batch is read once more, as a redelivery would."""
    store = RedisFraudState(client)
    transactions_handler = TransactionFeaturesHandler(client)
    labels_handler = FraudLabelHandler(client)
    pending: list[Event] = []

    def flush() -> Iterator[tuple[Vector, Vector]]:
        batch = [TransactionData.model_validate(e.data) for e in pending]
        before = _scored(store, batch)
        for event in pending:
            transactions_handler.handle(event)
        transactions_handler.flush()
        yield from zip(before, _scored(store, batch), strict=True)
        pending.clear()

    for event in world_events(transactions):
        if event.type != "transaction":
            yield from flush() if pending else iter(())
            labels_handler.handle(event)
            labels_handler.flush()
            continue
        pending.append(event)
        if len(pending) == batch_size:
            yield from flush()
    if pending:
        yield from flush()


def test_online_features_equal_the_offline_matrix_on_every_row(redis_client: redis.Redis) -> None:
    transactions = generate_transactions(WORLD).transactions
    assert transactions["tx_datetime"].is_monotonic_increasing
    offline = fraud_feature_matrix(transactions)

    vectors = list(replay(redis_client, transactions))
    before = np.stack([b for b, _ in vectors])
    after = np.stack([a for _, a in vectors])

    for online in (before, after):
        wrong = ~np.isclose(online, offline, rtol=1e-5, atol=1e-4)
        by_feature = {FRAUD_FEATURE_NAMES[j]: int(n)
                      for j, n in enumerate(wrong.sum(axis=0)) if n}
        assert not by_feature, f"online != offline on {len(transactions)} rows: {by_feature}"
    # the replay must exercise what it claims to: risk from labels, travel, shared devices
    for name in ("terminal_risk_30d", "merchant_risk_30d", "speed_kmh_from_last_tx",
                 "device_nb_cards_30d", "card_nb_small_tx_1h"):
        assert (offline[:, FRAUD_FEATURE_NAMES.index(name)] > 0).sum() > 10, name
