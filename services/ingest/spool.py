"""A durable spool on ingest's own disk: batches the bus cannot take now, forwarded in order later.

During a Kafka election no acks=all write is acknowledged for a second or more. Instead of
refusing those batches, ingest writes them here (SQLite in WAL mode with synchronous=FULL: the
commit returns once the write-ahead log is fsynced) and answers 202; the Forwarder publishes the
spool's head, oldest first, with acks=all, and deletes a row only after the broker acknowledged
it. A process killed between the acknowledgement and the delete sends those rows again on
restart: consumers dedupe by event id, so the re-sent event is absorbed.

Layout (one table, one row per event, `seq` is the order events were accepted in):
    spool(seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT, key TEXT NULL, value BLOB,
          headers TEXT (JSON [[name, hex]]), event_type TEXT, spooled_at REAL (unix seconds))
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from services.common.bus.ports import Delivery, OutboundMessage, Publisher

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key TEXT,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    event_type TEXT NOT NULL,
    spooled_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class SpoolLimits:
    max_events: int  # events held at once: past it, batches are refused (503) as without a spool
    max_age_s: float  # the oldest event's age: past it the bus is down, not electing a leader


@dataclass(frozen=True)
class Spooled:
    """One event as the spool holds it."""

    seq: int
    message: OutboundMessage
    event_type: str
    spooled_at: float


class SpoolFull(Exception):
    """The spool is past a bound: the batch is refused as it would be without a spool."""


def _headers_text(message: OutboundMessage) -> str:
    return json.dumps([[name, value.hex()] for name, value in message.headers])


def _headers_of(text: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((name, bytes.fromhex(value)) for name, value in json.loads(text))


class Spool:
    """Thread-safe: route threads append, the forwarder reads the head and deletes."""

    def __init__(self, path: Path, limits: SpoolLimits,
                 clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._limits = limits
        self._clock = clock  # wall clock: an event's age must survive a restart
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)
        self._db: sqlite3.Connection | None = None
        self._depth = 0

    def open(self) -> None:
        """Open (or create) the file and count what it holds; in the lifespan, not the factory."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        # WAL: the forwarder's reads and the routes' appends do not block each other;
        # synchronous=FULL: a commit returns after the log is fsynced, so a 202 survives a
        # crash of the machine, not only of the process.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(_SCHEMA)
        with self._lock:
            self._db = db
            self._depth = int(db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"the spool {self._path} is not open")
        return self._db

    @property
    def path(self) -> Path:
        return self._path

    def depth(self) -> int:
        with self._lock:
            return self._depth

    def oldest_age_s(self) -> float:
        """How long the oldest held event has waited (0.0 when the spool is empty)."""
        with self._lock:
            if self._db is None:
                return 0.0
            row = self._db.execute(
                "SELECT spooled_at FROM spool ORDER BY seq LIMIT 1").fetchone()
        return max(0.0, self._clock() - float(row[0])) if row else 0.0

    def refusal(self, adding: int) -> str | None:
        """Why `adding` more events cannot be spooled now, or None."""
        depth, age = self.depth(), self.oldest_age_s()
        if depth and age > self._limits.max_age_s:
            return (f"the spool's oldest event has waited {age:.0f} s for the event bus (over "
                    f"{self._limits.max_age_s:g} s: the bus is down, not electing a leader)")
        if depth + adding > self._limits.max_events:
            return (f"the spool holds {depth} events; {adding} more would pass its bound of "
                    f"{self._limits.max_events}")
        return None

    def append(self, messages: Sequence[OutboundMessage], event_types: Sequence[str]) -> None:
        """Store the events in order, durably (fsynced) on return; SpoolFull past a bound."""
        reason = self.refusal(len(messages))
        if reason is not None:
            raise SpoolFull(reason)
        now = self._clock()
        rows = [(m.topic, m.key, m.value, _headers_text(m), t, now)
                for m, t in zip(messages, event_types, strict=True)]
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO spool (topic, key, value, headers, event_type, spooled_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)", rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._depth += len(rows)
            self._appended.notify_all()

    def head(self, limit: int) -> list[Spooled]:
        """The oldest `limit` events, in the order they were spooled."""
        with self._lock:
            rows = self._conn().execute(
                "SELECT seq, topic, key, value, headers, event_type, spooled_at FROM spool "
                "ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [Spooled(seq, OutboundMessage(topic, key, bytes(value), _headers_of(headers)),
                        event_type, spooled_at)
                for seq, topic, key, value, headers, event_type, spooled_at in rows]

    def delete(self, seqs: Sequence[int]) -> None:
        """Forget these events: the broker acknowledged them."""
        if not seqs:
            return
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                deleted = db.executemany(
                    "DELETE FROM spool WHERE seq = ?", [(s,) for s in seqs]).rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._depth -= deleted

    def wait_for_events(self, timeout_s: float) -> bool:
        """Block until the spool holds something (True) or the timeout passes (False)."""
        with self._lock:
            return self._appended.wait_for(lambda: self._depth > 0, timeout_s)

    def wake(self) -> None:
        """Release a forwarder waiting for events (at shutdown)."""
        with self._lock:
            self._appended.notify_all()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class ForwarderCounts(Protocol):
    """What the forwarder reports (IngestMetrics implements it)."""

    def forwarded(self, event_type: str, n: int) -> None: ...


class Forwarder:
    """One thread: publish the spool's head with acks=all, delete what the broker acknowledged.

    Deleting only the acknowledged rows and publishing from the head again keeps each key's
    order: the producer is idempotent, so within a partition a failed message fails every one
    after it, and they all go again in the next round, in order.
    """

    def __init__(self, spool: Spool, publisher: Publisher, counts: ForwarderCounts,
                 chunk: int = 500, retry_pause_s: float = 0.2) -> None:
        self._spool = spool
        self._publisher = publisher
        self._counts = counts
        self._chunk = chunk
        self._retry_pause_s = retry_pause_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-spool-forwarder",
                                        daemon=True)

    def start(self) -> None:
        held = self._spool.depth()
        if held:
            logger.info("resuming the spool", extra={"events": held,
                                                     "path": str(self._spool.path)})
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._spool.wake()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def forward_once(self) -> int:
        """Publish one chunk of the head; the number of events acknowledged and deleted."""
        head = self._spool.head(self._chunk)
        if not head:
            return 0
        deliveries = self._publisher.publish([s.message for s in head])
        done = acknowledged(head, deliveries)
        self._spool.delete([s.seq for s in done])
        for event_type, n in Counter(s.event_type for s in done).items():
            self._counts.forwarded(event_type, n)
        if len(done) < len(head):
            error = next(d.error for d in deliveries if not d.ok)
            logger.warning("spooled events not acknowledged yet; retrying",
                           extra={"pending": len(head) - len(done), "error": error})
        return len(done)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._spool.wait_for_events(timeout_s=1.0):
                continue
            if self._stop.is_set():
                return
            try:
                if self.forward_once() == 0:
                    # The publisher already waited its delivery timeout (or is not connected
                    # yet): a short pause keeps an unreachable bus from spinning a core.
                    self._stop.wait(self._retry_pause_s)
            except Exception:
                logger.exception("spool forwarder failed a round; retrying")
                self._stop.wait(self._retry_pause_s)


def acknowledged(head: Sequence[Spooled], deliveries: Sequence[Delivery]) -> list[Spooled]:
    """The spooled events whose own delivery the broker acknowledged."""
    return [s for s, d in zip(head, deliveries, strict=True) if d.ok]
