"""The HTTP path's use case: score one transaction, log its decision without waiting on Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

from services.common.bus.background import BackgroundPublisher
from services.fraud.coalesce import CoalescingScorer
from services.fraud.decide import Decision
from services.fraud.decision_events import decision_message
from services.fraud.errors import DecisionNotFound, DecisionsUnavailable, TimestampTooFarAhead
from services.fraud.scorer import FraudScorer, Scored
from services.fraud.transaction import Transaction


class FraudService:
    def __init__(self, scorer: FraudScorer, decisions: BackgroundPublisher | None, topic: str,
                 *, max_body_bytes: int, max_future_s: int, max_batch: int = 64) -> None:
        self.scorer = scorer
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
        return scored

    def check_clock(self, txn: Transaction) -> None:
        ahead = txn.timestamp - datetime.now(UTC)
        if ahead > self._max_future:
            raise TimestampTooFarAhead(
                f"timestamp: {txn.timestamp.isoformat()} is {ahead} ahead of the service's "
                f"clock; at most {self._max_future} is accepted")

    def recorded(self, transaction_id: str) -> tuple[Decision, bool]:
        """The decision recorded for this id, with its ML factors (computed now for an
        approval); DecisionNotFound once the idempotency window has let it go."""
        try:
            found = self.scorer.explain(transaction_id)
        except Exception as exc:  # the store or the model: a dependency, not the request
            raise DecisionsUnavailable(f"recorded decisions cannot be read: "
                                       f"{type(exc).__name__}: {exc}") from exc
        if found is None:
            raise DecisionNotFound(
                f"no decision recorded for transaction_id {transaction_id!r} in the last "
                f"{self.scorer.idempotency_window_s} s")
        return found

    def score(self, txn: Transaction) -> Scored:
        """One transaction, waiting for its answer (what the endpoint awaits, synchronously)."""
        return self.submit(txn).result()
