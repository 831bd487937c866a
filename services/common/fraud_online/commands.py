"""The Redis calls that record and read the online fraud state, and their replies decoded (pure).

Planning calls apart from sending them keeps the layout testable without a server and lets one
adapter send them to Redis or Redis Cluster alike: every call touches one entity's keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from services.common.fraud_online.layout import (
    CARD_LOG,
    CUSTOMER_LOG,
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
    LogView,
    StateView,
    card_record,
    epoch_ms,
    fraud_member,
    spend_record,
)
from services.common.fraud_online.scripts import (
    APPEND_LOG,
    RECORD_ACTIVITY,
    RECORD_LAST_SEEN,
    Script,
)
from services.common.fraud_online.state import (
    FraudReport,
    KnownFraud,
    StateBatch,
    TransactionLike,
)
from services.common.ids import unescape

Command = tuple[str | int, ...]
Arg = str | int | bytes
Call = tuple[Script, tuple[str, ...], tuple[Arg, ...]]  # a script, its keys, its arguments
TERMINAL_WINDOW_DAYS = (1, 7, 30)
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
        assert view.retention_ms is not None
        cutoff = max(scored.values()) - view.retention_ms
        commands.append(("ZREMRANGEBYSCORE", key, "-inf", f"({cutoff}"))
        commands.append(("PEXPIRE", key, view.ttl_ms))
    return commands


def _append(view: LogView, namespace: str, entity: str, record: bytes, at: int,
            read: bool) -> Call:
    return (APPEND_LOG, (view.key(namespace, entity),),
            (record, view.record.itemsize, at - view.retention_ms, view.keep_newest,
             view.ttl_ms, int(read)))


def _activity(tx: StateView, frauds: StateView, namespace: str, entity: str, tid: str, at: int,
              counts: Sequence[tuple[int, str]] | None) -> Call:
    assert tx.retention_ms is not None
    args: list[Arg] = [tid, at, at - tx.retention_ms, tx.ttl_ms]
    if counts is not None:  # reports of transactions in [t - 37 d, t - 7 d), then the counts
        args += [at - DELAY_MS - WINDOW_30D_MS, f"({at - DELAY_MS}"]
        for low, high in counts:
            args += [low, high]
    return (RECORD_ACTIVITY, (tx.key(namespace, entity), frauds.key(namespace, entity)),
            tuple(args))


def _last_seen(view: StateView, namespace: str, entity: str, card: str, at: int,
               read: bool) -> Call:
    assert view.retention_ms is not None
    args: tuple[Arg, ...] = (card, at, at - view.retention_ms, view.ttl_ms)
    return (RECORD_LAST_SEEN, (view.key(namespace, entity),),
            (*args, at - WINDOW_30D_MS) if read else args)


def record_calls(namespace: str, txn: TransactionLike, read: bool = True) -> list[Call]:
    """The CALLS_PER_TRANSACTION calls that record one transaction; with `read`, each also
    replies with what the features need from its entity, as of strictly before the transaction
    (decode_batch). Idempotent: a redelivered transaction is counted once."""
    t, ip, tid = epoch_ms(txn.timestamp), str(txn.ip_address), txn.transaction_id
    delayed_end = f"({t - DELAY_MS}"
    terminal_counts = [(t - DELAY_MS - days * MS_DAY, delayed_end) for days in TERMINAL_WINDOW_DAYS]
    merchant_counts = [(t - DELAY_MS - WINDOW_30D_MS, delayed_end)]
    return [
        _append(CARD_LOG, namespace, txn.card_id,
                card_record(t, tid, txn.amount, txn.latitude, txn.longitude, txn.device_id, ip),
                t, read),
        _append(CUSTOMER_LOG, namespace, txn.user_id, spend_record(t, tid, txn.amount), t, read),
        _activity(TERMINAL_TX, TERMINAL_FRAUDS, namespace, txn.terminal_id, tid, t,
                  terminal_counts if read else None),
        _activity(MERCHANT_TX, MERCHANT_FRAUDS, namespace, txn.merchant_id, tid, t,
                  merchant_counts if read else None),
        _last_seen(DEVICE_CARDS, namespace, txn.device_id, txn.card_id, t, read),
        _last_seen(IP_CARDS, namespace, ip, txn.card_id, t, read),
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
