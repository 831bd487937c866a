"""Kafka adapters of the bus ports (confluent-kafka, librdkafka): the same promises in C.

kafka-python encodes, batches and decodes in Python, which holds the GIL for all of it;
librdkafka does that work on its own threads, so a process spends its Python time on its events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from services.common.bus.ports import (
    GATHER_BYTES,
    Delivery,
    OutboundMessage,
    Record,
    RevokeHandler,
    TopicPartitionKey,
)
from services.common.kafka_access import KafkaAccess, KafkaTarget

logger = logging.getLogger(__name__)

# How long the poller thread waits for an event before it looks again at whether to stop.
_POLL_S = 0.1
# Refusals by the brokers' authorizer (docs/reliability.md, "Kafka's ACLs"): no retry makes them
# pass, so a consumer raises them as kafka-python's does, instead of logging them forever.
_REFUSED = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED)
# The bound on the two broker questions a consumer asks when it is given partitions.
_ASK_S = 5.0


def _client_error(error: KafkaError) -> None:
    """librdkafka's client-wide errors (brokers down, a fatal idempotence error): logged, as
    the sends and polls they affect fail or retry on their own."""
    level = logging.ERROR if error.fatal() else logging.WARNING
    logger.log(level, "kafka client error", extra={"error": _describe(error)})


# librdkafka's own log lines go through this module's logger (structured), not raw to stderr.
_LOGGING = {"logger": logger, "error_cb": _client_error}


class _Outstanding:
    """One publish() call's messages in flight: their deliveries, and a flag once all arrived."""

    def __init__(self, messages: Sequence[OutboundMessage]) -> None:
        self.deliveries: list[Delivery | None] = [None] * len(messages)
        self._left = len(messages)
        self._lock = threading.Lock()
        self.done = threading.Event()
        if not messages:
            self.done.set()

    def settle(self, index: int, delivery: Delivery) -> None:
        with self._lock:
            if self.deliveries[index] is not None:
                return
            self.deliveries[index] = delivery
            self._left -= 1
            if self._left == 0:
                self.done.set()


class ConfluentPublisher:
    """acks=all with idempotence: an ok Delivery is stored on every in-sync replica.

    Delivery reports are served by one poller thread, so concurrent publish() calls (ingest's
    threadpool) each wake as soon as their own messages are settled, never waiting for another
    caller's.
    """

    def __init__(self, kafka: KafkaTarget, client_id: str, delivery_timeout_s: float = 5.0,
                 linger_ms: int = 2, warm_topics: Sequence[str] = (),
                 retry_backoff_max_ms: int = 100) -> None:
        self._timeout_s = delivery_timeout_s
        timeout_ms = int(delivery_timeout_s * 1000)
        access = KafkaAccess.of(kafka)
        # The producer's own settings, readable (a test checks them); the connection's, with the
        # password, go to librdkafka only.
        self.config: dict[str, str | int | bool] = {
            "client.id": client_id,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": linger_ms,
            # Java's (and kafka-python's) key hash, not librdkafka's CRC32 default: a key lands
            # in the same partition whichever client wrote it, so an entity's events stay in
            # one partition, in order, across clients.
            "partitioner": "murmur2_random",
            # librdkafka's delivery timeout: a message neither stored nor failed by then is
            # failed (a broker outage becomes an error the caller can answer: ingest's 503).
            "message.timeout.ms": timeout_ms,
            "request.timeout.ms": min(timeout_ms, 30_000),
            "socket.connection.setup.timeout.ms": max(timeout_ms, 1000),
            # After a broker dies, a batch for its partitions is retried until the new leader
            # is known; librdkafka backs those retries off exponentially from retry.backoff.ms
            # to retry.backoff.max.ms (1 s by default), so the retry after the controller moved
            # the leaders could come up to a second late. Flat at 100 ms here: on a handful of
            # brokers, ten retries a second per partition cost nothing, and fault 1 measured
            # the first acknowledged write sooner after the fencing (docs/reliability.md).
            "retry.backoff.ms": min(100, retry_backoff_max_ms),
            "retry.backoff.max.ms": retry_backoff_max_ms,
            # a partition whose leader is unknown or down: ask for metadata this often
            "topic.metadata.refresh.fast.interval.ms": 100,
        }
        # The last client-wide error that says why the brokers are out of reach (a refused TLS
        # handshake, a failed login): a delivery that times out names it, where librdkafka's own
        # report says only "Message timed out"
        self._unreachable: str | None = None
        self._producer = Producer({**access.librdkafka_config(), **self.config, **_LOGGING,
                                   "error_cb": self._client_error})
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._serve_reports, name=f"{client_id}-acks",
                                        daemon=True)
        self._poller.start()
        for topic in warm_topics:  # fetch metadata now, not on the first request's clock
            try:
                self._producer.list_topics(topic, timeout=delivery_timeout_s)
            except KafkaException as exc:
                logger.warning("could not warm a topic's metadata",
                               extra={"topic": topic, "error": str(exc)})

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        outstanding = _Outstanding(messages)
        deadline = time.monotonic() + self._timeout_s
        for index, message in enumerate(messages):
            self._produce(outstanding, index, message, deadline)
        # message.timeout.ms bounds every report, but librdkafka looks for timed-out messages
        # about once a second: the margin covers that scan and the poller's wake-up (with 1 s,
        # a busy machine's report of a refused TLS handshake came after it, unit-tested).
        outstanding.done.wait(max(0.0, deadline - time.monotonic()) + 2.0)
        return [delivery or Delivery(message, error="KafkaTimeout: no delivery report in time")
                for message, delivery in zip(messages, outstanding.deliveries, strict=True)]

    def _produce(self, outstanding: _Outstanding, index: int, message: OutboundMessage,
                 deadline: float) -> None:
        def report(error: KafkaError | None, stored: Message) -> None:
            if error is not None:
                said = _describe(error)
                if error.code() == KafkaError._MSG_TIMED_OUT and self._unreachable:
                    said = f"{said} (the brokers: {self._unreachable})"
                outstanding.settle(index, Delivery(message, error=said))
            else:
                self._unreachable = None  # reached since
                outstanding.settle(index, Delivery(message, stored.partition(), stored.offset()))

        while True:
            try:
                self._producer.produce(message.topic, value=message.value, key=message.key,
                                       headers=list(message.headers), on_delivery=report)
                return
            except BufferError:
                # The local queue is full (a burst beyond queue.buffering.max.messages): wait
                # for the broker to take some, within this call's delivery timeout.
                if time.monotonic() > deadline:
                    outstanding.settle(index, Delivery(
                        message, error="BufferError: the producer's queue stayed full"))
                    return
                time.sleep(0.005)
            except KafkaException as exc:
                outstanding.settle(index, Delivery(message, error=_describe(exc.args[0])))
                return

    def _client_error(self, error: KafkaError) -> None:
        _client_error(error)
        if error.code() != KafkaError._ALL_BROKERS_DOWN:  # a cause, not its sum
            self._unreachable = _describe(error)

    def _serve_reports(self) -> None:
        told = False
        while not self._stopping.is_set():
            try:
                self._producer.poll(_POLL_S)
            except KafkaException as exc:
                # A fatal error (a user the brokers refuse the idempotent producer id: no WRITE
                # on any topic) is raised here on every poll; the sends fail with it on their
                # own, so say it once and keep serving their reports.
                if not told:
                    logger.error("kafka producer failed", extra={"error": _describe(exc.args[0])})
                    told = True
                self._stopping.wait(_POLL_S)

    def close(self) -> None:
        self._producer.flush(self._timeout_s)  # reports of what is in flight are still served
        self._stopping.set()
        self._poller.join(self._timeout_s)


def _describe(error: object) -> str:
    if isinstance(error, KafkaError):
        return f"KafkaError {error.name()}: {error.str()}"
    return f"{type(error).__name__}: {error}"


def _record(message: Message) -> Record:
    """librdkafka's Message as the platform's Record."""
    headers = message.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers  # a consumer's are a list
    return Record(message.topic() or "", message.partition() or 0, message.offset() or 0,
                  message.key(), message.value(), tuple((k, _bytes(v)) for k, v in pairs))


def _bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else value


class ConfluentRecordSource:
    """A consumer-group member with auto-commit off: the runner commits what it has handled."""

    def __init__(self, kafka: KafkaTarget, group_id: str, topics: Sequence[str],
                 client_id: str, session_timeout_s: float = 10.0,
                 fetch_wait_ms: int = 0) -> None:
        self._handler: RevokeHandler | None = None
        # Per partition held, the offset of the next record to read. librdkafka's position()
        # knows it only once a record was consumed; a partition with nothing new to read must
        # still report its lag (0), as the stream's lag gauges and alerts expect.
        self._positions: dict[TopicPartitionKey, int] = {}
        self._consumer = Consumer({
            **KafkaAccess.of(kafka).librdkafka_config(),
            "group.id": group_id,
            "client.id": client_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(session_timeout_s * 1000),
            "heartbeat.interval.ms": int(session_timeout_s * 1000 / 3),
            # A member that joined before its topics existed sees them at the next refresh.
            "topic.metadata.refresh.interval.ms": 5000,
            **({"fetch.min.bytes": GATHER_BYTES, "fetch.wait.max.ms": fetch_wait_ms}
               if fetch_wait_ms > 0 else {}),
            **_LOGGING,
        })
        self._consumer.subscribe(list(topics), on_assign=self._assigned,
                                 on_revoke=self._revoked, on_lost=self._lost)

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        # consume() waits the whole timeout unless the batch fills; poll() returns on the first
        # record, then consume(timeout=0) adds what is already fetched: a batch without the wait.
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        messages = [first, *self._consumer.consume(max_records - 1, 0)] if max_records > 1 \
            else [first]
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                record = _record(message)
                records.append(record)
                self._positions[(record.topic, record.partition)] = record.offset + 1
            elif error.fatal() or error.code() in _REFUSED:
                raise KafkaException(error)
            else:  # e.g. a subscribed topic that does not exist yet: librdkafka retries
                logger.warning("consumer error", extra={"error": _describe(error)})
        return records

    def commit(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        if offsets:
            self._consumer.commit(offsets=[TopicPartition(t, p, o)
                                           for (t, p), o in offsets.items()],
                                  asynchronous=False)

    def lag(self) -> dict[TopicPartitionKey, int]:
        lags = {}
        for (topic, partition), position in self._positions.items():
            # The high watermark of the last fetch response: no round trip to the broker.
            _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                           cached=True)
            if high >= 0:
                lags[(topic, partition)] = max(0, high - position)
        return lags

    def on_revoke(self, handler: RevokeHandler) -> None:
        self._handler = handler

    def close(self) -> None:
        self._consumer.close()

    def _assigned(self, _consumer: Consumer, assigned: list[TopicPartition]) -> None:
        logger.info("partitions assigned",
                    extra={"partitions": [f"{tp.topic}-{tp.partition}" for tp in assigned]})
        self._positions.update(self._starting_positions(assigned))

    def _starting_positions(self, partitions: list[TopicPartition]
                            ) -> dict[TopicPartitionKey, int]:
        """Where each newly held partition is read from: its committed offset, or (earliest, as
        auto.offset.reset says) its first. Two round trips, once per rebalance."""
        positions = {}
        try:
            for tp in self._consumer.committed(partitions, timeout=_ASK_S):
                offset = tp.offset
                if offset < 0:  # nothing committed yet
                    offset, _ = self._consumer.get_watermark_offsets(tp, timeout=_ASK_S)
                positions[(tp.topic, tp.partition)] = offset
        except KafkaException as exc:  # known after the first record instead
            logger.warning("could not read the starting offsets", extra={"error": str(exc)})
        return positions

    def _revoked(self, _consumer: Consumer, revoked: list[TopicPartition]) -> None:
        self._hand_over(revoked, "revoked")

    def _lost(self, _consumer: Consumer, lost: list[TopicPartition]) -> None:
        # Lost (the session expired) is handed over like revoked, as kafka-python does: the
        # commit may be refused, and what it would have covered is replayed and deduplicated.
        self._hand_over(lost, "lost")

    def _hand_over(self, partitions: list[TopicPartition], why: str) -> None:
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)
        if self._handler is None or not partitions:
            return
        try:
            self._handler([(tp.topic, tp.partition) for tp in partitions])
        except Exception:  # raised inside poll(), it would kill the member mid-rebalance
            logger.exception("rebalance handler failed", extra={
                "why": why, "partitions": [f"{tp.topic}-{tp.partition}" for tp in partitions]})
