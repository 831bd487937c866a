"""The scorer's state on Redis: record a batch and read its features' state in one round trip.

    store = RedisFraudStore(client)
    read = store.record_and_read(batch)     # earlier decisions + six views' state, one pipeline
    earlier = store.remember([(txn_id, decision)], 60)  # SET NX GET: the first one wins

Each script records the transaction in one entity's keys and replies with that entity's state,
atomically (services/designs/fraud/scripts.py): two requests for one card cannot both miss
each other, on one Redis node and on Redis Cluster alike. The features keep only what happened
strictly before each transaction and never the transaction itself.

Errors follow the platform's convention: the adapter translates Redis's errors into the port's
(FraudStoreUnavailable), so the scorer degrades on that one exception and lets a bug surface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import redis
from redis.exceptions import RedisClusterException

from services.common.features import FeatureStoreUnavailable
from services.common.ids import hash_tag
from services.common.redis_client import RedisClient
from services.designs.fraud.copies import StateCopies
from services.designs.fraud.redis_state import RedisFraudState, send
from services.designs.fraud.scripts import for_each
from services.designs.fraud.state import StateBatch, TransactionLike


class FraudStoreUnavailable(FeatureStoreUnavailable):
    """The card state could not be recorded or read (Redis down, slow, out of memory, a cluster
    without a quorum, ...): the scorer decides without it. The message names the cause as
    `<its error type>: <its message>`, which the decision's `degraded` reason quotes."""

    @classmethod
    def caused_by(cls, error: Exception) -> FraudStoreUnavailable:
        return cls(f"{type(error).__name__}: {error}")


# redis-py's cluster client raises RedisClusterException (not a RedisError) when it cannot find a
# node for a slot at all.
REDIS_ERRORS = (redis.RedisError, RedisClusterException)

# Each gathered as the state's scripts are (one call for many decisions): hundreds of plain
# commands a batch cost the client more to pack and parse than the state itself.
GET_DECISIONS = for_each("get_decisions", "return redis.call('GET', KEYS[1])", keys=1, args=0)
# ARGV: the decision, the window (s). SET NX GET: stores it unless one is there; replies with
# the one that was there, or nil.
REMEMBER_DECISIONS = for_each(
    "remember_decisions", "return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'EX', ARGV[2])",
    keys=1, args=2)


@dataclass(frozen=True)
class StateRead:
    state: StateBatch
    earlier_decisions: list[bytes | None]  # per transaction, the decision already made, if any


class FraudStore(Protocol):
    """The scorer's port to the card state (RedisFraudStore; unit tests pass a fake). Every
    method raises FraudStoreUnavailable when the state cannot be reached."""

    def record_and_read(self, transactions: Sequence[TransactionLike]) -> StateRead: ...

    def remember(self, decisions: Sequence[tuple[str, bytes]],
                 window_s: int) -> list[bytes | None]:
        """Store each (transaction id, decision) unless one is stored; return the earlier one."""
        ...

    def recall(self, transaction_id: str) -> bytes | None:
        """The decision stored for this transaction id, while the window keeps it."""
        ...


class RedisFraudStore:
    def __init__(self, client: RedisClient, namespace: str = "fs",
                 copies: StateCopies | None = None) -> None:
        self._state = RedisFraudState(client, namespace, copies)
        self._client = client
        self._namespace = namespace

    def decision_key(self, transaction_id: str) -> str:
        return f"{self._namespace}:fraud_decision:{hash_tag(transaction_id)}"

    def record_and_read(self, transactions: Sequence[TransactionLike]) -> StateRead:
        try:
            earlier, state = self._state.record_and_read(
                transactions, [(GET_DECISIONS, (self.decision_key(t.transaction_id),), ())
                               for t in transactions])
        except REDIS_ERRORS as exc:
            raise FraudStoreUnavailable.caused_by(exc) from exc
        return StateRead(state, earlier)

    def remember(self, decisions: Sequence[tuple[str, bytes]],
                 window_s: int) -> list[bytes | None]:
        try:
            return send(self._client, (), [
                (REMEMBER_DECISIONS, (self.decision_key(transaction_id),), (decision, window_s))
                for transaction_id, decision in decisions])[1]
        except REDIS_ERRORS as exc:
            raise FraudStoreUnavailable.caused_by(exc) from exc

    def recall(self, transaction_id: str) -> bytes | None:
        try:
            return cast(bytes | None, self._client.get(self.decision_key(transaction_id)))
        except REDIS_ERRORS as exc:
            raise FraudStoreUnavailable.caused_by(exc) from exc
