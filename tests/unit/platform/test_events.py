"""The event envelope and its wire format."""

from datetime import UTC, datetime

import pytest

from services.common.bus.envelope import (
    MAX_EVENT_BYTES,
    Event,
    MalformedEvent,
    decode_event,
    encode_event,
)
from services.common.bus.topics import dlq_topic, platform_topics


def test_an_event_survives_the_wire_unchanged() -> None:
    event = Event.new("watch", "ingest", {"user_id": "u42", "content_id": "t17"})
    assert decode_event(encode_event(event)) == event


def test_a_new_event_gets_a_unique_id_and_an_aware_time() -> None:
    first, second = (Event.new("watch", "ingest", {}) for _ in range(2))
    assert first.id != second.id
    assert first.time.tzinfo is not None


def test_event_time_in_milliseconds_is_what_the_feature_store_guards_on() -> None:
    event = Event.new("watch", "t", {}, time=datetime(2026, 1, 1, tzinfo=UTC))
    assert event.time_ms == 1_767_225_600_000


@pytest.mark.parametrize(("raw", "problem"), [
    (b"", "empty message"),
    (b"not json", "invalid event envelope"),
    (b'{"id": "e1", "type": "watch", "source": "s", "data": {}}', "time: Field required"),
    (b'{"id": "e1", "type": "watch", "source": "s", "time": "2026-01-01T00:00:00", "data": {}}',
     "timezone"),
    (b'{"id": "e\\n1", "type": "watch", "source": "s", "time": "2026-01-01T00:00:00Z", '
     b'"data": {}}', "id:"),
    (b'{"id": "e1", "type": "watch", "source": "s", "time": "2026-01-01T00:00:00Z", "data": {},'
     b' "extra": 1}', "extra: Extra inputs are not permitted"),
])
def test_a_malformed_envelope_is_rejected_saying_what_is_wrong(raw: bytes, problem: str) -> None:
    with pytest.raises(MalformedEvent, match=problem):
        decode_event(raw)


def test_every_platform_topic_has_a_dead_letter_topic() -> None:
    names = {spec.name for spec in platform_topics(partitions=3)}
    assert "watch-events.dlq" in names
    assert all(dlq_topic(name) in names for name in names if not name.endswith(".dlq"))


def test_transactions_gets_room_for_a_dozen_scorers_and_never_fewer_than_the_default() -> None:
    def partitions(default: int) -> dict[str, int]:
        return {spec.name: spec.partitions for spec in platform_topics(partitions=default)}

    assert partitions(3)["transactions"] == 12
    assert partitions(3)["watch-events"] == 3
    assert partitions(24)["transactions"] == 24
    assert partitions(3)["transactions.dlq"] == 1


def test_an_oversized_event_is_rejected_before_it_is_parsed() -> None:
    event = Event.new("watch", "test", {"pad": "x" * MAX_EVENT_BYTES})
    with pytest.raises(MalformedEvent, match=r"oversized event: [\d,]+ bytes, over the 262,144"):
        decode_event(encode_event(event))
    small = Event.new("watch", "test", {"pad": "x" * 1000})
    assert decode_event(encode_event(small)) == small
