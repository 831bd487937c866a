"""Consumers of record: fraud-decisions and fraud-labels, buffered per batch, one write a batch.

handle() validates and buffers (a malformed event is PoisonEvent: the runner dead-letters it);
flush() writes the batch in one transaction before the runner commits its offsets, so a crash
replays the batch and the idempotent writes absorb the replay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import psycopg
from pydantic import BaseModel, ValidationError

from services.common.bus.consumer import PoisonEvent, TransientError
from services.common.bus.envelope import Event
from services.designs.fraud.records import DecisionOfRecord, LabelOfRecord
from services.designs.payloads import FraudDecisionData, FraudLabelData

DECISION_EVENT = "fraud_decision"  # services/fraud/decision_events.py's EVENT_TYPE
LABEL_EVENT = "fraud_label"
P = TypeVar("P", bound=BaseModel)
R = TypeVar("R")


def _payload(event: Event, expected_type: str, model: type[P]) -> P:
    if event.type != expected_type:
        raise PoisonEvent(f"event type {event.type!r} is not {expected_type!r}")
    try:
        payload = model.model_validate(event.data)
    except ValidationError as exc:
        raise PoisonEvent(f"invalid {expected_type}: {exc.errors(include_url=False)}") from exc
    # PostgreSQL's text and jsonb refuse NUL: found here, it is this event's fault, not the batch's
    if "\\u0000" in payload.model_dump_json():
        raise PoisonEvent("a NUL character, which the record cannot store")
    return payload


class _BatchWriter(Generic[R]):
    def __init__(self, write: Callable[[Sequence[R]], object]) -> None:
        self._write = write
        self._pending: list[R] = []
        self.written = 0  # handled events made durable (new rows and repeats alike)

    def flush(self) -> None:
        if not self._pending:
            return
        try:
            self._write(self._pending)
        except psycopg.OperationalError as exc:  # down, restarting, no free connection
            raise TransientError(f"postgres: {type(exc).__name__}: {exc}") from exc
        self.written += len(self._pending)
        self._pending = []


class DecisionWriter(_BatchWriter[DecisionOfRecord]):
    """fraud-decisions -> fraud_decisions: the first decision per transaction id stays."""

    def handle(self, event: Event) -> None:
        data = _payload(event, DECISION_EVENT, FraudDecisionData)
        self._pending.append(DecisionOfRecord(event.id, event.time, data))


class LabelWriter(_BatchWriter[LabelOfRecord]):
    """fraud-labels -> fraud_labels: labels and chargebacks; the newest label per transaction."""

    def handle(self, event: Event) -> None:
        data = _payload(event, LABEL_EVENT, FraudLabelData)
        self._pending.append(LabelOfRecord(event.id, event.time, data))
