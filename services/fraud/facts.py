"""What rules can test: the transaction's own fields, the model's features by name, card velocity.

A fact is a number or a string under a documented name (the table in docs/fraud.md is generated
from FACTS). Facts that need the card's history are missing when the feature store could not be
read; a rule testing a missing fact does not fire (pure, no I/O).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.catalog import FRAUD_FEATURES, TRANSACTION_TYPES
from services.common.fraud_online import FeatureVector, FraudState, epoch_ms
from services.common.fraud_online.layout import MS_DAY, WINDOW_30D_MS
from services.fraud.transaction import ScoredTransaction

Fact = float | str
Facts = Mapping[str, Fact]
MS_MINUTE = 60_000

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
FACTS: dict[str, FactSpec] = {spec.name: spec for spec in (
    *_TRANSACTION_FACTS,
    *(FactSpec(f.name, f.description, f.name not in OWN_FEATURES) for f in FRAUD_FEATURES),
    *_VELOCITY_FACTS,
)}


def transaction_facts(txn: ScoredTransaction) -> dict[str, Fact]:
    return {
        "amount": float(txn.amount),
        "currency": txn.currency,
        "transaction_type": txn.transaction_type,
        "merchant_category": txn.merchant_category,
        "merchant_id": txn.merchant_id,
        "card_id": txn.card_id,
        "user_id": txn.user_id,
        "device_id": txn.device_id,
        "ip_address": str(txn.ip_address),
        "local_hour": float(txn.timestamp.hour),
    }


def feature_facts(vector: FeatureVector, names: tuple[str, ...], *,
                  with_history: bool) -> dict[str, Fact]:
    """The model's features by name (as float: rules compare what the model saw)."""
    return {name: float(value) for name, value in zip(names, vector.tolist(), strict=True)
            if with_history or name in OWN_FEATURES}


def velocity_facts(txn: ScoredTransaction, state: FraudState) -> dict[str, Fact]:
    """Count and sum per card over windows the catalog does not have, in [t - N, t)."""
    t = epoch_ms(txn.timestamp)
    uses = [(u.at_ms, u.amount) for u in state.card_30d
            if u.transaction_id != txn.transaction_id and t - WINDOW_30D_MS <= u.at_ms < t]
    last_minute = [amount for at, amount in uses if at >= t - MS_MINUTE]
    average = sum(amount for _, amount in uses) / len(uses) if uses else 0.0
    return {
        "card_nb_tx_1m": float(len(last_minute)),
        "card_amount_sum_1m": sum(last_minute),
        "card_amount_sum_24h": sum(amount for at, amount in uses if at >= t - MS_DAY),
        "card_nb_tx_30d": float(len(uses)),
        "card_avg_amount_30d": average,
        "amount_to_card_avg_30d": txn.amount / average if average > 0 else 1.0,
    }

