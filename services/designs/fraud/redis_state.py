"""The online fraud state on Redis or Redis Cluster: one pipeline records and reads a batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from services.common.redis_client import RedisClient, require_bytes_replies
from services.designs.fraud.commands import (
    CALLS_PER_TRANSACTION,
    Arg,
    Call,
    Command,
    decode_batch,
    record_calls,
    report_commands,
)
from services.designs.fraud.scripts import Script
from services.designs.fraud.state import FraudReport, StateBatch, TransactionLike

# A script holds Redis while it runs (every other client waits behind it): a call does at most
# this many entities' work, so a 500-transaction batch is a few calls per view, not one.
ENTITIES_PER_CALL = 128


@dataclass
class _Group:
    """Calls of one script that can go as one: on Redis Cluster, whose keys share a slot."""

    script: Script
    keys: list[str] = field(default_factory=list)
    args: list[Arg] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # each entity's place among the calls


def _groups(client: RedisClient, calls: Sequence[Call]) -> list[_Group]:
    """The calls gathered by script (and slot, on a cluster), each group's calls in their order,
    at most ENTITIES_PER_CALL a group."""
    open_groups: dict[tuple[str, int], _Group] = {}
    done: list[_Group] = []
    slot = client.keyslot if isinstance(client, RedisCluster) else (lambda key: 0)
    for position, (script, keys, args) in enumerate(calls):
        where = (script.name, slot(keys[0]))
        group = open_groups.get(where)
        if group is None or len(group.positions) == ENTITIES_PER_CALL:
            group = open_groups[where] = _Group(script)
            done.append(group)
        group.keys += keys
        group.args += args
        group.positions.append(position)
    return done


def send(client: RedisClient, commands: Sequence[Command] = (),
         calls: Sequence[Call] = ()) -> tuple[list[Any], list[Any]]:
    """One pipeline: the plain commands, then the script calls; their replies apart, each call's
    in the calls' order.

    The calls go gathered: one script call for every entity of a view in the batch (in their
    order), or on a cluster for those that share a slot. transaction=False: no MULTI/EXEC, so a
    cluster pipeline may fan out to several nodes; every call touches one slot and is atomic
    there, and replaying a batch is harmless. Scripts go by SHA; one Redis does not have yet (a
    restart, a new node) is loaded and the pipeline sent again.
    """
    groups = _groups(client, calls)
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        for group in groups:
            pipe.execute_command("EVALSHA", group.script.sha, len(group.keys), *group.keys,
                                 *group.args)
        try:
            replies = list(pipe.execute())
        except NoScriptError:
            if attempt:
                raise
            for script in {group.script for group in groups}:
                client.script_load(script.source)
            continue
        ordered: list[Any] = [None] * len(calls)
        for group, reply in zip(groups, replies[len(commands):], strict=True):
            for position, entity_reply in zip(group.positions, reply, strict=True):
                ordered[position] = entity_reply
        return replies[:len(commands)], ordered
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
                        calls: Sequence[Call] = ()) -> tuple[list[Any], StateBatch]:
        """The replies to `calls` (the caller's own, sent first in the same pipeline), and the
        state."""
        own = [c for txn in transactions for c in record_calls(self.namespace, txn)]
        _, replies = send(self.client, (), [*calls, *own])
        state, per = replies[len(calls):], CALLS_PER_TRANSACTION
        return replies[:len(calls)], decode_batch([state[i:i + per]
                                                   for i in range(0, len(state), per)])
