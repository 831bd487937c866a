"""An in-memory broker with the same ports as Kafka, for unit tests only (one member per group)."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence

from services.common.bus.ports import (
    Delivery,
    OutboundMessage,
    Record,
    RevokeHandler,
    TopicPartitionKey,
)


class InMemoryBroker:
    """Topics of partitions of records, and the committed offsets of each group."""

    def __init__(self, partitions: int = 3) -> None:
        self.partitions = partitions
        self.logs: dict[TopicPartitionKey, list[Record]] = defaultdict(list)
        self.committed: dict[tuple[str, TopicPartitionKey], int] = {}
        self.unavailable = False  # set to simulate a broker outage

    def append(self, message: OutboundMessage) -> Delivery:
        if self.unavailable:
            return Delivery(message, error="KafkaTimeoutError: broker unavailable")
        # Like Kafka's partitioner: the same key always lands in the same partition.
        partition = zlib.crc32(message.key.encode()) % self.partitions if message.key else 0
        log = self.logs[(message.topic, partition)]
        key = message.key.encode() if message.key is not None else None
        log.append(Record(message.topic, partition, len(log), key, message.value, message.headers))
        return Delivery(message, partition, len(log) - 1)

    def records(self, topic: str) -> list[Record]:
        return [r for (t, _), log in sorted(self.logs.items()) if t == topic for r in log]


class InMemoryPublisher:
    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        return [self._broker.append(m) for m in messages]

    def close(self) -> None:
        pass


class InMemoryRecordSource:
    """The only member of its group: reads every partition from the group's committed offsets."""

    def __init__(self, broker: InMemoryBroker, group: str, topics: Sequence[str]) -> None:
        self._broker = broker
        self._group = group
        self._topics = set(topics)
        self._position: dict[TopicPartitionKey, int] = {}
        self.closed = False

    def _partitions(self) -> list[TopicPartitionKey]:
        return sorted(tp for tp in self._broker.logs if tp[0] in self._topics)

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        batch: list[Record] = []
        for tp in self._partitions():
            start = self._position.get(tp, self._broker.committed.get((self._group, tp), 0))
            taken = self._broker.logs[tp][start:start + max_records - len(batch)]
            batch.extend(taken)
            self._position[tp] = start + len(taken)
        return batch

    def commit(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        for tp, offset in offsets.items():
            self._broker.committed[(self._group, tp)] = offset

    def lag(self) -> dict[TopicPartitionKey, int]:
        return {tp: len(self._broker.logs[tp]) - self._position.get(tp, 0)
                for tp in self._partitions()}

    def on_revoke(self, handler: RevokeHandler) -> None:
        pass  # one member, no rebalances

    def close(self) -> None:
        self.closed = True
