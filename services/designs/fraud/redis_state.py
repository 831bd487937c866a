"""The online fraud state on Redis or Redis Cluster: one pipeline records and reads a batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from services.common.redis_client import RedisClient, require_bytes_replies
from services.designs.fraud.commands import (
    CALLS_PER_TRANSACTION,
    Call,
    Command,
    decode_batch,
    record_calls,
    report_commands,
)
from services.designs.fraud.scripts import SCRIPTS
from services.designs.fraud.state import FraudReport, StateBatch, TransactionLike


def send(client: RedisClient, commands: Sequence[Command] = (),
         calls: Sequence[Call] = ()) -> tuple[list[Any], list[Any]]:
    """One pipeline: the plain commands, then the script calls; their replies apart.

    transaction=False: no MULTI/EXEC, so a cluster pipeline may fan out to several nodes; every
    command and call touches one slot and is atomic there, and replaying a batch is harmless.
    Scripts go by SHA; one Redis does not have yet (a restart, a new node) is loaded and the
    pipeline sent again.
    """
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        for script, keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            replies = list(pipe.execute())
        except NoScriptError:
            if attempt:
                raise
            for script in SCRIPTS:
                client.script_load(script.source)
            continue
        return replies[:len(commands)], replies[len(commands):]
    raise AssertionError("unreachable")


class RedisFraudState:
    """Records transactions and fraud reports; `record_and_read` replies with each transaction's
    state as of strictly before it, in the same calls. Redis errors propagate (the consumer
    runner retries connection errors; the scorer degrades)."""

    def __init__(self, client: RedisClient, namespace: str = "fs") -> None:
        require_bytes_replies(client, "RedisFraudState")
        self.client = client
        self.namespace = namespace

    def record(self, transactions: Sequence[TransactionLike] = (),
               frauds: Sequence[FraudReport] = ()) -> None:
        calls = [c for txn in transactions for c in record_calls(self.namespace, txn, read=False)]
        commands = report_commands(self.namespace, frauds)
        if calls or commands:
            send(self.client, commands, calls)

    def record_and_read(self, transactions: Sequence[TransactionLike],
                        commands: Sequence[Command] = ()) -> tuple[list[Any], StateBatch]:
        """The replies to `commands` (sent first, in the same pipeline), and the state."""
        calls = [c for txn in transactions for c in record_calls(self.namespace, txn)]
        replies, state = send(self.client, commands, calls)
        per = CALLS_PER_TRANSACTION
        return replies, decode_batch([state[i:i + per] for i in range(0, len(state), per)])
