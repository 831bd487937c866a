"""Kafka adapters of the bus ports (kafka-python): an acks=all idempotent publisher, a consumer."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewPartitions, NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import (
    CoordinatorNotAvailableError,
    InvalidPartitionsError,
    KafkaError,
    TopicAlreadyExistsError,
)
from kafka.structs import OffsetAndMetadata

from services.common.bus.ports import (
    GATHER_BYTES,
    Delivery,
    OutboundMessage,
    Record,
    RevokeHandler,
    TopicPartitionKey,
)
from services.common.bus.topics import TopicSpec
from services.common.kafka_access import KafkaAccess, KafkaTarget

logger = logging.getLogger(__name__)


def ensure_topics(kafka: KafkaTarget, specs: Sequence[TopicSpec],
                  timeout_s: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet and add partitions to those with fewer than
    their spec (never fewer: Kafka cannot remove partitions); return the names created, once
    every partition of theirs has a leader."""
    admin = KafkaAdminClient(**KafkaAccess.of(kafka).python_config(), client_id="topic-setup",
                             bootstrap_timeout_ms=int(timeout_s * 1000))
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics([NewTopic(s.name, s.partitions, s.replication_factor,
                                              topic_configs=s.configs()) for s in missing])
            logger.info("created topics", extra={"topics": [s.name for s in missing]})
            _await_leaders(admin, missing, timeout_s)
        _grow_partitions(admin, [s for s in specs if s.name in existing])
        return [s.name for s in missing]
    finally:
        admin.close()


def _await_leaders(admin: KafkaAdminClient, specs: Sequence[TopicSpec], timeout_s: float
                   ) -> None:
    """Wait until the broker asked describes every partition of these topics with a leader. The
    controller acknowledges a creation before every broker has the new metadata: on a cluster,
    the next client asking another broker could find a topic without partitions (a cluster
    test did) or a partition without a leader (its first produce would wait for it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = {t["name"]: t for t in admin.describe_topics([s.name for s in specs])}
        unready = [s.name for s in specs
                   if len([p for p in described.get(s.name, {}).get("partitions", [])
                           if p["leader_id"] >= 0]) < s.partitions]
        if not unready:
            return
        if time.monotonic() > deadline:
            raise KafkaError(f"topics without a leader for every partition after "
                             f"{timeout_s:.0f} s: {unready}")
        time.sleep(0.1)


def _grow_partitions(admin: KafkaAdminClient, specs: Sequence[TopicSpec]) -> None:
    """A topic created before its spec asked for more partitions (an older stack's state) would
    cap its consumer group below the processes started for it: grow it. A key may then map to
    another partition, so per-key order holds again only for records produced after the change."""
    if not specs:
        return
    described = admin.describe_topics([s.name for s in specs])
    counts = {t["name"]: len(t["partitions"]) for t in described}
    short = {s.name: s.partitions for s in specs if counts.get(s.name, s.partitions) < s.partitions}
    if not short:
        return
    with contextlib.suppress(InvalidPartitionsError):  # another process grew it first
        admin.create_partitions({name: NewPartitions(total) for name, total in short.items()})
    logger.warning("added partitions", extra={"topics": {
        name: f"{counts[name]} -> {total}" for name, total in short.items()}})


class KafkaPublisher:
    """acks=all with idempotence: an ok Delivery is stored on every in-sync replica."""

    def __init__(self, kafka: KafkaTarget, client_id: str, delivery_timeout_s: float = 5.0,
                 linger_ms: int = 2, warm_topics: Sequence[str] = ()) -> None:
        self._timeout_s = delivery_timeout_s
        timeout_ms = int(delivery_timeout_s * 1000)
        self._producer = KafkaProducer(
            **KafkaAccess.of(kafka).python_config(),
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            # Bound every wait so that a broker outage becomes an error the caller can answer
            # (ingest: 503 Retry-After) instead of a request hanging for a minute.
            bootstrap_timeout_ms=timeout_ms,
            max_block_ms=timeout_ms,
            request_timeout_ms=min(timeout_ms, 30_000),
            delivery_timeout_ms=timeout_ms + 1000,
        )
        for topic in warm_topics:  # fetch metadata now, not on the first request's clock
            self._producer.partitions_for(topic)

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        pending: list[tuple[OutboundMessage, Any]] = []
        unreachable: dict[str, str] = {}  # topic -> why its metadata could not be had
        for message in messages:
            if message.topic in unreachable:
                # send() blocks up to max_block_ms per message while a topic's metadata is
                # missing: after one timeout, fail the rest of that topic's messages at once.
                pending.append((message, unreachable[message.topic]))
                continue
            try:
                future = self._producer.send(
                    message.topic, value=message.value,
                    key=message.key.encode() if message.key is not None else None,
                    headers=list(message.headers),
                )
                pending.append((message, future))
            except KafkaError as exc:
                error = f"{type(exc).__name__}: {exc}"
                unreachable[message.topic] = error
                pending.append((message, error))
        return [self._outcome(message, future) for message, future in pending]

    def _outcome(self, message: OutboundMessage, future: Any) -> Delivery:
        if isinstance(future, str):
            return Delivery(message, error=future)
        try:
            metadata = future.get(timeout=self._timeout_s)
            return Delivery(message, metadata.partition, metadata.offset)
        except KafkaError as exc:
            return Delivery(message, error=f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self._producer.close(timeout=self._timeout_s)


class _RevokeListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.handler: RevokeHandler | None = None
        self.revoking = False  # the handler is running, on kafka-python's IO thread

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        if self.handler is not None and revoked:
            self.revoking = True
            try:
                self.handler([(tp.topic, tp.partition) for tp in revoked])
            finally:
                self.revoking = False

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        logger.info("partitions assigned",
                    extra={"partitions": [f"{tp.topic}-{tp.partition}" for tp in assigned]})


def _log_failed_commit(offsets: Mapping[TopicPartition, OffsetAndMetadata],
                       response: Any) -> None:
    if isinstance(response, Exception):  # replayed after the rebalance; the dedupe absorbs it
        logger.warning("commit on revoke failed", extra={"error": repr(response),
                                                         "partitions": len(offsets)})


def _record(r: Any) -> Record:
    """kafka-python's ConsumerRecord as the platform's Record."""
    return Record(r.topic, r.partition, r.offset, r.key, r.value,
                  tuple((k, v) for k, v in (r.headers or [])))


class KafkaRecordSource:
    """A consumer-group member with auto-commit off: the runner commits what it has handled."""

    def __init__(self, kafka: KafkaTarget, group_id: str, topics: Sequence[str],
                 client_id: str, session_timeout_s: float = 10.0,
                 fetch_wait_ms: int = 0) -> None:
        self._listener = _RevokeListener()
        gather = ({"fetch_min_bytes": GATHER_BYTES, "fetch_max_wait_ms": fetch_wait_ms}
                  if fetch_wait_ms > 0 else {})
        self._consumer = KafkaConsumer(
            **KafkaAccess.of(kafka).python_config(),
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(session_timeout_s * 1000),
            heartbeat_interval_ms=int(session_timeout_s * 1000 / 3),
            # A member that joined before its topics' metadata arrived has no partitions until
            # the next refresh: 5 s rather than the default 5 min.
            metadata_max_age_ms=5000,
            **gather,
        )
        self._consumer.subscribe(list(topics), listener=self._listener)

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [_record(r) for records in batches.values() for r in records]

    def commit(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        if not offsets:
            return
        committing = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                      for (t, p), o in offsets.items()}
        if self._listener.revoking:
            # kafka-python 3 calls the listener on its IO thread, where a blocking commit raises
            # ("cannot block on net.run() from the IO thread"): send the commit from there
            # without waiting; it reaches the coordinator before this member's rejoin does.
            self._consumer.commit_async(committing, callback=_log_failed_commit)
        else:
            self._consumer.commit(committing)

    def lag(self) -> dict[TopicPartitionKey, int]:
        lags = {}
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)  # known after the first fetch of tp
            if highwater is None:
                continue
            position = self._consumer.position(tp, timeout_ms=100)
            if position is not None:
                lags[(tp.topic, tp.partition)] = max(0, highwater - position)
        return lags

    def on_revoke(self, handler: RevokeHandler) -> None:
        self._listener.handler = handler

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def start_group_at_end(kafka: KafkaTarget, group: str, topics: Sequence[str]) -> None:
    """Commit the topics' current ends for `group`: it reads only what is published from now
    on (a benchmark's or a test's run on a broker whose topics hold earlier runs' events)."""
    consumer = KafkaConsumer(**KafkaAccess.of(kafka).python_config(), group_id=group,
                             enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in topics
                      for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(partitions)
        consumer.commit({tp: OffsetAndMetadata(ends[tp], "", -1) for tp in partitions})
    finally:
        consumer.close()


def group_lags(kafka: KafkaTarget, topics_by_group: Mapping[str, Sequence[str]],
               timeout_s: float = 10.0) -> dict[str, int]:
    """Per group, the records on its topics it has not committed yet (all if it never did).

    One admin client and one consumer answer for every group: callers poll this every second.
    """
    timeout_ms = int(timeout_s * 1000)
    config = KafkaAccess.of(kafka).python_config()
    admin = KafkaAdminClient(**config, client_id="lag-probe", bootstrap_timeout_ms=timeout_ms)
    consumer = KafkaConsumer(**config, client_id="lag-probe", bootstrap_timeout_ms=timeout_ms)
    try:
        lags = {}
        for group, topics in topics_by_group.items():
            committed = admin.list_group_offsets(group).get(group, {})
            partitions = [TopicPartition(topic, p) for topic in topics
                          for p in sorted(consumer.partitions_for_topic(topic) or ())]
            ends = consumer.end_offsets(partitions)
            lag = 0
            for tp in partitions:
                done = committed.get(tp)
                lag += ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
            lags[group] = lag
        return lags
    finally:
        consumer.close()
        admin.close()


def records_to_end(kafka: KafkaTarget, topic: str, timeout_s: float = 20.0
                   ) -> Iterator[Record]:
    """Every record of `topic` from its beginning to the end it has now, outside any group (a
    job's or a test's one-off read); TimeoutError if the end is not reached in `timeout_s`."""
    consumer = KafkaConsumer(**KafkaAccess.of(kafka).python_config(), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s} s")
            for records in consumer.poll(timeout_ms=500).values():
                yield from map(_record, records)
    finally:
        consumer.close()


_WAIT_AND_RETRY = ("NonEmptyGroupError", "CoordinatorLoadInProgressError",
                   "CoordinatorNotAvailableError", "NotCoordinatorError")


def forget_groups(kafka: KafkaTarget, groups: Sequence[str], timeout_s: float = 60.0) -> None:
    """Delete the groups' committed offsets, so their next members start where auto.offset.reset
    says (the earliest record): how a stream's state is rebuilt by replaying its topics. The
    groups must have no members; a member still leaving is waited for, up to `timeout_s`."""
    admin = KafkaAdminClient(**KafkaAccess.of(kafka).python_config(), client_id="forget-groups")
    deadline = time.monotonic() + timeout_s
    try:
        left = list(groups)
        while left:
            failed = []
            try:
                outcomes = admin.delete_groups(left)
            except CoordinatorNotAvailableError:  # a new cluster creates its offsets topic first
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
                continue
            for group, name in dict(outcomes).items():  # group -> "OK" or the error's name
                if name in ("OK", "GroupIdNotFoundError"):
                    continue
                # a member still leaving, or a coordinator still loading: both pass
                if name not in _WAIT_AND_RETRY or time.monotonic() > deadline:
                    raise KafkaError(f"consumer group {group} could not be deleted: {name}")
                failed.append(group)
            left = failed
            if left:
                time.sleep(0.5)
    finally:
        admin.close()
