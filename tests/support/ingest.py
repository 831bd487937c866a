"""Ingest's event bodies (a watch, a transaction), a stalled bus, the real ingest process, and
reading back what ingest stored on Kafka."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.common.bus.envelope import Event, MalformedEvent, decode_event
from services.common.bus.kafka_bus import records_to_end
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.bus.ports import Delivery, OutboundMessage
from services.common.loopback import free_port
from services.common.probe import process_ready
from services.devstack.servers import REPO_ROOT, ServerProcess

TIME = "2026-11-21T10:00:00Z"


class Stalled(InMemoryPublisher):
    """Holds every publish() until released, as acks=all does while a dead broker is in sync
    (during an election)."""

    def __init__(self, broker: InMemoryBroker) -> None:
        super().__init__(broker)
        self.release = threading.Event()
        self.calls = 0

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        self.calls += 1
        self.release.wait(10)
        return super().publish(messages)


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


def start_ingest(kafka: ServerProcess, redis_server: ServerProcess,
                 workdir: Path) -> ServerProcess:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "ingest.log"
    env = {**os.environ, "MLSD_INGEST_PORT": str(port), "MLSD_ENVIRONMENT": "test",
           "MLSD_KAFKA_BOOTSTRAP_SERVERS": kafka.address, "MLSD_REDIS_URL": redis_server.address,
           "MLSD_INGEST_SPOOL_PATH": str(workdir / "spool.sqlite3")}
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "services.ingest"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                   start_new_session=True)
    server = ServerProcess("ingest", process, log_path, url)
    if process_ready(f"{url}/readyz", process, 30):
        return server
    exited = process.poll()
    server.stop()
    pytest.fail(f"ingest exited with {exited}:\n{server.log_tail()}" if exited is not None
                else f"ingest was not ready after 30 s:\n{server.log_tail()}")
