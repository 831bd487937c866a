"""Transactions as the fraud design's online features take them (Txn), for unit and Redis tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

NOW = datetime(2018, 7, 4, 12, 0, tzinfo=UTC)  # a Wednesday, midday


@dataclass(frozen=True)
class Txn:
    """A scoring request: the fields fraud_features reads."""

    transaction_id: str = "tx100"
    user_id: str = "cust1"
    card_id: str = "card1"
    terminal_id: str = "term1"
    merchant_id: str = "m1"
    amount: float = 50.0
    transaction_type: str = "purchase"
    latitude: float = 50.0
    longitude: float = 5.0
    timestamp: datetime = NOW
    device_id: str = "dev1"
    ip_address: str = "81.0.0.1"
