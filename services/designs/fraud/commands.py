"""The Redis calls that record and read the online fraud state, and their replies decoded (pure).

Planning calls apart from sending them keeps the layout testable without a server and lets one
adapter send them to Redis or Redis Cluster alike: every call touches one entity's keys.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from services.common.ids import escape, unescape
from services.common.times import epoch_ms
from services.designs.fraud.copies import BatchPlan
from services.designs.fraud.layout import (
    CARD_LOG,
    CUSTOMER_LOG,
    DEVICE_CARDS,
    IP_CARDS,
    MERCHANT_FRAUDS,
    MERCHANT_TX,
    SEPARATOR,
    SPEND_RECORD,
    TERMINAL_FRAUDS,
    TERMINAL_TX,
    LogView,
    StateView,
    card_record,
    fraud_member,
)
from services.designs.fraud.scripts import (
    APPEND_CARD,
    APPEND_CUSTOMER,
    RECORD_DEVICE,
    RECORD_IP,
    RECORD_MERCHANT,
    RECORD_TERMINAL,
    TRIM_EVERY,
    Script,
    flags,
)
from services.designs.fraud.state import (
    FraudReport,
    KnownFraud,
    StateBatch,
    TransactionLike,
)

Command = tuple[str | int, ...]
Arg = str | int | bytes
Call = tuple[Script, tuple[str, ...], tuple[Arg, ...]]  # a script, its keys, its arguments
CALLS_PER_TRANSACTION = 6


def report_commands(namespace: str, frauds: Iterable[FraudReport]) -> list[Command]:
    """ZADD, trim and PEXPIRE per key for a batch of fraud reports. Idempotent: a member names
    its transaction, so a redelivered report adds nothing; trims are relative to event time."""
    members: dict[tuple[StateView, str], dict[str, int]] = {}
    for report in frauds:
        at = epoch_ms(report.transaction_time)
        member = fraud_member(report.transaction_id, epoch_ms(report.known_at))
        for view, entity in ((TERMINAL_FRAUDS, report.terminal_id),
                             (MERCHANT_FRAUDS, report.merchant_id)):
            members.setdefault((view, entity), {})[member] = at
    commands: list[Command] = []
    for (view, entity), scored in members.items():
        key = view.key(namespace, entity)
        flat: list[str | int] = []
        for member, score in scored.items():
            flat += [score, member]
        commands.append(("ZADD", key, *flat))
        cutoff = max(scored.values()) - view.retention_ms
        commands.append(("ZREMRANGEBYSCORE", key, "-inf", f"({cutoff}"))
        commands.append(("PEXPIRE", key, view.ttl_ms))
    return commands


def entity_keys(namespace: str, txn: TransactionLike) -> tuple[str, ...]:
    """The first key of each of record_calls' calls, in their order: a call's keys share its
    first key's hash tag, so these name every slot (and Redis Cluster master) a transaction's
    state lives on."""
    return (CARD_LOG.key(namespace, txn.card_id), CUSTOMER_LOG.key(namespace, txn.user_id),
            TERMINAL_TX.key(namespace, txn.terminal_id),
            MERCHANT_TX.key(namespace, txn.merchant_id),
            DEVICE_CARDS.key(namespace, txn.device_id),
            IP_CARDS.key(namespace, str(txn.ip_address)))


@lru_cache(maxsize=64)
def _prefixes(namespace: str) -> tuple[str, ...]:
    """Each of record_calls' keys up to its entity id (`<namespace>:<view>:{`), in the order
    card, customer, terminal, terminal frauds, merchant, merchant frauds, device, IP:
    `prefix + escape(id) + "}"` is the view's key(namespace, id), built with one call instead of
    three (eight keys a transaction; tests/unit/fraud/test_fraud_online_layout.py holds them
    equal)."""
    views = (CARD_LOG, CUSTOMER_LOG, TERMINAL_TX, TERMINAL_FRAUDS, MERCHANT_TX, MERCHANT_FRAUDS,
             DEVICE_CARDS, IP_CARDS)
    return tuple(view.key(namespace, "")[:-1] for view in views)


def record_calls(namespace: str, txn: TransactionLike, read: bool = True,
                 plan: BatchPlan | None = None) -> list[Call]:
    """The CALLS_PER_TRANSACTION calls that record one transaction; with `read`, each also
    replies with what the features need from its entity, as of strictly before the transaction
    (decode_batch). Idempotent: a redelivered transaction is counted once. With a plan (the
    client's copies of the logs, its TTL refreshes; copies.py) the logs' appends are checked
    against the copies and TTLs refreshed hourly; without, every call reads the whole log and
    refreshes every TTL."""
    t, ip, tid = epoch_ms(txn.timestamp), str(txn.ip_address), txn.transaction_id
    card = card_record(t, tid, txn.amount, txn.latitude, txn.longitude, txn.device_id, ip)
    spend = card[:SPEND_RECORD.itemsize]  # a card record opens with the spend record's fields
    trim = zlib.crc32(tid.encode()) % TRIM_EVERY == 0  # one call in TRIM_EVERY, by id
    (card_at, customer_at, terminal_at, terminal_frauds_at, merchant_at, merchant_frauds_at,
     device_at, ip_at) = _prefixes(namespace)
    card_key = f"{card_at}{escape(txn.card_id)}}}"
    customer_key = f"{customer_at}{escape(txn.user_id)}}}"
    terminal_id, merchant_id = escape(txn.terminal_id), escape(txn.merchant_id)
    terminal = (f"{terminal_at}{terminal_id}}}", f"{terminal_frauds_at}{terminal_id}}}")
    merchant = (f"{merchant_at}{merchant_id}}}", f"{merchant_frauds_at}{merchant_id}}}")
    device, address = f"{device_at}{escape(txn.device_id)}}}", f"{ip_at}{escape(ip)}}}"
    if plan is None or not read:  # a copy is only kept from a log read back
        whole = flags(read, True, True)
        card_args: tuple[Arg, ...] = (card, whole, b"", 0, 0)
        spend_args: tuple[Arg, ...] = (spend, whole, b"", 0, 0)
    else:
        card_args = plan.log_args(CARD_LOG, card_key, card)
        spend_args = plan.log_args(CUSTOMER_LOG, customer_key, spend)
    if plan is None:
        terminal_flags = merchant_flags = device_flags = ip_flags = flags(read, trim, True)
    else:
        refresh = plan.refresh
        terminal_flags = flags(read, trim, refresh(terminal[0]))
        merchant_flags = flags(read, trim, refresh(merchant[0]))
        device_flags = flags(read, trim, refresh(device))
        ip_flags = flags(read, trim, refresh(address))
    return [
        (APPEND_CARD, (card_key,), card_args),
        (APPEND_CUSTOMER, (customer_key,), spend_args),
        (RECORD_TERMINAL, terminal, (tid, t, terminal_flags)),
        (RECORD_MERCHANT, merchant, (tid, t, merchant_flags)),
        (RECORD_DEVICE, (device,), (txn.card_id, t, device_flags)),
        (RECORD_IP, (address,), (txn.card_id, t, ip_flags)),
    ]


def _scored(reply: Sequence[Any]) -> Iterable[tuple[list[str], int]]:
    """A WITHSCORES reply as (member fields, score in ms), flat (member, score, ...) or nested
    [member, score] pairs, scores as bytes or floats: whichever protocol the client speaks."""
    if reply and isinstance(reply[0], list | tuple):
        pairs: Iterable[tuple[Any, Any]] = reply
    else:
        flat = iter(reply)
        pairs = zip(flat, flat, strict=True)
    for member, score in pairs:
        yield member.decode().split(SEPARATOR), int(float(score))


def _frauds(reply: Sequence[Any]) -> tuple[KnownFraud, ...]:
    return tuple(KnownFraud(at, unescape(tid), int(known)) for (tid, known), at in _scored(reply))


def _records(logs: Sequence[bytes | None], view: LogView) -> tuple[np.ndarray, np.ndarray]:
    """Every log's whole records in one array, and the row each came from."""
    size = view.record.itemsize
    whole = [log[:len(log) - len(log) % size] if log else b"" for log in logs]
    records = np.frombuffer(b"".join(whole), dtype=view.record)
    owners = np.repeat(np.arange(len(logs), dtype=np.intp), [len(log) // size for log in whole])
    return records, owners


def _seen(reply: Any) -> float:
    return float("nan") if reply is None else float(reply)


def decode_batch(replies: Sequence[Sequence[Any]]) -> StateBatch:
    """Per transaction, the replies to its record_calls(read=True), in their order."""
    card, card_owner = _records([r[0] for r in replies], CARD_LOG)
    customer, customer_owner = _records([r[1] for r in replies], CUSTOMER_LOG)
    terminal = [r[2] for r in replies]
    merchant = [r[3] for r in replies]
    device = [r[4] for r in replies]
    ip = [r[5] for r in replies]
    return StateBatch(
        customer=customer, customer_owner=customer_owner, card=card, card_owner=card_owner,
        terminal_counts=np.array([r[1:4] for r in terminal], dtype=np.int64).reshape(-1, 3),
        terminal_frauds=tuple(_frauds(r[0]) for r in terminal),
        merchant_count_30d=np.array([r[1] for r in merchant], dtype=np.int64),
        merchant_frauds=tuple(_frauds(r[0]) for r in merchant),
        device_cards_30d=np.array([r[0] for r in device], dtype=np.int64),
        device_card_last_seen_ms=np.array([_seen(r[1]) for r in device], dtype=np.float64),
        ip_cards_30d=np.array([r[0] for r in ip], dtype=np.int64),
        ip_card_last_seen_ms=np.array([_seen(r[1]) for r in ip], dtype=np.float64),
    )
