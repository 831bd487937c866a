"""What rules can test: the transaction's own fields, the model's features by name, card velocity.

Facts come as a FactTable: one column per fact over a whole batch, so rules test arrays.

A fact is a number or a string under a documented name (the table in docs/fraud.md is generated
from FACTS). Facts that need the card's history are missing when the feature store could not be
read; a rule testing a missing fact does not fire (pure, no I/O).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.designs.fraud.features import VELOCITY_NAMES, FeatureVector
from services.designs.model_features import FRAUD_FEATURE_NAMES, FRAUD_FEATURES, TRANSACTION_TYPES
from services.fraud.transaction import ScoredTransaction

Fact = float | str
Facts = Mapping[str, Fact]

# The model inputs a transaction carries by itself; every other feature needs its history.
OWN_FEATURES = frozenset({"tx_amount", "tx_during_weekend", "tx_during_night",
                          *(f"tx_type_{kind}" for kind in TRANSACTION_TYPES)})


@dataclass(frozen=True)
class FactSpec:
    name: str
    description: str
    needs_history: bool
    text: bool = False  # compared with ==, !=, in, not_in only


_TRANSACTION_FACTS = (
    FactSpec("amount", "the transaction's amount", False),
    FactSpec("currency", "ISO 4217 code", False, text=True),
    FactSpec("transaction_type", "purchase, withdrawal, transfer or payment", False, text=True),
    FactSpec("merchant_category", "e.g. grocery, digital_goods, money_transfer", False, text=True),
    FactSpec("merchant_id", "the merchant", False, text=True),
    FactSpec("card_id", "the card", False, text=True),
    FactSpec("user_id", "the customer", False, text=True),
    FactSpec("device_id", "the device", False, text=True),
    FactSpec("ip_address", "the IP address, as written by the standard library", False, text=True),
    FactSpec("local_hour", "hour of day in the transaction's own UTC offset, 0-23", False),
)
_VELOCITY_FACTS = (
    FactSpec("card_nb_tx_1m", "the card's transactions in the minute before this one", True),
    FactSpec("card_amount_sum_1m", "their total amount", True),
    FactSpec("card_amount_sum_24h", "the card's total amount in the 24 hours before", True),
    FactSpec("card_nb_tx_30d", "the card's transactions in the 30 days before", True),
    FactSpec("card_avg_amount_30d", "their mean amount (0 if none)", True),
    FactSpec("amount_to_card_avg_30d", "amount / card_avg_amount_30d (1 if none)", True),
)
assert tuple(spec.name for spec in _VELOCITY_FACTS) == VELOCITY_NAMES
FACTS: dict[str, FactSpec] = {spec.name: spec for spec in (
    *_TRANSACTION_FACTS,
    *(FactSpec(f.name, f.description, f.name not in OWN_FEATURES) for f in FRAUD_FEATURES),
    *_VELOCITY_FACTS,
)}


@dataclass(frozen=True)
class FactTable:
    """The facts of a batch, column by column: every column has one value per transaction, and
    a fact is present for all of the batch's transactions or for none (history is read for the
    whole batch or not at all)."""

    size: int
    numbers: Mapping[str, npt.NDArray[np.float64]]
    texts: Mapping[str, Sequence[str]]

    def value(self, name: str, i: int) -> Fact | None:
        """Fact `name` of transaction i; None where the batch lacks it."""
        if name in self.numbers:
            return float(self.numbers[name][i])
        texts = self.texts.get(name)
        return None if texts is None else texts[i]

    def row(self, i: int) -> dict[str, Fact]:
        facts: dict[str, Fact] = {name: float(column[i]) for name, column in self.numbers.items()}
        facts.update((name, column[i]) for name, column in self.texts.items())
        return facts

    @classmethod
    def of_rows(cls, rows: Sequence[Facts]) -> FactTable:
        """Facts written by hand, one mapping per transaction (every row the same names)."""
        names = set(rows[0]) if rows else set()
        if any(set(row) != names for row in rows):
            raise ValueError("every row of a fact table has the same facts")
        texts = {n for n in names if isinstance(rows[0][n], str)}
        return cls(len(rows),
                   {n: np.array([float(row[n]) for row in rows]) for n in names - texts},
                   {n: [str(row[n]) for row in rows] for n in texts})


def fact_table(transactions: Sequence[ScoredTransaction], vectors: FeatureVector,
               velocity: npt.NDArray[np.float64], *, with_history: bool) -> FactTable:
    """The transactions' own fields, the model's features by name (as the model saw them) and,
    with history, the card velocity facts (columns of velocity in VELOCITY_NAMES order)."""
    numbers = {
        "amount": np.array([float(t.amount) for t in transactions]),
        "local_hour": np.array([float(t.timestamp.hour) for t in transactions]),
    }
    for j, name in enumerate(FRAUD_FEATURE_NAMES):
        if with_history or name in OWN_FEATURES:
            numbers[name] = vectors[:, j].astype(np.float64)
    if with_history:
        numbers.update((name, velocity[:, j]) for j, name in enumerate(VELOCITY_NAMES))
    texts: dict[str, Sequence[str]] = {
        "currency": [t.currency for t in transactions],
        "transaction_type": [t.transaction_type for t in transactions],
        "merchant_category": [t.merchant_category for t in transactions],
        "merchant_id": [t.merchant_id for t in transactions],
        "card_id": [t.card_id for t in transactions],
        "user_id": [t.user_id for t in transactions],
        "device_id": [t.device_id for t in transactions],
        "ip_address": [str(t.ip_address) for t in transactions],
    }
    return FactTable(len(transactions), numbers, texts)
