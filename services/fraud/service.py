"""The HTTP path's use case: score one transaction, log its decision without waiting on Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.common.bus.background import BackgroundPublisher
from services.fraud.decision_events import decision_message
from services.fraud.errors import TimestampTooFarAhead
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

    def score(self, txn: Transaction) -> Scored:
        scored = self.scorer.score([txn], "http")[0]
        if self._decisions is not None and not scored.replayed:
            self._decisions.submit(decision_message(scored, "http", self._topic))
        return scored
