"""The fraud stream handlers: poison events, what gets buffered, flushes that fail and retry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from services.common.bus.consumer import PoisonEvent
from services.common.bus.envelope import Event
from services.designs.fraud.scripts import SCRIPTS
from services.stream.fraud_labels import FraudLabelHandler
from services.stream.transactions import TransactionFeaturesHandler

WHEN = datetime(2018, 7, 4, 12, 0, tzinfo=UTC)
TRANSACTION = {
    "transaction_id": "tx1", "user_id": "cust1", "card_id": "card1", "amount": 12.5,
    "currency": "EUR", "transaction_type": "purchase", "merchant_id": "m1",
    "merchant_category": "grocery", "terminal_id": "term1", "latitude": 50.0,
    "longitude": 5.0, "timestamp": WHEN.isoformat(), "ip_address": "81.0.0.1",
    "device_id": "dev1",
}
LABEL = {"transaction_id": "tx1", "card_id": "card1", "terminal_id": "term1",
         "merchant_id": "m1", "transaction_time": WHEN.isoformat(), "is_fraud": True}


class FlakyPipeline:
    """Records what a flush sends; the first execute fails like a dropped connection."""

    def __init__(self, owner: FlakyRedis) -> None:
        self._owner = owner
        self._commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any) -> None:
        self._commands.append(args)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        self._owner.attempts += 1
        if self._owner.attempts == 1:
            raise redis.ConnectionError("connection reset")
        self._owner.sent.append(self._commands)
        return [self._reply(c) for c in self._commands]

    @staticmethod
    def _reply(command: tuple[Any, ...]) -> Any:
        """A gathered script call replies once per entity; a plain command once."""
        if command[0] != "EVALSHA":
            return None
        script = {s.sha: s for s in SCRIPTS}[command[1]]
        return [None] * (command[2] // script.keys)


class FlakyRedis:
    def __init__(self) -> None:
        self.attempts = 0
        self.sent: list[list[tuple[Any, ...]]] = []

    def pipeline(self, transaction: bool = True) -> FlakyPipeline:
        return FlakyPipeline(self)

    def get_connection_kwargs(self) -> dict[str, Any]:
        return {}


@pytest.fixture
def unreachable() -> Iterator[redis.Redis]:
    """A client nothing listens behind: any command would raise ConnectionError."""
    client = redis.Redis(port=1, socket_connect_timeout=0.2)
    yield client
    client.close()


def event(type_: str, data: dict[str, Any], time: datetime = WHEN) -> Event:
    return Event.new(type_, "test", data, time=time)


def test_a_transaction_with_invalid_data_is_poison_with_the_reason(
        unreachable: redis.Redis) -> None:
    handler = TransactionFeaturesHandler(unreachable)
    with pytest.raises(PoisonEvent, match="amount: Input should be greater than or equal to 0"):
        handler.handle(event("transaction", TRANSACTION | {"amount": -5}))
    with pytest.raises(PoisonEvent, match="device_id: Field required"):
        handler.handle(event("transaction", {k: v for k, v in TRANSACTION.items()
                                             if k != "device_id"}))
    handler.flush()  # nothing buffered: nothing sent, so the unreachable Redis is never asked


def test_an_event_of_another_type_is_poison_for_each_handler(unreachable: redis.Redis) -> None:
    with pytest.raises(PoisonEvent, match="expected a 'transaction' event, got 'fraud_label'"):
        TransactionFeaturesHandler(unreachable).handle(event("fraud_label", LABEL))
    with pytest.raises(PoisonEvent, match="expected a 'fraud_label' event, got 'watch'"):
        FraudLabelHandler(unreachable).handle(event("watch", {}))


def test_a_genuine_label_changes_nothing(unreachable: redis.Redis) -> None:
    handler = FraudLabelHandler(unreachable)
    handler.handle(event("fraud_label", LABEL | {"is_fraud": False}))
    handler.flush()  # would raise ConnectionError had it buffered a write


def test_a_failed_flush_sends_everything_again_on_the_next_flush() -> None:
    client = FlakyRedis()
    handler = TransactionFeaturesHandler(client)  # type: ignore[arg-type]  # a recording fake
    handler.handle(event("transaction", TRANSACTION))
    with pytest.raises(redis.ConnectionError):
        handler.flush()
    handler.flush()
    handler.flush()  # the buffer was cleared by the successful one: nothing more is sent
    assert client.attempts == 2
    assert len(client.sent) == 1
    # one script call per script: the device's and the IP's share a source, so one call
    assert [c[0] for c in client.sent[0]] == ["EVALSHA"] * len({s.sha for s in SCRIPTS})


def test_a_fraud_label_is_known_from_its_event_time() -> None:
    client = FlakyRedis()
    client.attempts = 1  # no failure this time
    handler = FraudLabelHandler(client)  # type: ignore[arg-type]  # a recording fake
    arrival = WHEN + timedelta(days=3)
    handler.handle(event("fraud_label", LABEL, time=arrival))
    handler.flush()
    zadds = [c for c in client.sent[0] if c[0] == "ZADD"]
    arrival_ms = int(arrival.timestamp()) * 1000
    assert {c[1] for c in zadds} == {"fs:fraud_terminal_frauds:{term1}",
                                     "fs:fraud_merchant_frauds:{m1}"}
    assert all(c[3] == f"tx1|{arrival_ms}" for c in zadds)
