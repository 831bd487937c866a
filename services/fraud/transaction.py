"""The transaction being scored, as the domain sees it: every field resolved, nothing optional."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.designs.fraud.state import TransactionLike


class ScoredTransaction(TransactionLike, Protocol):
    """What the scorer reads: the online features' fields plus currency and merchant category.
    A scoring request and a `transactions` event (TransactionData) both have them."""

    @property
    def currency(self) -> str: ...
    @property
    def merchant_category(self) -> str: ...


@dataclass(frozen=True)
class Transaction:
    transaction_id: str
    user_id: str
    card_id: str
    terminal_id: str
    merchant_id: str
    merchant_category: str
    amount: float
    currency: str
    transaction_type: str
    latitude: float
    longitude: float
    timestamp: datetime
    ip_address: str
    device_id: str
