"""Ingest's event bodies (a watch, a transaction) and reading back what ingest stored on Kafka."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.bus.envelope import Event, MalformedEvent, decode_event
from services.common.bus.kafka_bus import records_to_end

TIME = "2026-11-21T10:00:00Z"


def watch(event_id: str, user: str = "u1", content: str = "t1", seconds: int = 60,
          **overrides: Any) -> dict[str, Any]:
    """A valid watch event as a client posts it."""
    return {"id": event_id, "type": "watch", "source": "web", "time": TIME,
            "data": {"user_id": user, "content_id": content, "watch_seconds": seconds,
                     "completed": False}} | overrides


def transaction(event_id: str, card: str = "card42", **data: Any) -> dict[str, Any]:
    """A valid transaction event: the fraud service's scoring request as `data`."""
    payload = {"transaction_id": f"tx-{event_id}", "user_id": "cust42", "card_id": card,
               "amount": 12.5, "currency": "EUR", "transaction_type": "purchase",
               "merchant_id": "m3", "merchant_category": "grocery", "terminal_id": "term7",
               "latitude": 48.1, "longitude": 11.6, "timestamp": TIME,
               "ip_address": "10.1.2.3", "device_id": "dev9"} | data
    return {"id": event_id, "type": "transaction", "source": "pos", "time": TIME,
            "data": payload}


@dataclass(frozen=True)
class Stored:
    key: str | None
    partition: int
    offset: int
    event: Event


def read_back(bootstrap: str, topic: str, ids: set[str], timeout_s: float = 20.0) -> list[Stored]:
    """Every record of `topic` up to its current end whose event id is one of `ids`."""
    found: list[Stored] = []
    for r in records_to_end(bootstrap, topic, timeout_s):
        try:
            event = decode_event(r.value)
        except MalformedEvent:  # other tests' poison shares the session's topics
            continue
        if event.id in ids:
            key = r.key.decode() if r.key is not None else None
            found.append(Stored(key, r.partition, r.offset, event))
    return found
