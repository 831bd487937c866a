"""What the online fraud features read: a transaction's fields and its entities' recent history."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from services.designs.fraud.layout import CARD_RECORD, SPEND_RECORD, digest


class TransactionLike(Protocol):
    """The fields of a transaction the state and the features use (TransactionData has them,
    and so does any scoring request with the same names)."""

    @property
    def transaction_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...  # the customer
    @property
    def card_id(self) -> str: ...
    @property
    def terminal_id(self) -> str: ...
    @property
    def merchant_id(self) -> str: ...
    @property
    def amount(self) -> float: ...
    @property
    def transaction_type(self) -> str: ...
    @property
    def latitude(self) -> float: ...
    @property
    def longitude(self) -> float: ...
    @property
    def timestamp(self) -> datetime: ...  # aware; its own UTC offset is the local time
    @property
    def device_id(self) -> str: ...
    @property
    def ip_address(self) -> object: ...  # a string or an ipaddress object: compared as str()


@dataclass(frozen=True)
class FraudReport:
    """A transaction reported as fraud, and when the report became known."""

    transaction_id: str
    terminal_id: str
    merchant_id: str
    transaction_time: datetime
    known_at: datetime


class Spend(NamedTuple):
    """One of a customer's transactions."""

    at_ms: int
    transaction_id: str
    amount: float


class CardUse(NamedTuple):
    """One of a card's transactions, with where and from what it was made."""

    at_ms: int
    transaction_id: str
    amount: float
    latitude: float
    longitude: float
    device_id: str
    ip_address: str


class KnownFraud(NamedTuple):
    """A fraud report: the transaction's time and id, and when the report became known."""

    transaction_ms: int
    transaction_id: str
    known_ms: int


@dataclass(frozen=True)
class FraudState:
    """One transaction's view of the online state, written by hand (tests, examples): the
    features read it as a StateBatch of one (StateBatch.of).

    Record lists may hold more than the windows (older records, the current transaction
    itself): the features filter them by time. A transaction listed twice counts once, as in
    the store, whose logs hold each transaction once.
    Counts were taken by Redis for exactly the window their comment names.
    """

    customer: tuple[Spend, ...] = ()            # the customer's transactions
    card: tuple[CardUse, ...] = ()              # the card's transactions (the newest, any age)
    terminal_counts: tuple[int, int, int] = (0, 0, 0)  # in [t - 7 d - N, t - 7 d), N = 1, 7, 30
    terminal_frauds: tuple[KnownFraud, ...] = ()  # reports of transactions in [t - 37 d, t - 7 d)
    merchant_count_30d: int = 0                 # the merchant's transactions in [t - 37, t - 7 d)
    merchant_frauds: tuple[KnownFraud, ...] = ()
    device_cards_30d: int = 0                   # cards last seen on the device in [t - 30 d, t)
    device_card_last_seen_ms: int | None = None  # this card's last use of the device
    ip_cards_30d: int = 0                       # the same for the IP address
    ip_card_last_seen_ms: int | None = None


@dataclass(frozen=True)
class StateBatch:
    """The state of n transactions, column by column, as the features compute on it.

    Records of every transaction's card (customer) sit in one array; `card_owner[k]` is the
    row of the transaction record k belongs to. Counts are arrays of n; `*_seen_ms` is NaN
    where the card was never seen on the device (IP address).
    """

    customer: npt.NDArray[np.void]          # SPEND_RECORD
    customer_owner: npt.NDArray[np.intp]
    card: npt.NDArray[np.void]              # CARD_RECORD
    card_owner: npt.NDArray[np.intp]
    terminal_counts: npt.NDArray[np.int64]  # [n, 3]
    terminal_frauds: tuple[tuple[KnownFraud, ...], ...]
    merchant_count_30d: npt.NDArray[np.int64]
    merchant_frauds: tuple[tuple[KnownFraud, ...], ...]
    device_cards_30d: npt.NDArray[np.int64]
    device_card_last_seen_ms: npt.NDArray[np.float64]
    ip_cards_30d: npt.NDArray[np.int64]
    ip_card_last_seen_ms: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.merchant_count_30d)

    @classmethod
    def of(cls, states: Sequence[FraudState]) -> StateBatch:
        """Hand-made states as a batch (what a store would have read for them)."""
        def seen(ms: int | None) -> float:
            return math.nan if ms is None else float(ms)

        customers = [_once(state.customer) for state in states]
        cards = [_once(state.card) for state in states]
        return cls(
            customer=np.array([(s.at_ms, digest(s.transaction_id), s.amount)
                               for spends in customers for s in spends], dtype=SPEND_RECORD),
            customer_owner=np.array([row for row, spends in enumerate(customers)
                                     for _ in spends], dtype=np.intp),
            card=np.array([(u.at_ms, digest(u.transaction_id), u.amount, u.latitude,
                            u.longitude, digest(u.device_id), digest(u.ip_address))
                           for uses in cards for u in uses], dtype=CARD_RECORD),
            card_owner=np.array([row for row, uses in enumerate(cards) for _ in uses],
                                dtype=np.intp),
            terminal_counts=np.array([s.terminal_counts for s in states],
                                     dtype=np.int64).reshape(len(states), 3),
            terminal_frauds=tuple(s.terminal_frauds for s in states),
            merchant_count_30d=np.array([s.merchant_count_30d for s in states], dtype=np.int64),
            merchant_frauds=tuple(s.merchant_frauds for s in states),
            device_cards_30d=np.array([s.device_cards_30d for s in states], dtype=np.int64),
            device_card_last_seen_ms=np.array([seen(s.device_card_last_seen_ms)
                                               for s in states], dtype=np.float64),
            ip_cards_30d=np.array([s.ip_cards_30d for s in states], dtype=np.int64),
            ip_card_last_seen_ms=np.array([seen(s.ip_card_last_seen_ms) for s in states],
                                          dtype=np.float64),
        )


Record = TypeVar("Record", Spend, CardUse)


def _once(records: tuple[Record, ...]) -> list[Record]:
    """The first record of each transaction, as the store's logs keep them."""
    return list({r.transaction_id: r for r in reversed(records)}.values())[::-1]
