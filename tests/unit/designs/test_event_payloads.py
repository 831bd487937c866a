"""Typed payloads: ids, ranges and types are checked once, for producers and consumers alike."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.designs.payloads import (
    EVENT_TYPES,
    TransactionData,
    UnknownEventType,
    WatchData,
    payload_of,
)

TRANSACTION = {
    "transaction_id": "tx1", "user_id": "cust42", "card_id": "card42", "amount": 12.5,
    "currency": "EUR", "transaction_type": "purchase", "merchant_id": "m3",
    "merchant_category": "grocery", "terminal_id": "term7", "latitude": 48.1,
    "longitude": 11.6, "timestamp": "2026-11-21T10:00:00Z", "ip_address": "10.1.2.3",
    "device_id": "dev9",
}


def test_a_watch_payload_is_parsed_from_its_event_type() -> None:
    payload = payload_of("watch", {"user_id": "u42", "content_id": "t17",
                                   "watch_seconds": 1200, "completed": True})
    assert payload == WatchData(user_id="u42", content_id="t17", watch_seconds=1200,
                                completed=True)


def test_a_transaction_carries_an_aware_timestamp() -> None:
    payload = payload_of("transaction", TRANSACTION)
    assert isinstance(payload, TransactionData)
    assert payload.timestamp == datetime(2026, 11, 21, 10, tzinfo=UTC)


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("card_id", "card\n42", "control character"),
    ("amount", -1, "greater than or equal to 0"),
    ("transaction_type", "refund", "purchase"),
    ("timestamp", "2026-11-21T10:00:00", "timezone"),
    ("ip_address", "999.1.1.1", "IP"),
])
def test_a_bad_field_is_rejected_naming_the_field(field: str, value: object,
                                                  problem: str) -> None:
    with pytest.raises(ValidationError, match=problem) as error:
        payload_of("transaction", TRANSACTION | {field: value})
    assert error.value.errors()[0]["loc"] == (field,)


def test_an_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        payload_of("watch", {"user_id": "u1", "content_id": "t1", "watch_seconds": 1,
                             "completed": False, "mood": "happy"})


def test_an_unknown_event_type_is_named_with_the_known_ones() -> None:
    with pytest.raises(UnknownEventType, match=r"'purchase'.*known"):
        payload_of("purchase", {})


def test_each_event_type_is_keyed_by_an_entity_field_of_its_payload() -> None:
    for event_type in EVENT_TYPES.values():
        assert event_type.key_field in event_type.payload.model_fields
