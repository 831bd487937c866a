"""Seeding replays history as events: shifted to end now, labels only once they have arrived."""

from datetime import UTC, datetime, timedelta

import pandas as pd

from services.common.bus.events import decode_event
from services.common.events import payload_of
from services.seeder.history import recent, transaction_messages, watch_messages

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def transactions() -> pd.DataFrame:
    base = pd.Timestamp("2018-07-01 10:00:00")
    return pd.DataFrame({
        "transaction_id": ["tx1", "tx2"], "tx_datetime": [base, base + pd.Timedelta(hours=1)],
        "customer_id": ["cust1", "cust2"], "card_id": ["card1", "card2"],
        "terminal_id": ["term1", "term2"], "merchant_id": ["m1", "m2"],
        "merchant_category": ["grocery", "travel"], "amount": [10.0, 900.0],
        "currency": ["EUR", "EUR"], "transaction_type": ["purchase", "transfer"],
        "latitude": [48.0, 49.0], "longitude": [2.0, 3.0], "device_id": ["dev1", "dev2"],
        "ip_address": ["10.0.0.1", "10.0.0.2"], "is_fraud": [0, 1], "fraud_scenario": [0, 6],
        "label_time": [base + pd.Timedelta(days=2), base + pd.Timedelta(days=3)],
    })


def test_history_is_shifted_so_it_ends_now_and_every_event_is_valid() -> None:
    frame = transactions()
    shift = NOW - frame["tx_datetime"].max().to_pydatetime().replace(tzinfo=UTC)
    messages = list(transaction_messages(frame, shift, NOW))
    events = [decode_event(m.value) for m in messages]

    assert [e.type for e in events] == ["transaction", "transaction"]  # the label is not due yet
    assert events[-1].time == NOW
    for event in events:
        payload_of(event.type, event.data)  # raises if a field is off
    assert [m.key for m in messages] == ["card1", "card2"]


def test_a_fraud_label_is_published_once_it_has_arrived() -> None:
    frame = transactions()
    shift = timedelta(days=0)
    later = datetime(2018, 7, 10, tzinfo=UTC)
    events = [decode_event(m.value) for m in transaction_messages(frame, shift, later)]

    assert [e.type for e in events] == ["transaction", "transaction", "fraud_label"]
    label = events[-1]
    assert label.data["transaction_id"] == "tx2"
    assert label.time == datetime(2018, 7, 4, 10, tzinfo=UTC)


def test_event_ids_are_stable_so_a_second_seed_is_deduplicated() -> None:
    frame = transactions()
    first = [decode_event(m.value).id for m in transaction_messages(frame, timedelta(), NOW)]
    second = [decode_event(m.value).id for m in transaction_messages(frame, timedelta(), NOW)]
    assert first == second == ["seed-tx-tx1", "seed-tx-tx2", "seed-label-tx2"]


def test_watches_become_watch_events_keyed_by_user() -> None:
    interactions = pd.DataFrame({
        "event_id": ["w1"], "user_id": ["u7"], "content_id": ["t3"],
        "timestamp": [pd.Timestamp("2026-08-05 20:00", tz="UTC")], "watch_seconds": [1800],
        "completed": [True], "rating": pd.array([pd.NA], dtype="Int8"),
    })
    [message] = list(watch_messages(interactions, timedelta(days=1)))
    event = decode_event(message.value)
    assert message.topic == "watch-events" and message.key == "u7"
    assert event.time == datetime(2026, 8, 6, 20, tzinfo=UTC)
    assert event.data == {"user_id": "u7", "content_id": "t3", "watch_seconds": 1800,
                          "completed": True}


def test_recent_keeps_the_last_days_of_history() -> None:
    frame = transactions()
    assert len(recent(frame, "tx_datetime", 1 / 48)) == 1
    assert len(recent(frame, "tx_datetime", None)) == 2
