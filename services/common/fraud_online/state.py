"""What the online fraud features read: a transaction's fields and its entities' recent history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol


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


# Set members are NamedTuples, not frozen dataclasses: a read decodes a few hundred of them on
# the request path, which took a quarter less time as tuples (275 -> 205 us at the median).
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


class Place(NamedTuple):
    """Where and when a card was last used (kept beyond the windows, for the previous one)."""

    at_ms: int
    transaction_id: str
    latitude: float
    longitude: float


class KnownFraud(NamedTuple):
    """A fraud report: the transaction's time and id, and when the report became known."""

    transaction_ms: int
    transaction_id: str
    known_ms: int


@dataclass(frozen=True)
class FraudState:
    """One transaction's view of the online state, as the reader fetched it for time t.

    Member lists hold what the reader's windows returned; the features filter them again by
    time and id, so a list may hold more (hand-made states, the current transaction itself).
    Counts were taken by Redis for exactly the window their comment names.
    """

    customer_30d: tuple[Spend, ...] = ()        # the customer's transactions in [t - 30 d, t)
    card_30d: tuple[CardUse, ...] = ()          # the card's transactions in [t - 30 d, t)
    card_latest: tuple[Place, ...] = ()         # the card's newest few transactions, any time
    terminal_counts: tuple[int, int, int] = (0, 0, 0)  # in [t - 7 d - N, t - 7 d), N = 1, 7, 30
    terminal_frauds: tuple[KnownFraud, ...] = ()  # reports of transactions in [t - 37 d, t - 7 d)
    merchant_count_30d: int = 0                 # the merchant's transactions in [t - 37, t - 7 d)
    merchant_frauds: tuple[KnownFraud, ...] = ()
    device_cards_30d: int = 0                   # cards last seen on the device in [t - 30 d, t)
    device_card_last_seen_ms: int | None = None  # this card's last use of the device
    ip_cards_30d: int = 0                       # the same for the IP address
    ip_card_last_seen_ms: int | None = None
