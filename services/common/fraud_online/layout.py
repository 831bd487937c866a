"""The online fraud state's storage spec: key names, retention and member encodings (pure).

docs/fraud-features-online.md describes the same layout for people; change both together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.catalog import TERMINAL_RISK_DELAY_DAYS
from services.common.ids import FIELD_SEPARATOR, escape, hash_tag

MS_HOUR = 3_600_000
MS_DAY = 24 * MS_HOUR
DELAY_MS = TERMINAL_RISK_DELAY_DAYS * MS_DAY
WINDOW_30D_MS = 30 * MS_DAY
# Partitions are keyed by card, so a terminal's, merchant's or device's writes come from many
# partitions that lag each other. A write trims relative to its own event time; a day of slack
# keeps the windows of a scorer that is up to a day behind the newest write whole.
SLACK_MS = MS_DAY
SEPARATOR = FIELD_SEPARATOR  # ids in members are escaped (services/common/ids.py)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class StateView:
    """One kind of sorted set: what it is trimmed to and how long an idle key lives."""

    name: str
    entity: str
    retention_ms: int | None  # trim members scored before (newest event - retention)
    keep_newest: int | None   # or keep only this many members with the highest scores
    ttl_ms: int               # PEXPIRE after every write: idle entities disappear
    last_seen: bool = False   # members are ids scored by their latest use (ZADD GT)

    def key(self, namespace: str, entity_id: str) -> str:
        """`<namespace>:<view>:{<entity id>}`: the hash tag puts an entity's keys in one slot."""
        return f"{namespace}:{self.name}:{hash_tag(entity_id)}"


def _trimmed(name: str, entity: str, window_ms: int, last_seen: bool = False) -> StateView:
    retention = window_ms + SLACK_MS
    return StateView(name, entity, retention, None, retention, last_seen)


CUSTOMER_TX = _trimmed("fraud_customer_tx", "customer", WINDOW_30D_MS)
CARD_TX = _trimmed("fraud_card_tx", "card", WINDOW_30D_MS)
# The previous transaction may be older than any window; three members cover the current one
# and a later one being written before the scorer reads (a replay, the stream scorer's race).
CARD_LATEST = StateView("fraud_card_latest", "card", None, 3,
                        int(timedelta(days=365).total_seconds() * 1000))
TERMINAL_TX = _trimmed("fraud_terminal_tx", "terminal", DELAY_MS + WINDOW_30D_MS)
TERMINAL_FRAUDS = _trimmed("fraud_terminal_frauds", "terminal", DELAY_MS + WINDOW_30D_MS)
MERCHANT_TX = _trimmed("fraud_merchant_tx", "merchant", DELAY_MS + WINDOW_30D_MS)
MERCHANT_FRAUDS = _trimmed("fraud_merchant_frauds", "merchant", DELAY_MS + WINDOW_30D_MS)
DEVICE_CARDS = _trimmed("fraud_device_cards", "device", WINDOW_30D_MS, last_seen=True)
IP_CARDS = _trimmed("fraud_ip_cards", "ip", WINDOW_30D_MS, last_seen=True)

VIEWS = (CUSTOMER_TX, CARD_TX, CARD_LATEST, TERMINAL_TX, TERMINAL_FRAUDS, MERCHANT_TX,
         MERCHANT_FRAUDS, DEVICE_CARDS, IP_CARDS)


def epoch_ms(when: datetime) -> int:
    """Milliseconds since the epoch, in integers (float seconds x 1000 can be off by one)."""
    if when.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return (when - _EPOCH) // timedelta(milliseconds=1)


def _number(value: float) -> str:
    return repr(float(value))  # the shortest string that parses back to the same float


def customer_member(transaction_id: str, amount: float) -> str:
    return SEPARATOR.join((escape(transaction_id), _number(amount)))


def card_member(transaction_id: str, amount: float, latitude: float, longitude: float,
                device_id: str, ip_address: str) -> str:
    return SEPARATOR.join((escape(transaction_id), _number(amount), _number(latitude),
                           _number(longitude), escape(device_id), ip_address))


def place_member(transaction_id: str, latitude: float, longitude: float) -> str:
    return SEPARATOR.join((escape(transaction_id), _number(latitude), _number(longitude)))


def fraud_member(transaction_id: str, known_ms: int) -> str:
    return SEPARATOR.join((escape(transaction_id), str(known_ms)))
