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

Behind breakers (one per Redis Cluster master, node_breakers), a batch is split where a master's
breaker is open: the transactions with a key on that master are not sent and come back
`skipped` (decided without their history), the others are recorded and read as usual. A round
trip that fails fails the whole batch (what it wrote is unknown), and counts against the
masters that did not answer, not against every master it reached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast

import redis
from redis.exceptions import RedisClusterException

from services.common.breaker import BreakerSet, Permit
from services.common.features import FeatureStoreUnavailable
from services.common.ids import hash_tag
from services.common.redis_client import RedisClient, refused, unreachable
from services.designs.fraud.commands import entity_keys
from services.designs.fraud.copies import StateCopies
from services.designs.fraud.redis_state import RedisFraudState, send
from services.designs.fraud.scripts import SCRIPTS, for_each
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
# Every script the store runs: loaded on every master before the service is ready (warm)
STORE_SCRIPTS = (*SCRIPTS, GET_DECISIONS, REMEMBER_DECISIONS)


T = TypeVar("T")


@dataclass(frozen=True)
class StateRead:
    """What was read for the transactions of a batch that were not skipped, in batch order."""

    state: StateBatch
    earlier_decisions: list[bytes | None]  # per transaction read, the decision already made
    skipped: dict[int, str] = field(default_factory=dict)  # batch position -> why not read


class FraudStore(Protocol):
    """The scorer's port to the card state (RedisFraudStore; unit tests pass a fake). Every
    method raises FraudStoreUnavailable when the state cannot be reached."""

    def record_and_read(self, transactions: Sequence[TransactionLike]) -> StateRead:
        """Record the batch and read its state; a transaction whose state cannot be reached
        while the rest can is `skipped` (StateRead)."""
        ...

    def remember(self, decisions: Sequence[tuple[str, bytes]],
                 window_s: int) -> list[bytes | None]:
        """Store each (transaction id, decision) unless one is stored; return the earlier one."""
        ...

    def recall(self, transaction_id: str) -> bytes | None:
        """The decision stored for this transaction id, while the window keeps it."""
        ...


class RedisFraudStore:
    def __init__(self, client: RedisClient, namespace: str = "fs",
                 copies: StateCopies | None = None, breakers: BreakerSet | None = None) -> None:
        """`breakers`: node_breakers over this client (None: every call is made)."""
        self._state = RedisFraudState(client, namespace, copies)
        self._client = client
        self._namespace = namespace
        self._breakers = breakers

    def decision_key(self, transaction_id: str) -> str:
        return f"{self._namespace}:fraud_decision:{hash_tag(transaction_id)}"

    def record_and_read(self, transactions: Sequence[TransactionLike]) -> StateRead:
        if self._breakers is None:
            return self._record_and_read(transactions)
        located = [self._parts(txn) for txn in transactions]
        permits = self._breakers.admit(frozenset().union(*located))
        sent = [i for i, parts in enumerate(located) if parts <= permits.keys()]
        read = self._guarded(permits, [located[i] for i in sent],
                             lambda: self._record_and_read([transactions[i] for i in sent]))
        skipped = {i: "feature store skipped (circuit open: "
                      f"{', '.join(sorted(parts - permits.keys()))})"
                   for i, parts in enumerate(located) if not parts <= permits.keys()}
        return StateRead(read.state, read.earlier_decisions, skipped)

    def remember(self, decisions: Sequence[tuple[str, bytes]],
                 window_s: int) -> list[bytes | None]:
        """A decision whose key's master is skipped (breaker open) is not stored (None)."""
        if self._breakers is None:
            return self._remember(decisions, window_s)
        only = self._breakers.only
        located = [frozenset({only if only is not None
                              else self._breakers.part_of(self.decision_key(tid))})
                   for tid, _ in decisions]
        permits = self._breakers.admit(frozenset().union(*located))
        sent = [i for i, parts in enumerate(located) if parts <= permits.keys()]
        stored = self._guarded(permits, [located[i] for i in sent],
                               lambda: self._remember([decisions[i] for i in sent], window_s))
        earlier: list[bytes | None] = [None] * len(decisions)
        for i, reply in zip(sent, stored, strict=True):
            earlier[i] = reply
        return earlier

    def recall(self, transaction_id: str) -> bytes | None:
        """CircuitOpen when the key's master is skipped."""
        if self._breakers is None:
            return self._recall(transaction_id)
        breaker = self._breakers.for_key(self.decision_key(transaction_id))
        return breaker.call(self._recall, transaction_id)

    # --- one round trip -------------------------------------------------------------------------
    def _record_and_read(self, transactions: Sequence[TransactionLike]) -> StateRead:
        if not transactions:
            return StateRead(StateBatch.of([]), [])
        try:
            earlier, state = self._state.record_and_read(
                transactions, [(GET_DECISIONS, (self.decision_key(t.transaction_id),), ())
                               for t in transactions])
        except REDIS_ERRORS as exc:
            raise FraudStoreUnavailable.caused_by(exc) from exc
        return StateRead(state, earlier)

    def _remember(self, decisions: Sequence[tuple[str, bytes]],
                  window_s: int) -> list[bytes | None]:
        if not decisions:
            return []
        try:
            return send(self._client, (), [
                (REMEMBER_DECISIONS, (self.decision_key(transaction_id),), (decision, window_s))
                for transaction_id, decision in decisions])[1]
        except REDIS_ERRORS as exc:
            raise FraudStoreUnavailable.caused_by(exc) from exc

    def _recall(self, transaction_id: str) -> bytes | None:
        try:
            return cast(bytes | None, self._client.get(self.decision_key(transaction_id)))
        except REDIS_ERRORS as exc:
            raise FraudStoreUnavailable.caused_by(exc) from exc

    # --- the breakers ---------------------------------------------------------------------------
    def _parts(self, txn: TransactionLike) -> frozenset[str]:
        """The masters (breakers' parts) of every key the transaction's calls touch."""
        assert self._breakers is not None
        if self._breakers.only is not None:  # one server: its keys need not be built (~6 µs a
            return frozenset({self._breakers.only})  # transaction of the stream scorer's)
        keys = (*entity_keys(self._namespace, txn), self.decision_key(txn.transaction_id))
        return frozenset(self._breakers.part_of(key) for key in keys)

    def _guarded(self, permits: dict[str, Permit], sent: Sequence[frozenset[str]],
                 call: Callable[[], T]) -> T:
        """`call`, which reaches the parts of `sent`, its outcome counted by each part's breaker;
        the permits of parts it does not reach are handed back unused."""
        assert self._breakers is not None
        reached = frozenset().union(*sent)
        self._breakers.release({p: permit for p, permit in permits.items() if p not in reached})
        permits = {p: permit for p, permit in permits.items() if p in reached}
        try:
            result = call()
        except FraudStoreUnavailable as exc:
            self._breakers.settle(permits, self._failed(permits, exc))
            raise
        except BaseException:
            self._breakers.settle(permits, permits)
            raise
        self._breakers.settle(permits)
        return result

    def _failed(self, parts: dict[str, Permit], error: FraudStoreUnavailable) -> set[str]:
        """Which of the parts a failed round trip reached failed. One alone fails; of several,
        after a refused or broken connection (a dead master), those that do not answer a PING
        now: a dead node refuses it at once, a live one answers in a fraction of a millisecond.
        Anything else (a timeout, CLUSTERDOWN, no node answering the slot map) cannot be placed
        so cheaply: a PING to each slow master would wait out another deadline, and a failed
        one re-reads the slot map from every node (seen as 0.7 s onsets with every master
        paused). Each part reached counts it, as one breaker for the whole store did."""
        if len(parts) <= 1 or not refused(error):
            return set(parts)
        return unreachable(self._client, parts) or set(parts)
