"""Transaction events into the online fraud state: spend, velocity, travel, device and network."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

from services.common.bus.consumer import PoisonEvent
from services.common.bus.events import Event
from services.common.events import Payload, TransactionData, UnknownEventType, payload_of
from services.common.fraud_online import RedisFraudStateWriter
from services.common.fraud_online.redis_state import RedisClient

P = TypeVar("P", bound=Payload)


def parse_payload(event: Event, expected_type: str, model: type[P]) -> P:
    """The event's data as `model`, or PoisonEvent saying why it can never be handled."""
    if event.type != expected_type:
        raise PoisonEvent(f"expected a {expected_type!r} event, got {event.type!r}")
    try:
        payload = payload_of(event.type, event.data)
    except UnknownEventType as exc:
        raise PoisonEvent(str(exc)) from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}"
                             for e in exc.errors())
        raise PoisonEvent(f"invalid {expected_type} data: {problems}") from exc
    if not isinstance(payload, model):
        raise PoisonEvent(f"{expected_type!r} data is a {type(payload).__name__}, "
                          f"not a {model.__name__}")
    return payload


class TransactionFeaturesHandler:
    """`handle` validates and buffers; `flush` applies the buffer in one pipeline.

    Writes are idempotent (members name their transaction), so a batch replayed after a crash
    or a retried flush changes nothing it already changed.
    """

    def __init__(self, client: RedisClient, namespace: str = "fs") -> None:
        self._writer = RedisFraudStateWriter(client, namespace)
        self._pending: list[TransactionData] = []

    def handle(self, event: Event) -> None:
        self._pending.append(parse_payload(event, "transaction", TransactionData))

    def flush(self) -> None:
        if self._pending:
            self._writer.apply(transactions=self._pending)
            self._pending.clear()  # only once Redis took them: a failed flush is sent again
