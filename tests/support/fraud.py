"""Fraud test builders and fakes: a quiet transaction, card histories, a fake model and store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.models import ModelRepository, Prediction
from services.common.models.testing import logistic_model
from services.common.times import epoch_ms
from services.designs.fraud.state import CardUse, FraudState, StateBatch, TransactionLike
from services.designs.model_features import FRAUD_FEATURE_NAMES, FRAUD_REFERENCE_FILE
from services.fraud.state_store import FraudStoreUnavailable, StateRead
from services.fraud.transaction import Transaction
from tests.harness import REPO_ROOT

POLICY_PATH = REPO_ROOT / "config" / "fraud" / "policy.toml"


NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday, midday


T = epoch_ms(NOW)


SECOND, MINUTE, HOUR, DAY = 1_000, 60_000, 3_600_000, 86_400_000


HOME = (48.8566, 2.3522)


AWAY_1000_KM = (HOME[0] + 9.0, HOME[1])  # 9 degrees of latitude north: 1,000.75 km


def transaction(**changes: Any) -> Transaction:
    """A quiet grocery purchase at noon in Paris, with the given fields changed."""
    quiet = Transaction(
        transaction_id="tx100", user_id="cust1", card_id="card1", terminal_id="term1",
        merchant_id="m1", merchant_category="grocery", amount=50.0, currency="EUR",
        transaction_type="purchase", latitude=HOME[0], longitude=HOME[1], timestamp=NOW,
        ip_address="81.0.0.1", device_id="dev1")
    return replace(quiet, **changes)


def use(ago_ms: int, amount: float = 20.0, *, tid: str = "", place: tuple[float, float] = HOME,
        device: str = "dev1", ip: str = "81.0.0.1") -> CardUse:
    """One of the card's transactions, `ago_ms` before NOW."""
    return CardUse(T - ago_ms, tid or f"tx{ago_ms}", amount, place[0], place[1], device, ip)


def history(*uses: CardUse, **counts: Any) -> FraudState:
    return FraudState(card=uses, **counts)


MODEL_VERSION = 1  # the version model_repository registers, with its reference


SHADOW_PROBABILITY = 0.95


SMALL = FRAUD_FEATURE_NAMES.index("card_nb_small_tx_1h")


AMOUNT = FRAUD_FEATURE_NAMES.index("tx_amount")


TYPICAL = {"tx_amount": 40.0, "amount_to_customer_avg_30d": 1.0,
           "seconds_since_last_tx": 86_400.0, "customer_nb_tx_30d": 12.0,
           "customer_avg_amount_30d": 45.0}


TYPICAL_VALUES = np.array([TYPICAL.get(name, 0.0) for name in FRAUD_FEATURE_NAMES],
                          dtype=np.float32)


CARD_TESTING = history(use(5 * MINUTE, 1.0), use(20 * MINUTE, 2.0), use(50 * MINUTE, 3.0))


def fraud_probability(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """The fake model: 0.05, plus 0.2 per small payment this hour, plus 0.0002 per unit spent."""
    return np.clip(0.05 + 0.2 * rows[:, SMALL] + 0.0002 * rows[:, AMOUNT], 0.0, 0.99)


class FakeModel:
    """A ModelClient answering like a skl2onnx classifier, from fraud_probability."""

    def __init__(self, version: int = MODEL_VERSION) -> None:
        self.version = version
        self.calls: list[npt.NDArray[np.float32]] = []
        self.failure: Exception | None = None

    def predict(self, model_name: str, rows: npt.NDArray[Any], *,
                version: int | None = None) -> Prediction:
        self.calls.append(rows.copy())
        if self.failure is not None:
            raise self.failure
        p1 = fraud_probability(rows)
        if version is not None and version != self.version:  # a challenger: confident fraud
            p1 = np.full(len(rows), SHADOW_PROBABILITY)
        return Prediction(model_name, version or self.version, {
            "label": (p1 > 0.5).astype(np.int64),
            "probabilities": np.stack([1 - p1, p1], axis=1).astype(np.float32)})

    def ready(self, model_name: str) -> bool:
        return self.failure is None

    def close(self) -> None:
        pass


class FakeStore:
    """A FraudStore in memory: each transaction id's state as given; decisions kept with the
    semantics of SET NX GET (the first one stays, each call returns what was there before).
    With a `failure` set, every call fails as the Redis adapter does: FraudStoreUnavailable;
    the transaction ids in `skipping` are skipped with their reason, as the adapter skips those
    whose Redis master's breaker is open."""

    def __init__(self, states: dict[str, FraudState] | None = None) -> None:
        self.states = dict(states or {})
        self.decisions: dict[str, bytes] = {}
        self.reads: list[list[str]] = []
        self.seen: list[TransactionLike] = []
        self.remembered: list[list[str]] = []
        self.windows: list[int] = []
        self.failure: Exception | None = None
        self.decisions_visible_on_read = True  # False: two requests raced past the read
        self.skipping: dict[str, str] = {}

    def record_and_read(self, transactions: Sequence[TransactionLike]) -> StateRead:
        self.reads.append([txn.transaction_id for txn in transactions])
        self.seen.extend(transactions)
        if self.failure is not None:
            raise FraudStoreUnavailable.caused_by(self.failure)
        read = [txn for txn in transactions if txn.transaction_id not in self.skipping]
        return StateRead(
            StateBatch.of([self.states.get(txn.transaction_id, FraudState()) for txn in read]),
            [self.decisions.get(txn.transaction_id) if self.decisions_visible_on_read else None
             for txn in read],
            {i: self.skipping[txn.transaction_id] for i, txn in enumerate(transactions)
             if txn.transaction_id in self.skipping})

    def recall(self, transaction_id: str) -> bytes | None:
        if self.failure is not None:
            raise FraudStoreUnavailable.caused_by(self.failure)
        return self.decisions.get(transaction_id)

    def remember(self, decisions: Sequence[tuple[str, bytes]],
                 window_s: int) -> list[bytes | None]:
        self.remembered.append([tid for tid, _ in decisions])
        self.windows.append(window_s)
        earlier = []
        for tid, decision in decisions:
            earlier.append(self.decisions.get(tid))
            self.decisions.setdefault(tid, decision)
        return earlier


def model_repository(root: Path) -> ModelRepository:
    """A repository whose fraud v1 has a reference (the model's bytes are never run here)."""
    repository = ModelRepository(root)
    reference = {"feature_names": list(FRAUD_FEATURE_NAMES), "values": TYPICAL_VALUES.tolist()}
    repository.register("fraud", logistic_model([0.0] * len(FRAUD_FEATURE_NAMES)),
                        feature_names=FRAUD_FEATURE_NAMES, metrics={},
                        training_data_hash="test", description="fraud scorer tests",
                        extra_files={FRAUD_REFERENCE_FILE: json.dumps(reference).encode()})
    return repository


def body(**changes: Any) -> dict[str, Any]:
    """A valid request, test_fraud_rules.transaction() as JSON; a value of None removes the field.
    Its time is in the past (NOW), as a late transaction's may be: states are built around it."""
    valid: dict[str, Any] = {
        "transaction_id": "tx100", "user_id": "cust1", "card_id": "card1", "amount": 50.0,
        "currency": "EUR", "transaction_type": "purchase", "merchant_id": "m1",
        "merchant_category": "grocery", "terminal_id": "term1", "latitude": 48.8566,
        "longitude": 2.3522, "timestamp": NOW.isoformat(),
        "ip_address": "81.0.0.1", "device_id": "dev1"}
    valid.update(changes)
    return {k: v for k, v in valid.items() if v is not None}
