"""The online fraud state on Redis or Redis Cluster: one pipeline records and reads a batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.common.redis_client import RedisClient, require_bytes_replies
from services.common.redis_scripts import send_gathered
from services.designs.fraud.commands import (
    CALLS_PER_TRANSACTION,
    Call,
    Command,
    decode_batch,
    record_calls,
    report_commands,
)
from services.designs.fraud.copies import StateCopies
from services.designs.fraud.state import FraudReport, StateBatch, TransactionLike

# A script holds Redis while it runs (every other client waits behind it): a call does at most
# this many entities' work, so a 500-transaction batch is a few calls per view, not one.
ENTITIES_PER_CALL = 128


def send(client: RedisClient, commands: Sequence[Command] = (),
         calls: Sequence[Call] = ()) -> tuple[list[Any], list[Any]]:
    """One pipeline: the plain commands, then the script calls gathered by view and slot, at
    most ENTITIES_PER_CALL entities a call (the platform's send_gathered); their replies apart,
    each call's in the calls' order. Redis errors are raised as redis-py raises them."""
    return send_gathered(client, commands, calls, ENTITIES_PER_CALL)


class RedisFraudState:
    """Records transactions and fraud reports; `record_and_read` replies with each transaction's
    state as of strictly before it, in the same calls. Redis errors propagate (the consumer
    runner retries connection errors; the scorer degrades)."""

    def __init__(self, client: RedisClient, namespace: str = "fs",
                 copies: StateCopies | None = None) -> None:
        """`copies`: what this client keeps of the logs it read and of its TTL refreshes
        (copies.py); StateCopies(0) keeps nothing (every call reads whole logs, refreshes)."""
        require_bytes_replies(client, "RedisFraudState")
        self.client = client
        self.namespace = namespace
        self.copies = StateCopies() if copies is None else copies

    def record(self, transactions: Sequence[TransactionLike] = (),
               frauds: Sequence[FraudReport] = ()) -> None:
        plan = self.copies.plan()
        calls = [c for txn in transactions
                 for c in record_calls(self.namespace, txn, read=False, plan=plan)]
        commands = report_commands(self.namespace, frauds)
        if calls or commands:
            self._send(commands, calls)
            plan.settle([])

    def record_and_read(self, transactions: Sequence[TransactionLike],
                        calls: Sequence[Call] = ()) -> tuple[list[Any], StateBatch]:
        """The replies to `calls` (the caller's own, sent first in the same pipeline), and the
        state."""
        plan = self.copies.plan()
        own = [c for txn in transactions for c in record_calls(self.namespace, txn, plan=plan)]
        _, replies = self._send((), [*calls, *own])
        state, per = replies[len(calls):], CALLS_PER_TRANSACTION
        logs = iter(plan.settle([reply for i in range(0, len(state), per)
                                 for reply in state[i:i + 2]]))
        rows = [[next(logs), next(logs), *state[i + 2:i + per]]
                for i in range(0, len(state), per)]
        return replies[:len(calls)], decode_batch(rows)

    def _send(self, commands: Sequence[Command], calls: Sequence[Call]
              ) -> tuple[list[Any], list[Any]]:
        try:
            return send(self.client, commands, calls)
        except BaseException:
            self.copies.drop()  # what was written is unknown: check every copy again
            raise
