"""The online fraud state on Redis or Redis Cluster: pipelined writes, one-round-trip reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.cluster import RedisCluster

from services.common.fraud_online.commands import (
    Command,
    decode_state,
    read_commands,
    write_commands,
)
from services.common.fraud_online.state import FraudReport, FraudState, TransactionLike

RedisClient = redis.Redis | RedisCluster


def _send(client: RedisClient, commands: Sequence[Command]) -> list[Any]:
    # transaction=False: no MULTI/EXEC, so a cluster pipeline may fan out to several nodes;
    # every command touches one key, and replaying a partly applied batch is harmless.
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return list(pipe.execute())


class RedisFraudStateWriter:
    """Applies transactions and fraud reports; each call is one pipeline (one round trip per
    node). Redis errors propagate: the consumer runner retries connection errors."""

    def __init__(self, client: RedisClient, namespace: str = "fs") -> None:
        self._client = client
        self._namespace = namespace

    def apply(self, transactions: Sequence[TransactionLike] = (),
              frauds: Sequence[FraudReport] = ()) -> None:
        commands = write_commands(self._namespace, transactions, frauds)
        if commands:
            _send(self._client, commands)


class RedisFraudStateReader:
    """Fetches everything one transaction's features need in one pipelined round trip.

    The client must not decode responses (members are parsed from bytes).
    """

    def __init__(self, client: RedisClient, namespace: str = "fs") -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("RedisFraudStateReader needs a client with decode_responses=False")
        self._client = client
        self._namespace = namespace

    def read(self, txn: TransactionLike) -> FraudState:
        return decode_state(_send(self._client, read_commands(self._namespace, txn)))
