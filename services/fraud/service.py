"""The HTTP path's use case: score one transaction, log its decision without waiting on Kafka
(and, when its store failed, hand the transaction to the state writer the same way)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

from services.common.breaker import CircuitOpen
from services.common.bus.background import BackgroundPublisher
from services.common.bus.topics import TRANSACTIONS_UNRECORDED
from services.designs.fraud.records import DecisionOfRecord
from services.fraud.coalesce import CoalescingScorer
from services.fraud.decide import Decision
from services.fraud.decision_events import decision_message, unrecorded_message
from services.fraud.errors import DecisionNotFound, DecisionsUnavailable, TimestampTooFarAhead
from services.fraud.record import DecisionRecord, ServedFrom, recorded_of
from services.fraud.scorer import FraudScorer, Recorded, Scored
from services.fraud.state_store import FraudStoreUnavailable
from services.fraud.transaction import Transaction


class FraudService:
    def __init__(self, scorer: FraudScorer, decisions: BackgroundPublisher | None, topic: str,
                 *, max_body_bytes: int, max_future_s: int, max_batch: int = 64,
                 record: DecisionRecord | None = None) -> None:
        self.scorer = scorer
        self._record = record
        self.max_body_bytes = max_body_bytes
        self._decisions = decisions
        self._topic = topic
        self._max_future = timedelta(seconds=max_future_s)
        self._batches = CoalescingScorer(self._score_batch, max_batch)

    def submit(self, txn: Transaction) -> Future[Scored]:
        """Scored with whatever other requests queued meanwhile (services/fraud/coalesce.py)."""
        return self._batches.submit(txn)

    def close(self) -> None:
        self._batches.close()

    def _score_batch(self, transactions: Sequence[Transaction]) -> list[Scored]:
        scored = self.scorer.score(transactions, "http")
        if self._decisions is not None:
            for item in scored:
                if not item.replayed:
                    self._decisions.submit(decision_message(item, "http", self._topic))
                if not item.recorded:  # decided without its store: the state writer records it
                    self._decisions.submit(unrecorded_message(item.transaction,
                                                              TRANSACTIONS_UNRECORDED))
        return scored

    def check_clock(self, txn: Transaction) -> None:
        ahead = txn.timestamp - datetime.now(UTC)
        if ahead > self._max_future:
            raise TimestampTooFarAhead(
                f"timestamp: {txn.timestamp.isoformat()} is {ahead} ahead of the service's "
                f"clock; at most {self._max_future} is accepted")

    def recorded(self, transaction_id: str) -> tuple[Decision, bool, ServedFrom]:
        """The decision recorded for this id, with its ML factors (computed now for an
        approval), and where it was found (_find)."""
        found, served_from = self._find(transaction_id)
        try:
            decision, computed = self.scorer.with_factors(found)
        except Exception as exc:  # the model that decided cannot be asked now
            raise DecisionsUnavailable(f"the decision's ML factors cannot be computed: "
                                       f"{type(exc).__name__}: {exc}") from exc
        return decision, computed, served_from

    def _find(self, transaction_id: str) -> tuple[Recorded, ServedFrom]:
        """The idempotency window in Redis first, then the record in PostgreSQL.
        DecisionNotFound when neither has it; DecisionsUnavailable when one that might have it
        cannot be read."""
        cache_error: str | None = None
        try:
            cached = self.scorer.recall(transaction_id)
        except FraudStoreUnavailable as exc:  # the window cannot be read: the record may answer
            cached, cache_error = None, str(exc)
        except CircuitOpen as exc:
            cached, cache_error = None, f"CircuitOpen: {exc}"
        if cached is not None:
            return cached, "cache"
        row = self._read_record(transaction_id)
        if row is not None:
            return recorded_of(row), "record"
        if cache_error is not None:
            raise DecisionsUnavailable(f"recorded decisions cannot be read: {cache_error}")
        where = "" if self._record is not None else (
            f" in the last {self.scorer.idempotency_window_s} s")
        raise DecisionNotFound(f"no decision recorded for transaction_id {transaction_id!r}"
                               f"{where}")

    def _read_record(self, transaction_id: str) -> DecisionOfRecord | None:
        if self._record is None:
            return None
        try:
            return self._record.find(transaction_id)
        except Exception as exc:  # the record is away; say so, never which secret it used
            raise DecisionsUnavailable(f"recorded decisions cannot be read: "
                                       f"{type(exc).__name__}") from exc

    def score(self, txn: Transaction) -> Scored:
        """One transaction, waiting for its answer (what the endpoint awaits, synchronously)."""
        return self.submit(txn).result()
