"""The bus's ports: what a publisher and a record source promise, whatever the technology."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from services.common.bus.envelope import Event, encode_event

Headers = tuple[tuple[str, bytes], ...]
TopicPartitionKey = tuple[str, int]
GATHER_BYTES = 1 << 20  # a gathering fetch (fetch_wait_ms > 0) returns at this much or its wait


@dataclass(frozen=True)
class OutboundMessage:
    topic: str
    key: str | None
    value: bytes
    headers: Headers = ()

    @classmethod
    def of(cls, topic: str, key: str, event: Event) -> OutboundMessage:
        """An event keyed by the entity it is about, so that entity's events stay in order."""
        return cls(topic, key, encode_event(event))


@dataclass(frozen=True)
class Delivery:
    """What the broker said about one message: stored (with its offset) or an error."""

    message: OutboundMessage
    partition: int | None = None
    offset: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class PublishFailed(RuntimeError):
    """At least one message was not acknowledged by the broker."""

    def __init__(self, failed: Sequence[Delivery]) -> None:
        super().__init__(f"{len(failed)} message(s) not acknowledged: {failed[0].error}")
        self.failed = list(failed)


class Publisher(Protocol):
    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        """Send every message; return when each is acknowledged (acks=all) or has failed."""
        ...

    def close(self) -> None: ...


def publish_or_raise(publisher: Publisher, messages: Sequence[OutboundMessage]) -> list[Delivery]:
    deliveries = publisher.publish(messages)
    failed = [d for d in deliveries if not d.ok]
    if failed:
        raise PublishFailed(failed)
    return deliveries


@dataclass(frozen=True)
class Record:
    """One message as a consumer sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default=())


RevokeHandler = Callable[[Sequence[TopicPartitionKey]], None]


class RecordSource(Protocol):
    """A consumer-group member: polls records, commits offsets it is told to, reports lag."""

    def poll(self, timeout_s: float, max_records: int) -> list[Record]: ...

    def commit(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Commit, per partition, the offset of the next record to read."""
        ...

    def lag(self) -> dict[TopicPartitionKey, int]: ...

    def on_revoke(self, handler: RevokeHandler) -> None:
        """Call `handler` before partitions are taken away, so their progress can be committed."""
        ...

    def close(self) -> None: ...
