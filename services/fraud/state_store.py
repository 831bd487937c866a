"""The card's state on Redis: record the transaction and read its features in one round trip.

    store = RedisFraudStore(client)
    reads = store.record_and_read([txn])          # one MULTI/EXEC: GET decision, writes, reads
    earlier = store.remember([(txn_id, decision)], 60)  # SET NX GET: the first one wins

Writes go first: the reads then see every earlier transaction of the batch (the features keep
only what happened strictly before each transaction and never the transaction itself), and two
requests for one card cannot both miss each other. On a single Redis node the round trip is a
MULTI/EXEC transaction, so it is atomic; Redis Cluster refuses cross-slot transactions, so there
it is a plain pipeline (atomic per key; the features' time filter keeps results exact).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.cluster import RedisCluster

from services.common.fraud_online import (
    FraudState,
    TransactionLike,
    decode_state,
    read_commands,
    write_commands,
)
from services.common.fraud_online.redis_state import RedisClient
from services.common.ids import hash_tag


@dataclass(frozen=True)
class StateRead:
    state: FraudState
    earlier_decision: bytes | None  # the decision already made for this transaction id, if any


class FraudStore(Protocol):
    """The scorer's port to the card state (RedisFraudStore; unit tests pass a fake)."""

    def record_and_read(self, transactions: Sequence[TransactionLike]) -> list[StateRead]: ...

    def remember(self, decisions: Sequence[tuple[str, bytes]],
                 window_s: int) -> list[bytes | None]:
        """Store each (transaction id, decision) unless one is stored; return the earlier one."""
        ...


class RedisFraudStore:
    def __init__(self, client: RedisClient, namespace: str = "fs") -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("RedisFraudStore needs a client with decode_responses=False")
        self._client = client
        self._namespace = namespace
        self._atomic = not isinstance(client, RedisCluster)

    def decision_key(self, transaction_id: str) -> str:
        return f"{self._namespace}:fraud_decision:{hash_tag(transaction_id)}"

    def record_and_read(self, transactions: Sequence[TransactionLike]) -> list[StateRead]:
        pipe = self._client.pipeline(transaction=self._atomic)
        for txn in transactions:
            pipe.get(self.decision_key(txn.transaction_id))
        writes = write_commands(self._namespace, transactions)
        for command in writes:
            pipe.execute_command(*command)
        plans = [read_commands(self._namespace, txn) for txn in transactions]
        for plan in plans:
            for command in plan:
                pipe.execute_command(*command)
        replies: list[Any] = pipe.execute()
        earlier, rest = replies[:len(transactions)], replies[len(transactions) + len(writes):]
        reads, at = [], 0
        for plan, decision in zip(plans, earlier, strict=True):
            reads.append(StateRead(decode_state(rest[at:at + len(plan)]), decision))
            at += len(plan)
        return reads

    def remember(self, decisions: Sequence[tuple[str, bytes]],
                 window_s: int) -> list[bytes | None]:
        pipe = self._client.pipeline(transaction=False)
        for transaction_id, decision in decisions:
            pipe.set(self.decision_key(transaction_id), decision, ex=window_s, nx=True, get=True)
        return list(pipe.execute())
