"""What the lake accepts on each topic: a valid envelope of one of the topic's event types.

The lake keeps events as they were published, but not whatever bytes were: a record that is
not an event of its topic is poison, dead-lettered like every consumer of the platform does, so
analytics never meets a row its queries cannot read.
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from services.common.bus import topics
from services.common.bus.consumer import PoisonEvent
from services.common.bus.envelope import Event, decode_event
from services.common.bus.ports import Record
from services.designs.payloads import EVENT_TYPES, FraudDecisionData

FRAUD_DECISION = "fraud_decision"  # the fraud service's decision events (not an ingest type)

PAYLOADS: dict[str, dict[str, type[BaseModel]]] = {}
for _known in EVENT_TYPES.values():
    PAYLOADS.setdefault(_known.topic, {})[_known.name] = _known.payload
PAYLOADS[topics.FRAUD_DECISIONS] = {FRAUD_DECISION: FraudDecisionData}

LAKE_TOPICS = tuple(t for t in topics.ALL_TOPICS if t in PAYLOADS)


def lake_event(record: Record) -> Event:
    """The record's event, validated; MalformedEvent or PoisonEvent saying what is wrong."""
    event = decode_event(record.value)
    expected = PAYLOADS.get(record.topic, {})
    payload = expected.get(event.type)
    if payload is None:
        raise PoisonEvent(f"event type {event.type!r} does not belong on {record.topic!r}; "
                          f"expected one of {sorted(expected)}")
    try:
        payload.model_validate(event.data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}"
                             for e in exc.errors())
        raise PoisonEvent(f"invalid {event.type} data: {problems}") from exc
    return event
