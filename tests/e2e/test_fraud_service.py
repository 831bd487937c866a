"""The fraud API and stream scorer as processes on real Redis and Kafka: the issue's promises."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from services.common.bus.envelope import Event
from services.common.bus.kafka_bus import KafkaPublisher, ensure_topics, records_to_end
from services.common.bus.ports import OutboundMessage, publish_or_raise
from services.common.bus.topics import (
    FRAUD_DECISIONS,
    FRAUD_DECISIONS_SHADOW,
    FRAUD_LABELS,
    TRANSACTIONS,
    dlq_topic,
    platform_topics,
)
from services.common.models import ModelRepository
from services.common.models.testing import logistic_model
from services.designs.fraud.layout import CARD_RECORD
from services.designs.model_features import FRAUD_FEATURE_NAMES
from services.trainer.feedback import read_topic, training_table
from tests.e2e.conftest import ServiceProcess
from tests.e2e.fraud_calls import decisions_on_kafka, score
from tests.harness import REPO_ROOT, ServerProcess, free_port

pytestmark = pytest.mark.integration
StartService = Callable[..., ServiceProcess]
POLICY = REPO_ROOT / "config" / "fraud" / "policy.toml"
PARIS, NEW_YORK = (48.8566, 2.3522), (40.7128, -74.0060)


def transaction(run: str, n: int, *, card: str = "card1", at: datetime | None = None,
                where: tuple[float, float] = PARIS, amount: float = 42.0,
                device: str = "dev1", category: str = "grocery") -> dict[str, Any]:
    when = at or datetime.now(UTC)
    return {"transaction_id": f"{run}-{n}", "user_id": "cust1", "card_id": card,
            "amount": amount, "currency": "EUR", "transaction_type": "purchase",
            "merchant_id": "m1", "merchant_category": category, "terminal_id": "term1",
            "latitude": where[0], "longitude": where[1], "timestamp": when.isoformat(),
            "ip_address": "81.2.3.4", "device_id": device}






@pytest.fixture
def fraud(start_service: StartService, kafka_server: ServerProcess) -> ServiceProcess:
    ensure_topics(kafka_server.address, platform_topics(3))
    return start_service("fraud")


def test_decides_with_reasons_and_publishes_the_decision_with_its_features(
        fraud: ServiceProcess, kafka_server: ServerProcess) -> None:
    run = uuid.uuid4().hex[:8]
    result = score(fraud, transaction(run, 1))
    assert result["action"] in ("approve", "review", "decline")
    assert result["model_version"] >= 1 and 0 <= result["ml_score"] <= 1
    assert result["degraded"] is False and result["replayed"] is False
    assert any(r["code"] == "ML_SCORE" for r in result["reasons"])

    event = decisions_on_kafka(kafka_server.address, {f"{run}-1"})[f"{run}-1"]
    assert event["action"] == result["action"] and event["path"] == "http"
    assert len(event["features"]) == len(FRAUD_FEATURE_NAMES)

    # The label arrives later; the feedback job joins it with the decision as served.
    body = transaction(run, 1)
    label = Event.new("fraud_label", "e2e", {
        "transaction_id": f"{run}-1", "card_id": body["card_id"], "terminal_id": "term1",
        "merchant_id": "m1", "transaction_time": body["timestamp"], "is_fraud": True})
    publisher = KafkaPublisher(kafka_server.address, client_id="e2e-labels")
    try:
        publish_or_raise(publisher, [OutboundMessage.of(FRAUD_LABELS, body["card_id"], label)])
    finally:
        publisher.close()
    table = training_table(read_topic(kafka_server.address, FRAUD_DECISIONS),
                           read_topic(kafka_server.address, FRAUD_LABELS))
    row = table.set_index("transaction_id").loc[f"{run}-1"]
    assert bool(row["is_fraud"]) is True
    assert [row[name] for name in FRAUD_FEATURE_NAMES] == event["features"]


def test_a_repeated_transaction_id_gets_the_same_decision_and_counts_once_in_velocity(
        fraud: ServiceProcess, redis_client: redis.Redis) -> None:
    run, card = uuid.uuid4().hex[:8], f"card{free_port()}"
    now = datetime.now(UTC)
    first = score(fraud, transaction(run, 1, card=card, at=now))
    again = score(fraud, transaction(run, 1, card=card, at=now))
    later = score(fraud, transaction(run, 2, card=card, at=now + timedelta(seconds=5)))

    assert again["replayed"] is True
    for field in ("risk_score", "action", "reasons", "ml_score", "rule_hits"):
        assert again[field] == first[field]
    assert later["replayed"] is False
    log = redis_client.get(f"fs:fraud_card_log:{{{card}}}") or b""
    assert len(log) == 2 * CARD_RECORD.itemsize


def test_the_cards_recent_transactions_drive_velocity_and_travel_rules(
        fraud: ServiceProcess) -> None:
    run, card = uuid.uuid4().hex[:8], f"card{free_port()}"
    start = datetime.now(UTC) - timedelta(minutes=20)
    for n in range(3):
        score(fraud, transaction(run, n, card=card, at=start + timedelta(seconds=10 * n)))
    fourth = score(fraud, transaction(run, 3, card=card, at=start + timedelta(seconds=40)))
    assert "VELOCITY_1M_COUNT" in fourth["rule_hits"]

    abroad = score(fraud, transaction(run, 4, card=card, where=NEW_YORK,
                                      at=start + timedelta(minutes=15)))
    assert "IMPOSSIBLE_TRAVEL" in abroad["rule_hits"]
    assert abroad["action"] == "decline" and abroad["risk_level"] == "critical"


def test_without_redis_the_decision_is_degraded_not_an_error(
        start_service: StartService) -> None:
    fraud = start_service("fraud", MLSD_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    result = score(fraud, transaction(uuid.uuid4().hex[:8], 1))
    assert result["degraded"] is True
    assert result["degraded_reasons"][0].startswith("features:")
    assert result["ml_score"] is not None  # the model still scores the transaction itself


def test_without_a_model_the_rules_decide_alone(start_service: StartService,
                                                tmp_path: Path) -> None:
    fraud = start_service("fraud", MLSD_MODEL_REPOSITORY=str(tmp_path / "empty"))
    result = score(fraud, transaction(uuid.uuid4().hex[:8], 1, amount=12_000))
    assert result["ml_score"] is None and result["model_version"] is None
    assert any(r.startswith("model:") for r in result["degraded_reasons"])
    assert result["action"] == "review"  # AMOUNT_VERY_HIGH forces a review
    assert "AMOUNT_VERY_HIGH" in result["rule_hits"]


def test_an_edited_policy_file_applies_without_a_restart(start_service: StartService,
                                                         tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    shutil.copy(POLICY, policy)
    fraud = start_service("fraud", MLSD_FRAUD_POLICY_PATH=str(policy))
    run, card = uuid.uuid4().hex[:8], f"card{free_port()}"
    first = score(fraud, transaction(run, 1, card=card, device="dev424242"))
    assert "BLOCK_LIST_DEVICE_ID" not in [r["code"] for r in first["reasons"]]

    text = policy.read_text().replace('device_id = ["dev999999"]',
                                      'device_id = ["dev999999", "dev424242"]')
    policy.write_text(text.replace('version = "', 'version = "edited-'))
    deadline = time.monotonic() + 10
    while True:
        result = score(fraud, transaction(run, int(time.monotonic() * 1000), card=card,
                                          device="dev424242"))
        if result["policy_version"].startswith("edited-") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert result["policy_version"].startswith("edited-")
    assert result["action"] == "decline"
    assert [r["code"] for r in result["reasons"]] == ["BLOCK_LIST_DEVICE_ID"]


def test_the_stream_scorer_decides_every_transaction_and_dead_letters_poison(
        start_service: StartService, kafka_server: ServerProcess) -> None:
    ensure_topics(kafka_server.address, platform_topics(3))
    start_service("fraud.stream")
    run, now = uuid.uuid4().hex[:8], datetime.now(UTC)
    messages = [OutboundMessage.of(TRANSACTIONS, f"card{n % 7}", Event(
        id=f"{run}-{n}", type="transaction", source="e2e", time=now,
        data={**transaction(run, n, card=f"card{n % 7}", at=now), "ip_address": "81.2.3.4"}))
        for n in range(40)]
    poison = OutboundMessage(TRANSACTIONS, "card1", b"{not an event")
    publisher = KafkaPublisher(kafka_server.address, client_id="e2e-fraud")
    try:
        publish_or_raise(publisher, [*messages, poison])
    finally:
        publisher.close()

    wanted = {f"{run}-{n}" for n in range(40)}
    found = decisions_on_kafka(kafka_server.address, wanted, timeout_s=60)
    assert found.keys() == wanted
    assert {event["path"] for event in found.values()} == {"stream"}

    def dead_lettered_by_the_scorer() -> bool:
        return any(dict(record.headers).get("dlq.group") == b"fraud-scorer"
                   for record in records_to_end(kafka_server.address, dlq_topic(TRANSACTIONS))
                   if record.value == b"{not an event")

    deadline = time.monotonic() + 10
    while not dead_lettered_by_the_scorer() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert dead_lettered_by_the_scorer()


def test_a_redelivered_transaction_is_decided_again_the_same_and_counted_once(
        start_service: StartService, kafka_server: ServerProcess,
        redis_client: redis.Redis) -> None:
    """The scorer keeps no dedupe key per event (docs/adr/0003): an event met again (a
    redelivery after a crash) is published again with the decision recorded the first time,
    and the card's state holds the transaction once."""
    ensure_topics(kafka_server.address, platform_topics(3))
    start_service("fraud.stream")
    run, card, now = uuid.uuid4().hex[:8], f"card{free_port()}", datetime.now(UTC)
    message = OutboundMessage.of(TRANSACTIONS, card, Event(
        id=f"{run}-event", type="transaction", source="e2e", time=now,
        data=transaction(run, 1, card=card, at=now)))
    publisher = KafkaPublisher(kafka_server.address, client_id="e2e-redelivery")

    def decisions() -> list[dict[str, Any]]:
        return [data for data in read_topic(kafka_server.address, FRAUD_DECISIONS)
                if data.get("transaction_id") == f"{run}-1"]

    def wait_for(count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 60
        while len(found := decisions()) < count and time.monotonic() < deadline:
            time.sleep(0.5)
        return found

    try:
        publish_or_raise(publisher, [message])
        assert len(wait_for(1)) == 1
        publish_or_raise(publisher, [message])
        first, again = wait_for(2)
    finally:
        publisher.close()
    for field in ("action", "risk_score", "reasons", "ml_score", "features"):
        assert again[field] == first[field]
    log = redis_client.get(f"fs:fraud_card_log:{{{card}}}") or b""
    assert len(log) == CARD_RECORD.itemsize
    assert not list(redis_client.scan_iter("fs:dedupe:fraud-scorer:*"))


def card_records(client: redis.Redis, card: str) -> int:
    return len(client.get(f"fs:fraud_card_log:{{{card}}}") or b"") // CARD_RECORD.itemsize


def handled_by(client: redis.Redis, group: str, event_id: str) -> bool:
    """Whether the stream processor's concern `group` applied this event (its dedupe key)."""
    return bool(client.exists(f"fs:dedupe:{group}:{{{event_id}}}"))


def until(condition: Callable[[], bool], timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.3)
    return condition()


def publish_transactions(bootstrap: str, run: str, cards_and_times: list[tuple[str, datetime]]
                         ) -> None:
    publisher = KafkaPublisher(bootstrap, client_id="e2e-one-writer")
    try:
        publish_or_raise(publisher, [OutboundMessage.of(TRANSACTIONS, card, Event(
            id=f"{run}-event-{n}", type="transaction", source="e2e", time=at,
            data=transaction(run, n, card=card, at=at)))
            for n, (card, at) in enumerate(cards_and_times)])
    finally:
        publisher.close()


def test_the_scorer_records_what_it_decides_and_the_stream_records_only_what_it_handed_over(
        start_service: StartService, kafka_server: ServerProcess,
        redis_client: redis.Redis) -> None:
    """One writer (docs/adr/0007): beside the stack's stream processor (its default concerns),
    a transaction the scorer decides is recorded by the scorer alone; one too old to decide is
    not decided and is recorded by the processor from transactions-unrecorded."""
    ensure_topics(kafka_server.address, platform_topics(3))
    start_service("stream")
    start_service("fraud.stream")
    run, now = uuid.uuid4().hex[:8], datetime.now(UTC)
    fresh, old = f"card-fresh-{run}", f"card-old-{run}"
    publish_transactions(kafka_server.address, run, [(fresh, now),
                                                     (old, now - timedelta(hours=2))])

    assert decisions_on_kafka(kafka_server.address, {f"{run}-0"}, timeout_s=60)
    assert until(lambda: card_records(redis_client, old) == 1), "the old one was never recorded"
    assert card_records(redis_client, fresh) == 1
    assert handled_by(redis_client, "stream-unrecorded-transactions", f"{run}-event-1")
    assert not handled_by(redis_client, "stream-unrecorded-transactions", f"{run}-event-0")
    assert f"{run}-1" not in decisions_on_kafka(kafka_server.address, {f"{run}-1"}, timeout_s=2)


def test_a_transaction_decided_while_the_scorers_redis_is_away_is_recorded_by_the_stream(
        start_service: StartService, kafka_server: ServerProcess,
        redis_client: redis.Redis) -> None:
    """The scorer's store unreachable: its decisions are degraded, never late, and the
    transactions reach the online state through the state writer all the same."""
    ensure_topics(kafka_server.address, platform_topics(3))
    start_service("stream")
    start_service("fraud.stream", MLSD_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    run, now = uuid.uuid4().hex[:8], datetime.now(UTC)
    cards = [f"card-away-{run}-{n}" for n in range(3)]
    publish_transactions(kafka_server.address, run, [(card, now) for card in cards])

    wanted = {f"{run}-{n}" for n in range(3)}
    found = decisions_on_kafka(kafka_server.address, wanted, timeout_s=60)
    assert found.keys() == wanted
    assert all(event["degraded"] for event in found.values())
    assert until(lambda: all(card_records(redis_client, card) == 1 for card in cards))


def challenger_repository(model_repository: Path, tmp_path: Path) -> tuple[Path, int]:
    """A copy of the test repository with a second fraud version, registered, not promoted:
    a constant 0.98 (sigmoid(4)), so its decisions differ from production's and show it."""
    root = tmp_path / "models-with-challenger"
    shutil.copytree(model_repository, root)
    repository = ModelRepository(root)
    version = repository.register("fraud", logistic_model([0.0] * len(FRAUD_FEATURE_NAMES), 4.0),
                                  feature_names=FRAUD_FEATURE_NAMES, metrics={},
                                  training_data_hash="e2e", description="shadow challenger")
    return root, version


def test_the_stream_scorer_shadows_a_challenger_on_its_own_topic_without_acting_on_it(
        start_service: StartService, kafka_server: ServerProcess, model_repository: Path,
        tmp_path: Path) -> None:
    ensure_topics(kafka_server.address, platform_topics(3))
    root, challenger = challenger_repository(model_repository, tmp_path)
    production = ModelRepository(root).production_version("fraud")
    start_service("fraud.stream", MLSD_MODEL_REPOSITORY=str(root),
                  MLSD_FRAUD_SHADOW_VERSION=str(challenger))
    run, now = uuid.uuid4().hex[:8], datetime.now(UTC)
    publisher = KafkaPublisher(kafka_server.address, client_id="e2e-shadow")
    try:
        # Cards of this run alone: another test's transactions would trip the velocity rules.
        publish_or_raise(publisher, [OutboundMessage.of(TRANSACTIONS, f"{run}-c{n % 5}", Event(
            id=f"{run}-{n}", type="transaction", source="e2e", time=now,
            data=transaction(run, n, card=f"{run}-c{n % 5}", at=now))) for n in range(20)])
    finally:
        publisher.close()

    wanted = {f"{run}-{n}" for n in range(20)}
    decided = decisions_on_kafka(kafka_server.address, wanted, timeout_s=60)
    deadline = time.monotonic() + 30
    while True:
        shadowed = {d["transaction_id"]: d
                    for d in read_topic(kafka_server.address, FRAUD_DECISIONS_SHADOW)
                    if d.get("transaction_id") in wanted}
        if wanted <= shadowed.keys() or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert decided.keys() == shadowed.keys() == wanted
    assert {d["model_version"] for d in decided.values()} == {production}
    assert {d["model_version"] for d in shadowed.values()} == {challenger}
    assert {d["action"] for d in shadowed.values()} == {"decline"}  # 0.98: the model declines
    assert {d["action"] for d in decided.values()} != {"decline"}
    for tid in wanted:  # the same transaction, the same vector: only the model differs
        assert shadowed[tid]["features"] == decided[tid]["features"]


def test_a_shadow_version_the_repository_does_not_hold_stops_the_scorer_at_start(
        start_service: StartService, kafka_server: ServerProcess) -> None:
    ensure_topics(kafka_server.address, platform_topics(3))
    with pytest.raises(AssertionError, match="MLSD_FRAUD_SHADOW_VERSION=99"):
        start_service("fraud.stream", MLSD_FRAUD_SHADOW_VERSION="99")
