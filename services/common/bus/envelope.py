"""The event envelope (id, type, source, time, data) and its JSON wire format."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from services.common.ids import OpaqueId


class MalformedEvent(ValueError):
    """Bytes that are not a valid event envelope: a poison message, never retried."""


class Event(BaseModel):
    """One fact that happened, as every topic carries it (shaped after CloudEvents).

    `id` is unique per event and makes consumers idempotent; `time` is when it happened
    (event time), which the feature store uses to refuse older-over-newer writes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: OpaqueId
    type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")
    source: str = Field(min_length=1, max_length=128)
    time: AwareDatetime
    data: dict[str, Any]

    @classmethod
    def new(cls, type: str, source: str, data: dict[str, Any],
            time: datetime | None = None, id: str | None = None) -> Event:
        return cls(id=id or uuid.uuid4().hex, type=type, source=source,
                   time=time or datetime.now(UTC), data=data)

    @property
    def time_ms(self) -> int:
        return int(self.time.timestamp() * 1000)


def encode_event(event: Event) -> bytes:
    return event.model_dump_json().encode()


MAX_EVENT_BYTES = 256 * 1024
"""The largest event a consumer parses. Every event of the platform is a few hundred bytes (a
catalog title a few KB); a bigger one, produced by a foreign client straight to the topic, goes
to the dead-letter topic unparsed instead of costing every consumer its parse."""


def decode_event(value: bytes | None) -> Event:
    """Parse and validate an envelope; raise MalformedEvent saying what is wrong."""
    if not value:
        raise MalformedEvent("empty message")
    if len(value) > MAX_EVENT_BYTES:
        raise MalformedEvent(f"oversized event: {len(value):,} bytes, over the "
                             f"{MAX_EVENT_BYTES:,}-byte limit")
    try:
        return Event.model_validate_json(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise MalformedEvent(f"invalid event envelope: {problems}") from exc
