"""Typed payloads: ids, ranges and types are checked once, for producers and consumers alike."""

from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from services.designs.payloads import (
    EVENT_TYPES,
    IpAddress,
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


IP = TypeAdapter(IpAddress)


@given(st.ip_addresses())
def test_an_address_is_kept_as_the_standard_library_writes_it_whichever_way_it_came(
        address: IPv4Address | IPv6Address) -> None:
    # the online state, the lists and the features key by this text: one address, one text
    written = str(address)
    assert IP.validate_python(written) == written
    assert IP.validate_python(address.exploded) == written
    assert IP.validate_python(written.upper()) == written
    assert IP.validate_python(address) == written
    assert IP.validate_json(f'"{address.exploded}"') == written


@given(st.lists(st.integers(0, 999), min_size=4, max_size=4), st.booleans())
def test_a_dotted_quad_is_taken_exactly_when_the_standard_library_takes_it(
        octets: list[int], padded: bool) -> None:
    text = ".".join(f"{o:03d}" if padded else str(o) for o in octets)
    try:
        expected: str | None = str(ip_address(text))
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValidationError, match="not a valid IPv4 or IPv6 address"):
            IP.validate_python(text)
    else:
        assert IP.validate_python(text) == expected


@pytest.mark.parametrize(("value", "problem"), [
    ("fe80::1%eth0", "zone id"), ("10.1.2.3 ", "not a valid"), ("", "not a valid"),
    (167838211, "valid string"),
])
def test_what_is_not_an_address_is_refused_saying_why(value: object, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        IP.validate_python(value)
