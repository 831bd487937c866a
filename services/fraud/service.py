"""The HTTP path's use case: score one transaction, log its decision without waiting on Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.common.bus.background import BackgroundPublisher
from services.fraud.decide import Decision
from services.fraud.decision_events import decision_message
from services.fraud.errors import DecisionNotFound, DecisionsUnavailable, TimestampTooFarAhead
from services.fraud.scorer import FraudScorer, Scored
from services.fraud.transaction import Transaction


class FraudService:
    def __init__(self, scorer: FraudScorer, decisions: BackgroundPublisher | None, topic: str,
                 *, max_body_bytes: int, max_future_s: int) -> None:
        self.scorer = scorer
        self.max_body_bytes = max_body_bytes
        self._decisions = decisions
        self._topic = topic
        self._max_future = timedelta(seconds=max_future_s)

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
        scored = self.scorer.score([txn], "http")[0]
        if self._decisions is not None and not scored.replayed:
            self._decisions.submit(decision_message(scored, "http", self._topic))
        return scored
