"""Transaction events into the online fraud state: spend, velocity, travel, device and network."""

from __future__ import annotations

from services.common.bus.envelope import Event
from services.common.redis_client import RedisClient
from services.designs.fraud.redis_state import RedisFraudState
from services.designs.parsing import parse_payload
from services.designs.payloads import TransactionData


class TransactionFeaturesHandler:
    """`handle` validates and buffers; `flush` records the buffer in one pipeline.

    Records are idempotent (each names its transaction), so a batch replayed after a crash
    or a retried flush changes nothing it already changed.
    """

    def __init__(self, client: RedisClient, namespace: str = "fs") -> None:
        self._writer = RedisFraudState(client, namespace)
        self._pending: list[TransactionData] = []

    def handle(self, event: Event) -> None:
        self._pending.append(parse_payload(event, "transaction", TransactionData))

    def flush(self) -> None:
        if self._pending:
            self._writer.record(transactions=self._pending)
            self._pending.clear()  # only once Redis took them: a failed flush is sent again
