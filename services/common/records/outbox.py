"""The transactional outbox: events written beside the rows they announce, published after commit.

    with pool.connection() as conn, conn.transaction():
        ... write the rows ...
        enqueue(conn, messages)             # same transaction: both commit, or neither
    OutboxRelay(pool, publisher).drain()    # publish what committed, oldest first, mark sent

A message is published only once its transaction committed (the relay cannot see it before),
and at least once (marked sent only after Kafka acknowledged it; a crash in between publishes
it again, and consumers drop the repeat by its event id).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from services.common.bus.ports import OutboundMessage, Publisher, publish_or_raise

logger = logging.getLogger(__name__)


def enqueue(conn: psycopg.Connection[TupleRow],
            messages: Sequence[OutboundMessage]) -> None:
    """Add the messages to the outbox inside the caller's transaction."""
    if not messages:
        return
    with conn.cursor() as cur:
        cur.executemany(b"INSERT INTO outbox (topic, key, value) VALUES (%s, %s, %s)",
                        [(m.topic, m.key, m.value) for m in messages])


class OutboxRelay:
    """Publishes committed outbox rows in id order. Several relays may run: each batch is
    locked (FOR UPDATE SKIP LOCKED), so two relays never publish the same rows at once."""

    def __init__(self, pool: ConnectionPool, publisher: Publisher, batch: int = 1_000) -> None:
        self._pool = pool
        self._publisher = publisher
        self._batch = batch

    def relay_once(self) -> int:
        """Publish one batch and mark it sent, in one transaction; how many were sent. If
        Kafka does not acknowledge every message the transaction rolls back: all stay unsent."""
        with self._pool.connection() as conn, conn.transaction():
            rows = conn.execute(
                b"SELECT id, topic, key, value FROM outbox WHERE sent_at IS NULL "
                b"ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", (self._batch,)).fetchall()
            if not rows:
                return 0
            publish_or_raise(self._publisher, [
                OutboundMessage(str(topic), None if key is None else str(key), bytes(value))
                for _, topic, key, value in rows])
            conn.execute(b"UPDATE outbox SET sent_at = now() WHERE id = ANY(%s)",
                         ([row[0] for row in rows],))
        return len(rows)

    def drain(self) -> int:
        """Relay until nothing committed is left unsent; how many were sent."""
        total = 0
        while sent := self.relay_once():
            total += sent
        if total:
            logger.info("outbox relayed", extra={"messages": total})
        return total

    def purge_sent(self, older_than_s: float) -> int:
        """Delete rows sent more than `older_than_s` ago (their events are in Kafka and the
        catalog rows stay): the outbox holds what is in flight, not history. How many went."""
        with self._pool.connection() as conn:
            cur = conn.execute(b"DELETE FROM outbox WHERE sent_at < now() - make_interval("
                               b"secs => %s)", (older_than_s,))
            return max(cur.rowcount, 0)

    def unsent(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute(b"SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
        return 0 if row is None else int(row[0])
