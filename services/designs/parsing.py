"""An event's typed payload for a consumer, or PoisonEvent saying why it can never be handled."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

from services.common.bus.consumer import PoisonEvent
from services.common.bus.envelope import Event
from services.designs.payloads import Payload, UnknownEventType, payload_of

P = TypeVar("P", bound=Payload)


def parse_payload(event: Event, expected_type: str, model: type[P]) -> P:
    """The event's data as `model`, or PoisonEvent saying why it can never be handled."""
    if event.type != expected_type:
        raise PoisonEvent(f"expected a {expected_type!r} event, got {event.type!r}")
    try:
        payload = payload_of(event.type, event.data)
    except UnknownEventType as exc:
        raise PoisonEvent(str(exc)) from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}"
                             for e in exc.errors())
        raise PoisonEvent(f"invalid {expected_type} data: {problems}") from exc
    if not isinstance(payload, model):
        raise PoisonEvent(f"{expected_type!r} data is a {type(payload).__name__}, "
                          f"not a {model.__name__}")
    return payload
