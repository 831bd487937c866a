"""Calls the end-to-end tiers make to a running fraud service and the decisions it put on Kafka."""

from __future__ import annotations

import time
from typing import Any

import httpx

from services.common.bus.topics import (
    FRAUD_DECISIONS,
)
from services.trainer.feedback import read_topic
from tests.e2e.conftest import ServiceProcess


def score(service: ServiceProcess, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{service.url}/v1/score", json=body, timeout=10)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def decisions_on_kafka(bootstrap: str, wanted: set[str], timeout_s: float = 30
                       ) -> dict[str, dict[str, Any]]:
    """The fraud-decisions events of the wanted transaction ids, read from the beginning again
    until all are there (decisions are published after the answer) or the time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = {data["transaction_id"]: data for data in read_topic(bootstrap, FRAUD_DECISIONS)
                 if data.get("transaction_id") in wanted}
        if wanted <= found.keys() or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
