"""The online fraud state's storage spec: key names, retention and record encodings (pure).

docs/fraud-features-online.md describes the same layout for people; change both together.

A card's and a customer's history are read whole for every transaction, so they are kept as
numbers: one Redis string per entity, a run of fixed-width little-endian records appended in
arrival order, which numpy reads without parsing (`np.frombuffer`). Ids inside records are
64-bit digests: the features only ever compare them for equality. Terminals, merchants,
devices and IP addresses are only counted, so they stay sorted sets that Redis counts itself.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import numpy as np

from services.common.ids import FIELD_SEPARATOR, escape, hash_tag
from services.designs.model_features import TERMINAL_RISK_DELAY_DAYS

MS_HOUR = 3_600_000
MS_DAY = 24 * MS_HOUR
DELAY_MS = TERMINAL_RISK_DELAY_DAYS * MS_DAY
WINDOW_30D_MS = 30 * MS_DAY
# Partitions are keyed by card, so a terminal's, merchant's or device's writes come from many
# partitions that lag each other. A write trims relative to its own event time; a day of slack
# keeps the windows of a scorer that is up to a day behind the newest write whole.
SLACK_MS = MS_DAY
SEPARATOR = FIELD_SEPARATOR  # ids in members are escaped (services/common/ids.py)


@dataclass(frozen=True)
class StateView:
    """One kind of sorted set: what it is trimmed to and how long an idle key lives (the script
    that writes it says how: record_activity, record_last_seen, report_commands)."""

    name: str
    entity: str
    retention_ms: int  # trim members scored before (newest event - retention)
    ttl_ms: int        # PEXPIRE after every write: idle entities disappear

    def key(self, namespace: str, entity_id: str) -> str:
        """`<namespace>:<view>:{<entity id>}`: the hash tag puts an entity's keys in one slot."""
        return f"{namespace}:{self.name}:{hash_tag(entity_id)}"


def _trimmed(name: str, entity: str, window_ms: int) -> StateView:
    retention = window_ms + SLACK_MS
    return StateView(name, entity, retention, retention)


@dataclass(frozen=True)
class LogView:
    """One kind of record log: a Redis string of fixed-width records, appended per transaction.

    The head is trimmed of records older than (the appended record's time - retention), in
    steps, never below the newest `keep_newest` records: stale records cost memory only, since
    the features filter every window by time.
    """

    name: str
    entity: str
    record: np.dtype
    retention_ms: int
    keep_newest: int
    ttl_ms: int

    def key(self, namespace: str, entity_id: str) -> str:
        return f"{namespace}:{self.name}:{hash_tag(entity_id)}"


# at_ms, transaction digest, then the fields the features read, as numpy sees them
SPEND_RECORD = np.dtype([("at_ms", "<i8"), ("tx", "<u8"), ("amount", "<f8")])
CARD_RECORD = np.dtype([("at_ms", "<i8"), ("tx", "<u8"), ("amount", "<f8"), ("latitude", "<f8"),
                        ("longitude", "<f8"), ("device", "<u8"), ("ip", "<u8")])
_SPEND = struct.Struct("<qQd")
_CARD = struct.Struct("<qQdddQQ")
assert _SPEND.size == SPEND_RECORD.itemsize and _CARD.size == CARD_RECORD.itemsize
# A card record opens with a spend record's fields (record_calls cuts one from the other).
assert CARD_RECORD.descr[:len(SPEND_RECORD.descr)] == SPEND_RECORD.descr

CUSTOMER_LOG = LogView("fraud_customer_log", "customer", SPEND_RECORD, WINDOW_30D_MS + SLACK_MS,
                       0, WINDOW_30D_MS + SLACK_MS)
# The previous transaction may be older than any window: the newest three records stay, however
# old, and the key lives a year, so a card back after months still has its last place.
CARD_LOG = LogView("fraud_card_log", "card", CARD_RECORD, WINDOW_30D_MS + SLACK_MS, 3,
                   int(timedelta(days=365).total_seconds() * 1000))
LOGS = (CUSTOMER_LOG, CARD_LOG)
TERMINAL_TX = _trimmed("fraud_terminal_tx", "terminal", DELAY_MS + WINDOW_30D_MS)
TERMINAL_FRAUDS = _trimmed("fraud_terminal_frauds", "terminal", DELAY_MS + WINDOW_30D_MS)
MERCHANT_TX = _trimmed("fraud_merchant_tx", "merchant", DELAY_MS + WINDOW_30D_MS)
MERCHANT_FRAUDS = _trimmed("fraud_merchant_frauds", "merchant", DELAY_MS + WINDOW_30D_MS)
DEVICE_CARDS = _trimmed("fraud_device_cards", "device", WINDOW_30D_MS)  # cards by last use
IP_CARDS = _trimmed("fraud_ip_cards", "ip", WINDOW_30D_MS)

TERMINAL_WINDOW_DAYS = (1, 7, 30)  # the terminal's delayed windows; the merchant's is 30 days
VIEWS = (TERMINAL_TX, TERMINAL_FRAUDS, MERCHANT_TX, MERCHANT_FRAUDS, DEVICE_CARDS, IP_CARDS)
KEY_FAMILIES = (*(log.name for log in LOGS), *(view.name for view in VIEWS))


@lru_cache(maxsize=1 << 15)
def digest(value: str) -> int:
    """An id as the 64-bit number records hold (BLAKE2b): equal ids, equal digests; two
    different ids collide with probability 2^-64. Cached: a scorer digests a transaction's ids
    once to record it and again for its features, and a device's or address's every time."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little")


def spend_record(at_ms: int, transaction_id: str, amount: float) -> bytes:
    return _SPEND.pack(at_ms, digest(transaction_id), amount)


def card_record(at_ms: int, transaction_id: str, amount: float, latitude: float,
                longitude: float, device_id: str, ip_address: str) -> bytes:
    return _CARD.pack(at_ms, digest(transaction_id), amount, latitude, longitude,
                      digest(device_id), digest(ip_address))


def fraud_member(transaction_id: str, known_ms: int) -> str:
    return SEPARATOR.join((escape(transaction_id), str(known_ms)))
