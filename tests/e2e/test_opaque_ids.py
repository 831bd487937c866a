"""Awkward ids end to end: ingest, Kafka, the stream, Redis and both services take any id.

The ids hold every character that means something somewhere downstream: `|` (packed members),
`{` and `}` (Redis Cluster hash tags), `%` (their escape), `:` (key separators), `/` (URL paths),
spaces and non-ASCII letters.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis

from services.common.bus.envelope import Event
from services.common.bus.kafka_bus import KafkaPublisher, ensure_topics, records_to_end
from services.common.bus.ports import OutboundMessage, publish_or_raise
from services.common.bus.topics import TRANSACTIONS, WATCH_EVENTS, dlq_topic, platform_topics
from tests.e2e.conftest import ServiceProcess
from tests.e2e.fraud_calls import decisions_on_kafka, score
from tests.harness import ServerProcess

pytestmark = pytest.mark.integration
StartService = Callable[..., ServiceProcess]


def awkward(kind: str, run: str) -> str:
    return f"{kind} {run}|{{x}}:%7B/ü"


def transaction(run: str, n: int, card: str, at: datetime) -> dict[str, Any]:
    return {"transaction_id": f"tx|{run}{{{n}}}/ü", "user_id": awkward("customer", run),
            "card_id": card, "amount": 42.0, "currency": "EUR", "transaction_type": "purchase",
            "merchant_id": f"m-100/{run}", "merchant_category": "grocery",
            "terminal_id": awkward("terminal", run), "latitude": 48.8566, "longitude": 2.3522,
            "timestamp": at.isoformat(), "ip_address": "81.2.3.4",
            "device_id": awkward("device", run)}


@pytest.fixture
def topics(kafka_server: ServerProcess) -> None:
    ensure_topics(kafka_server.address, platform_topics(3))


def test_any_id_is_scored_with_velocity_kept_per_card_and_replays_recognised(
        start_service: StartService, topics: None) -> None:
    fraud = start_service("fraud")
    run = uuid.uuid4().hex[:8]
    card, neighbour = awkward("card", run), awkward("card", run) + "}"
    start = datetime.now(UTC) - timedelta(minutes=5)
    answers = [score(fraud, transaction(run, n, card, start + timedelta(seconds=10 * n)))
               for n in range(4)]
    assert "VELOCITY_1M_COUNT" in answers[3]["rule_hits"]
    assert answers[3]["transaction_id"] == f"tx|{run}{{3}}/ü"

    # A card whose id differs by one brace has a state of its own.
    other = score(fraud, transaction(run, 9, neighbour, start + timedelta(seconds=45)))
    assert "VELOCITY_1M_COUNT" not in other["rule_hits"]
    again = score(fraud, transaction(run, 3, card, start + timedelta(seconds=30)))
    assert again["replayed"] is True and again["risk_score"] == answers[3]["risk_score"]


def test_an_unknown_card_with_any_ids_is_decided_by_the_stream_scorer(
        start_service: StartService, kafka_server: ServerProcess, topics: None) -> None:
    start_service("fraud.stream")
    run, now = uuid.uuid4().hex[:8], datetime.now(UTC)
    card = f"c3f9a1 {run}"
    messages = [OutboundMessage.of(TRANSACTIONS, card, Event(
        id=f"event|{run}{{{n}}}", type="transaction", source="e2e", time=now,
        data=transaction(run, n, card, now + timedelta(seconds=n)))) for n in range(5)]
    publisher = KafkaPublisher(kafka_server.address, client_id="e2e-ids")
    try:
        publish_or_raise(publisher, messages)
    finally:
        publisher.close()
    wanted = {f"tx|{run}{{{n}}}/ü" for n in range(5)}
    found = decisions_on_kafka(kafka_server.address, wanted, timeout_s=60)
    assert found.keys() == wanted
    assert {event["card_id"] for event in found.values()} == {card}
    assert not [r for r in records_to_end(kafka_server.address, dlq_topic(TRANSACTIONS))
                if run.encode() in (r.value or b"")]


def recommend(service: ServiceProcess, user: str) -> dict[str, Any]:
    response = httpx.get(f"{service.url}/v1/recommendations/{quote(user, safe='')}",
                         params={"k": 10}, timeout=10)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def watch(user: str, content: str, run: str) -> dict[str, Any]:
    return {"id": f"watch|{run}{{{uuid.uuid4().hex}}}", "type": "watch", "source": "e2e",
            "time": datetime.now(UTC).isoformat(),
            "data": {"user_id": user, "content_id": content, "watch_seconds": 1200,
                     "completed": True}}


def test_any_user_id_runs_through_ingest_the_stream_and_the_recommender(
        redis_client: redis.Redis, start_service: StartService, kafka_server: ServerProcess,
        topics: None) -> None:
    # redis_client first: an empty Redis, so user_123 is a stranger whatever ran before
    start_service("stream")
    ingest = start_service("ingest")
    recommender = start_service("recommender")
    run = uuid.uuid4().hex[:8]
    user = awkward("user", run)
    watched = ["t1", "t2", "t3", "t4", "t5", "t6"]
    unknown_title = f"movie|456{{{run}}}"
    events = [watch(user, title, run) for title in [*watched, unknown_title]]
    response = httpx.post(f"{ingest.url}/v1/events", json={"events": events}, timeout=10)
    assert response.status_code == 202, response.text

    deadline = time.monotonic() + 30
    while (answer := recommend(recommender, user))["watch_count"] < len(events):
        assert time.monotonic() < deadline, "the stream never applied the watches"
        time.sleep(0.2)
    assert answer["user_id"] == user and answer["personalization"] != "cold"
    shown = {item["content_id"] for item in answer["items"]}
    assert len(shown) == 10 and not shown & {*watched, unknown_title}
    assert not [r for r in records_to_end(kafka_server.address, dlq_topic(WATCH_EVENTS))
                if run.encode() in (r.value or b"")]

    for stranger in ("new-user-xyz", "user_123", f"ana+{run}@example.com"):
        cold = recommend(recommender, stranger)
        assert cold["personalization"] == "cold" and cold["watch_count"] == 0
        assert len(cold["items"]) == 10
