"""What one client knows of the state it last wrote: its copies of the logs, its TTL refreshes.

    copies = StateCopies(max_logs=20_000)
    plan = copies.plan()                         # one per batch
    args = plan.log_args(CARD_LOG, key, record)  # the append script's arguments
    flag = plan.refresh(key)                     # 1: refresh this sorted set's TTL in this call
    logs = plan.settle(replies)                  # after the pipeline: each planned log as it is

A stream scorer owns a partition of the cards: the log it read for a card's last transaction is,
unless someone else wrote since, the log as it is. It sends the copy's length and newest record
with the append; the script checks them against the log (scripts._APPEND_LOG) and, when they
match, appends without moving the log into Lua and replies with the new length only, so the
client rebuilds the log from its copy. A copy that is stale (another scorer, the HTTP path, the
stream processor, an expiry) fails the check and the script replies with the whole log, as it
would without copies: a copy only ever saves work, never changes what is read.

A key's TTL is refreshed once an hour per client at most instead of on every write: the TTLs are
days to a year, so a key written in the last hour is never less than an hour short of its TTL.
Both are bounded (least recently used copies go first); an empty StateCopies (max_logs=0)
refreshes every time and holds no copy. Not thread-safe: one scoring thread uses a store's copies
(the stream scorer's runner, the HTTP path's coalescing thread).
"""

from __future__ import annotations

import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.designs.fraud.layout import LogView
from services.designs.fraud.scripts import LOG_STEP, flags

logger = logging.getLogger(__name__)

REFRESH_EVERY_S = 3600.0
_AT_MS = struct.Struct("<q")


@dataclass
class _Copy:
    log: bytes
    refreshed_at: float  # the clock's time of this client's last TTL refresh of the key


@dataclass
class _Pending:
    key: str
    expected: bytes | None  # the log if the check passes; None: the call reads the whole log


def _holds(log: bytes, record: bytes, size: int) -> bool:
    """Whether a record of this transaction (its digest, bytes 8-16) is in the log."""
    digest, start = record[8:16], 0
    while (at := log.find(digest, start)) >= 0:
        if at % size == 8:
            return True
        start = at + 1
    return False


def _trim(log: bytes, view: LogView, at_ms: int) -> int:
    """The bytes the append script would trim from the head of `log` (its rule, on the copy)."""
    size, cutoff = view.record.itemsize, at_ms - view.retention_ms
    n = len(log) // size
    # most calls stop here (nothing to trim): checked before anything else is built
    if n - view.keep_newest < LOG_STEP or _AT_MS.unpack_from(log, (LOG_STEP - 1) * size)[0] \
            >= cutoff:
        return 0

    def record_at(i: int) -> int:
        return int(_AT_MS.unpack_from(log, i * size)[0])

    drop = LOG_STEP
    while drop < n - view.keep_newest and record_at(drop) < cutoff:
        drop += 1
    return drop * size


class StateCopies:
    """The logs this client last read, and when it last refreshed each key's TTL."""

    def __init__(self, max_logs: int = 20_000, max_refreshes: int = 200_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logs: OrderedDict[str, _Copy] = OrderedDict()
        self._refreshed: dict[str, float] = {}
        self.max_logs = max_logs
        self._max_refreshes = max_refreshes if max_logs else 0
        self._clock = clock
        self.checked = 0   # appends sent with a copy to check
        self.stale = 0     # of those, copies the log had moved past
        self.trimmed = 0   # of those, appends that trimmed the head as the copy said

    def plan(self) -> BatchPlan:
        return BatchPlan(self)

    def _due(self, refreshed_at: float | None, now: float) -> bool:
        return refreshed_at is None or now - refreshed_at >= REFRESH_EVERY_S

    def _keep(self, key: str, log: bytes, refreshed_at: float) -> None:
        if not self.max_logs:
            return
        self._logs[key] = _Copy(log, refreshed_at)
        self._logs.move_to_end(key)
        while len(self._logs) > self.max_logs:
            self._logs.popitem(last=False)

    def _refreshed_now(self, keys: Sequence[str], now: float) -> None:
        if not self._max_refreshes:
            return
        if len(self._refreshed) + len(keys) > self._max_refreshes:
            self._refreshed.clear()  # forgetting costs one refresh a key, nothing else
        for key in keys:
            self._refreshed[key] = now

    def drop(self) -> None:
        """Forget everything (a failed round trip leaves the state unknown: check it all)."""
        self._logs.clear()
        self._refreshed.clear()


@dataclass
class BatchPlan:
    """One batch's calls planned against the copies; the copies change only in settle()."""

    copies: StateCopies
    now: float = field(init=False)
    _pending: list[_Pending] = field(default_factory=list)
    _planned: set[str] = field(default_factory=set)
    _refreshing: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.now = self.copies._clock()

    def log_args(self, view: LogView, key: str, record: bytes) -> tuple[bytes | str | int, ...]:
        """The append script's arguments for this record, asking for the log back. A key's first
        call in the batch is checked against the copy; later ones read the whole log (their
        copy would be this batch's guess, and the script checks against what it holds)."""
        copies = self.copies
        copy = None if key in self._planned else copies._logs.get(key)
        self._planned.add(key)
        if copy is None or not copy.log:
            self._pending.append(_Pending(key, None))
            return (record, flags(True, True, True), b"", 0, 0)
        size = view.record.itemsize
        append = not _holds(copy.log, record, size)
        log = copy.log + record if append else copy.log
        drop = _trim(log, view, int(_AT_MS.unpack_from(record)[0]))
        refresh = copies._due(copy.refreshed_at, self.now)
        copies.checked += 1
        copies.trimmed += drop > 0
        self._pending.append(_Pending(key, log[drop:]))
        return (record, flags(True, append, refresh), copy.log[-size:], len(copy.log), drop)

    def refresh(self, key: str) -> int:
        """1 if this call should refresh the key's TTL (not refreshed by this client within the
        hour), marked as refreshed when the batch settles."""
        due = self.copies._due(self.copies._refreshed.get(key), self.now)
        if due:
            self._refreshing.append(key)
        return int(due)

    def settle(self, replies: Sequence[Any]) -> list[bytes]:
        """The log after each log_args call, in order, from the script's replies: the whole log,
        or the new length when the copy was the log."""
        copies, logs = self.copies, []
        for pending, reply in zip(self._pending, replies, strict=True):
            if isinstance(reply, bytes):  # the whole log: the copy was missing or stale
                copies.stale += pending.expected is not None
                log, refreshed_at = reply, self.now
            else:
                assert pending.expected is not None, "a full read replies with the log"
                log = pending.expected
                if int(reply) != len(log):  # a bug, not an outage: the next call reads anew
                    logger.error("log copy disagrees with Redis", extra={
                        "key": pending.key, "copy": len(log), "redis": int(reply)})
                    copies._logs.pop(pending.key, None)
                    logs.append(log)
                    continue
                held = copies._logs.get(pending.key)
                refreshed_at = (self.now if held is None or copies._due(held.refreshed_at,
                                                                         self.now)
                                else held.refreshed_at)
            copies._keep(pending.key, log, refreshed_at)
            logs.append(log)
        copies._refreshed_now(self._refreshing, self.now)
        return logs
