"""The event bus: events on Kafka topics, a publisher that waits for acks, a consumer runner."""

from services.common.bus.envelope import Event, MalformedEvent, decode_event, encode_event
from services.common.bus.ports import Delivery, OutboundMessage, Publisher, Record, RecordSource

__all__ = [
    "Delivery",
    "Event",
    "MalformedEvent",
    "OutboundMessage",
    "Publisher",
    "Record",
    "RecordSource",
    "decode_event",
    "encode_event",
]
