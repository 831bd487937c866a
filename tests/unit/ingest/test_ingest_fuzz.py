"""Fuzzing POST /v1/events with seeded random bodies: no client input ever produces a 5xx."""

from __future__ import annotations

import copy
import json
import random
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.bus.envelope import decode_event
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher
from services.common.bus.topics import ALL_TOPICS
from services.ingest.app import create_app
from services.ingest.dedupe import InMemoryDedupe
from services.ingest.settings import IngestSettings
from tests.support.ingest import transaction, watch

CASES = 1500
LIMITS = IngestSettings(ingest_max_body_bytes=20_000, ingest_max_batch_events=20)
NASTY_STRINGS = ["", " ", "\x00", "é", "💥", "u1", "t1", "card1", "1e999", "NaN", "null",
                 "2026-11-21T10:00:00Z", "2026-11-21T10:00:00", "x" * 300, "{", "\\"]


def random_scalar(rng: random.Random) -> Any:
    kinds: list[Callable[[], Any]] = [
        lambda: None, lambda: rng.random() < 0.5, lambda: rng.randint(-2**70, 2**70),
        lambda: rng.uniform(-1e9, 1e9), lambda: rng.choice(NASTY_STRINGS),
        lambda: "".join(rng.choices(string.printable, k=rng.randint(0, 40))),
    ]
    return rng.choice(kinds)()


def random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.5:
        return random_scalar(rng)
    if roll < 0.75:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice([*NASTY_STRINGS, "id", "type", "data", "events"]):
            random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def mutated_event(rng: random.Random) -> Any:
    makers: list[Callable[[str], dict[str, Any]]] = [watch, transaction]
    event = copy.deepcopy(rng.choice(makers)(f"e{rng.randint(0, 30)}"))
    for _ in range(rng.randint(0, 3)):
        data = event.get("data")
        target = data if isinstance(data, dict) and rng.random() < 0.6 else event
        key = rng.choice([*target, "extra"])
        action = rng.random()
        if action < 0.3:
            target.pop(key, None)
        elif action < 0.8:
            target[key] = random_json(rng)
        else:
            event["type"] = rng.choice(["watch", "transaction", "rating", "click", "exposure",
                                        "impression", "fraud_label", "bogus"])
    return event


def random_body(rng: random.Random) -> tuple[bytes, dict[str, str]]:
    kind = rng.random()
    if kind < 0.1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))), {}
    if kind < 0.2:
        return json.dumps(random_json(rng)).encode(), {}
    if kind < 0.3:
        body = json.dumps({"events": [mutated_event(rng) for _ in range(3)]}).encode()
        cut = rng.randint(0, len(body))  # truncated or spliced JSON
        return body[:cut] + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 3))), {}
    events = [mutated_event(rng) if rng.random() < 0.8 else random_json(rng)
              for _ in range(rng.randint(0, 25))]
    document: Any = {"events": events}
    if rng.random() < 0.1:
        document[rng.choice(["extra", "Events", ""])] = random_json(rng)
    headers = {}
    if rng.random() < 0.05:
        headers["content-encoding"] = rng.choice(["gzip", "br", "identity", "x"])
    if rng.random() < 0.05:
        headers["content-type"] = rng.choice(["text/plain", "application/xml", "nonsense"])
    return json.dumps(document).encode(), headers


@pytest.fixture
def client() -> Iterator[tuple[TestClient, InMemoryBroker, InMemoryDedupe]]:
    broker, dedupe = InMemoryBroker(), InMemoryDedupe()
    with TestClient(create_app(LIMITS, InMemoryPublisher(broker), dedupe)) as test_client:
        yield test_client, broker, dedupe


def test_no_random_body_produces_a_5xx_and_every_event_gets_exactly_one_outcome(
        client: tuple[TestClient, InMemoryBroker, InMemoryDedupe]) -> None:
    test_client, broker, dedupe = client
    rng = random.Random(20261121)
    statuses: dict[int, int] = {}
    for case in range(CASES):
        dedupe.unavailable = rng.random() < 0.1  # the cache's outage must not matter either
        body, headers = random_body(rng)
        response = test_client.post("/v1/events", content=body, headers=headers)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (case, body[:300], response.text[:500])
        answer = response.json()
        assert answer["detail"], (case, answer)
        if response.status_code in (202, 422) and "accepted" in answer:
            posted = json.loads(body)["events"]
            outcomes = (len(answer["accepted"]) + len(answer["duplicates"])
                        + len(answer["rejected"]) + len(answer["failed"]))
            assert outcomes == len(posted), (case, answer)
    # The generator reaches every branch, so the property above is not vacuous.
    assert {202, 400, 413, 415, 422} <= set(statuses), statuses
    stored = [decode_event(r.value).id for t in ALL_TOPICS for r in broker.records(t)]
    assert stored, "some random events were valid and stored"
