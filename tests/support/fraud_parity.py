"""Fraud parity: a small transaction world replayed through the stream's handlers into Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd
import redis

from services.common.bus.envelope import Event, decode_event
from services.designs.fraud.features import batch_features
from services.designs.fraud.redis_state import RedisFraudState
from services.designs.payloads import TransactionData
from services.seeder.history import transaction_messages
from services.stream.fraud_labels import FraudLabelHandler
from services.stream.transactions import TransactionFeaturesHandler
from services.trainer.worlds.transactions import TransactionWorldConfig

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
