"""The Redis commands that write and read the online fraud state, and their replies decoded (pure).

Planning commands apart from sending them keeps the layout testable without a server and lets
one adapter send them to Redis or Redis Cluster alike: every command touches one key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from services.common.fraud_online.layout import (
    CARD_LATEST,
    CARD_TX,
    CUSTOMER_TX,
    DELAY_MS,
    DEVICE_CARDS,
    IP_CARDS,
    MERCHANT_FRAUDS,
    MERCHANT_TX,
    MS_DAY,
    SEPARATOR,
    TERMINAL_FRAUDS,
    TERMINAL_TX,
    WINDOW_30D_MS,
    StateView,
    card_member,
    customer_member,
    epoch_ms,
    fraud_member,
    place_member,
)
from services.common.fraud_online.state import (
    CardUse,
    FraudReport,
    FraudState,
    KnownFraud,
    Place,
    Spend,
    TransactionLike,
)
from services.common.ids import unescape

Command = tuple[str | int, ...]
TERMINAL_WINDOW_DAYS = (1, 7, 30)


class _Batch:
    """Members per key: one ZADD, one trim and one PEXPIRE per key, however many events."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace
        self._keys: dict[str, tuple[StateView, dict[str, int]]] = {}

    def add(self, view: StateView, entity_id: str, member: str, score_ms: int) -> None:
        key = view.key(self._namespace, entity_id)
        members = self._keys.setdefault(key, (view, {}))[1]
        members[member] = max(score_ms, members.get(member, score_ms))

    def commands(self) -> list[Command]:
        commands: list[Command] = []
        for key, (view, members) in self._keys.items():
            scored: list[str | int] = []
            for member, score in members.items():
                scored += [score, member]
            commands.append(("ZADD", key, "GT", *scored) if view.last_seen
                            else ("ZADD", key, *scored))
            if view.retention_ms is not None:
                cutoff = max(members.values()) - view.retention_ms
                commands.append(("ZREMRANGEBYSCORE", key, "-inf", f"({cutoff}"))
            if view.keep_newest is not None:
                commands.append(("ZREMRANGEBYRANK", key, 0, -view.keep_newest - 1))
            commands.append(("PEXPIRE", key, view.ttl_ms))
        return commands


def write_commands(namespace: str, transactions: Iterable[TransactionLike] = (),
                   frauds: Iterable[FraudReport] = ()) -> list[Command]:
    """Commands that apply transactions and fraud reports. Idempotent: a member names its
    transaction, so a redelivered event adds nothing; trims are relative to event time."""
    batch = _Batch(namespace)
    for txn in transactions:
        at, ip = epoch_ms(txn.timestamp), str(txn.ip_address)
        tid = txn.transaction_id
        batch.add(CUSTOMER_TX, txn.user_id, customer_member(tid, txn.amount), at)
        batch.add(CARD_TX, txn.card_id, card_member(tid, txn.amount, txn.latitude,
                                                    txn.longitude, txn.device_id, ip), at)
        batch.add(CARD_LATEST, txn.card_id, place_member(tid, txn.latitude, txn.longitude), at)
        batch.add(TERMINAL_TX, txn.terminal_id, tid, at)
        batch.add(MERCHANT_TX, txn.merchant_id, tid, at)
        batch.add(DEVICE_CARDS, txn.device_id, txn.card_id, at)
        batch.add(IP_CARDS, ip, txn.card_id, at)
    for report in frauds:
        at = epoch_ms(report.transaction_time)
        member = fraud_member(report.transaction_id, epoch_ms(report.known_at))
        batch.add(TERMINAL_FRAUDS, report.terminal_id, member, at)
        batch.add(MERCHANT_FRAUDS, report.merchant_id, member, at)
    return batch.commands()


def read_commands(namespace: str, txn: TransactionLike) -> list[Command]:
    """Everything one transaction's features need, one command per line of FraudState."""
    t = epoch_ms(txn.timestamp)
    before_t, since_30d = f"({t}", t - WINDOW_30D_MS
    delayed_end, delayed_start = f"({t - DELAY_MS}", t - DELAY_MS - WINDOW_30D_MS
    terminal = TERMINAL_TX.key(namespace, txn.terminal_id)
    device = DEVICE_CARDS.key(namespace, txn.device_id)
    ip = IP_CARDS.key(namespace, str(txn.ip_address))
    return [
        ("ZRANGE", CUSTOMER_TX.key(namespace, txn.user_id), since_30d, before_t, "BYSCORE",
         "WITHSCORES"),
        ("ZRANGE", CARD_TX.key(namespace, txn.card_id), since_30d, before_t, "BYSCORE",
         "WITHSCORES"),
        ("ZRANGE", CARD_LATEST.key(namespace, txn.card_id), 0, -1, "WITHSCORES"),
        *(("ZCOUNT", terminal, t - DELAY_MS - days * MS_DAY, delayed_end)
          for days in TERMINAL_WINDOW_DAYS),
        ("ZRANGE", TERMINAL_FRAUDS.key(namespace, txn.terminal_id), delayed_start, delayed_end,
         "BYSCORE", "WITHSCORES"),
        ("ZCOUNT", MERCHANT_TX.key(namespace, txn.merchant_id), delayed_start, delayed_end),
        ("ZRANGE", MERCHANT_FRAUDS.key(namespace, txn.merchant_id), delayed_start, delayed_end,
         "BYSCORE", "WITHSCORES"),
        ("ZCOUNT", device, since_30d, before_t),
        ("ZSCORE", device, txn.card_id),
        ("ZCOUNT", ip, since_30d, before_t),
        ("ZSCORE", ip, txn.card_id),
    ]


def _scored(reply: Sequence[Any]) -> Iterable[tuple[list[str], int]]:
    """A WITHSCORES reply as (member fields, score in ms), whichever protocol the client speaks:
    RESP3 (redis-py 8's default) nests [member, score] pairs with float scores, RESP2 sends
    member, score, member, score... as bytes."""
    if reply and isinstance(reply[0], list | tuple):
        pairs: Iterable[tuple[Any, Any]] = reply
    else:
        flat = iter(reply)
        pairs = zip(flat, flat, strict=True)
    for member, score in pairs:
        yield member.decode().split(SEPARATOR), int(float(score))


def _frauds(reply: Sequence[Any]) -> tuple[KnownFraud, ...]:
    return tuple(KnownFraud(at, unescape(tid), int(known)) for (tid, known), at in _scored(reply))


def _optional_ms(reply: Any) -> int | None:
    return None if reply is None else int(float(reply))


def decode_state(replies: Sequence[Any]) -> FraudState:
    """The replies to read_commands, in their order, as a FraudState."""
    (customer, card, latest, term_1d, term_7d, term_30d, term_frauds, merchant_count,
     merchant_frauds, device_count, device_seen, ip_count, ip_seen) = replies
    return FraudState(
        customer_30d=tuple(Spend(at, unescape(tid), float(amount))
                           for (tid, amount), at in _scored(customer)),
        card_30d=tuple(CardUse(at, unescape(tid), float(amount), float(lat), float(lon),
                               unescape(device), ip)
                       for (tid, amount, lat, lon, device, ip), at in _scored(card)),
        card_latest=tuple(Place(at, unescape(tid), float(lat), float(lon))
                          for (tid, lat, lon), at in _scored(latest)),
        terminal_counts=(int(term_1d), int(term_7d), int(term_30d)),
        terminal_frauds=_frauds(term_frauds),
        merchant_count_30d=int(merchant_count),
        merchant_frauds=_frauds(merchant_frauds),
        device_cards_30d=int(device_count),
        device_card_last_seen_ms=_optional_ms(device_seen),
        ip_cards_30d=int(ip_count),
        ip_card_last_seen_ms=_optional_ms(ip_seen),
    )
