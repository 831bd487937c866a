"""Fraud labels into the online fraud state: terminal and merchant risk, known from arrival on."""

from __future__ import annotations

from services.common.bus.envelope import Event
from services.common.redis_client import RedisClient
from services.designs.fraud.redis_state import RedisFraudState
from services.designs.fraud.state import FraudReport
from services.designs.parsing import parse_payload
from services.designs.payloads import FraudLabelData


class FraudLabelHandler:
    """Buffers fraud reports and applies them in one pipeline on `flush`.

    A label's arrival is its event time: a report counts for decisions made after it, never
    before, so replaying old events cannot leak a label into an earlier decision. A genuine
    label changes nothing: every transaction counts as genuine until it is reported (the
    handbook's assumption, and what the offline features read from `is_fraud`).
    """

    def __init__(self, client: RedisClient, namespace: str = "fs") -> None:
        self._writer = RedisFraudState(client, namespace)
        self._pending: list[FraudReport] = []

    def handle(self, event: Event) -> None:
        label = parse_payload(event, "fraud_label", FraudLabelData)
        if label.is_fraud:
            self._pending.append(FraudReport(label.transaction_id, label.terminal_id,
                                             label.merchant_id, label.transaction_time,
                                             known_at=event.time))

    def flush(self) -> None:
        if self._pending:
            self._writer.record(frauds=self._pending)
            self._pending.clear()  # only once Redis took them: a failed flush is sent again
