"""The consumer runner: poll, skip duplicates, handle, dead-letter poison, commit (at-least-once).

Every error is classified:
- poison (a malformed envelope, PoisonEvent, or any unexpected exception while handling one
  event): the record goes to `<topic>.dlq` with the reason in its headers, the runner goes on;
- transient (TransientError, connection and timeout errors): retried with exponential backoff,
  and when retries run out the runner stops without committing, so a restart resumes there;
- fatal (FatalError): the runner commits what it finished and stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import redis
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential_jitter,
)

from services.common.bus.dedupe import Deduplicator
from services.common.bus.envelope import Event, MalformedEvent, decode_event
from services.common.bus.ports import (
    OutboundMessage,
    Publisher,
    Record,
    RecordSource,
    TopicPartitionKey,
    publish_or_raise,
)
from services.common.bus.topics import dlq_topic
from services.common.telemetry import Metrics

logger = logging.getLogger(__name__)
T = TypeVar("T")


class PoisonEvent(Exception):
    """This event can never be handled (bad data); dead-letter it and go on."""


class TransientError(Exception):
    """A dependency hiccup; the same event may succeed if tried again."""


class FatalError(Exception):
    """The consumer cannot go on (e.g. misconfiguration); stop."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError, redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError,
)


class EventHandler(Protocol):
    def handle(self, event: Event) -> None:
        """Apply one event (or buffer its effect); raise PoisonEvent or TransientError."""
        ...

    def flush(self) -> None:
        """Make buffered effects durable; called before the batch's offsets are committed."""
        ...


@runtime_checkable
class SettlingHandler(Protocol):
    """A handler whose flush() may return before its effects are durable (a publish still being
    acknowledged while the next batch is handled): the runner calls settle() before every commit,
    so no offset is committed ahead of what it stands for."""

    def settle(self) -> None:
        """Return once everything flushed is durable; raise TransientError if it cannot be."""
        ...


@dataclass(frozen=True)
class RunnerConfig:
    group: str
    topics: tuple[str, ...]
    max_batch: int = 500
    poll_timeout_s: float = 0.5
    # Offsets are committed at most this often (and always on stop and rebalance); a crash
    # replays at most this window, and the deduplicator absorbs the replay.
    commit_interval_s: float = 1.0
    # 0: a fetch returns as soon as one record is there (freshness first). A group that can
    # wait lets the broker gather records for up to this long: fewer fetches, larger batches,
    # less broker and Redis work per record.
    fetch_wait_ms: int = 0
    max_attempts: int = 6
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0


OUTCOMES = ("handled", "duplicate", "dead_lettered")


class ConsumerMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.events = metrics.counter(
            "consumer_events", "events seen by outcome: handled, duplicate, dead_lettered",
            ("group", "topic", "outcome"))
        self.lag = metrics.gauge(
            "consumer_lag_records", "records behind the partition's high watermark",
            ("group", "topic", "partition"))
        self.retries = metrics.counter(
            "consumer_retries", "transient errors retried", ("group",))
        self.batch_seconds = metrics.latency(
            "consumer_batch_duration_seconds", "time to handle one polled batch", ("group",))

    def expect(self, config: RunnerConfig) -> None:
        """Start the group's series at zero: a series born at 1 is no increase() to a rule, so
        the first dead-lettered event would never reach the DeadLetters alert."""
        for topic in config.topics:
            for outcome in OUTCOMES:
                self.events.labels(config.group, topic, outcome)
        self.retries.labels(config.group)
        self.batch_seconds.labels(config.group)


@dataclass
class BatchOutcome:
    handled: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


class ConsumerRunner:
    """Runs one consumer-group member until stopped; owns and closes its source and DLQ."""

    def __init__(self, source: RecordSource, handler: EventHandler, deduplicator: Deduplicator,
                 dlq: Publisher, config: RunnerConfig, metrics: ConsumerMetrics) -> None:
        self._source = source
        self._handler = handler
        self._dedupe = deduplicator
        self._dlq = dlq
        self._config = config
        self._metrics = metrics
        metrics.expect(config)
        self._stopping = threading.Event()
        self._pending: dict[TopicPartitionKey, int] = {}  # next offset to commit, per partition
        self._last_commit = time.monotonic()
        self._retrying = self._build_retrying()
        self._settle = handler.settle if isinstance(handler, SettlingHandler) else None
        source.on_revoke(self._on_revoke)

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit and return (safe in signal handlers)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        logger.info("consumer started", extra={"group": self._config.group,
                                               "topics": list(self._config.topics)})
        try:
            while not self._stopping.is_set():
                self.run_once()
        except FatalError:
            logger.exception("fatal error: consumer stops", extra={"group": self._config.group})
            raise
        finally:
            try:
                self._commit(force=True)
            finally:
                self._source.close()
                self._dlq.close()
            logger.info("consumer stopped", extra={"group": self._config.group})

    def run_once(self) -> BatchOutcome:
        """One cycle: poll a batch, handle it, commit if due."""
        records = self._source.poll(self._config.poll_timeout_s, self._config.max_batch)
        outcome = BatchOutcome()
        if records:
            start = time.perf_counter()
            outcome = self._handle_batch(records)
            self._metrics.batch_seconds.labels(self._config.group).observe(
                time.perf_counter() - start)
            for record in records:
                key = (record.topic, record.partition)
                self._pending[key] = max(self._pending.get(key, 0), record.offset + 1)
        self._commit(force=False)
        self._report_lag()
        return outcome

    def _handle_batch(self, records: Sequence[Record]) -> BatchOutcome:
        outcome = BatchOutcome()
        decoded: list[tuple[Record, Event]] = []
        poison: list[tuple[Record, str, str | None]] = []  # record, reason, event id
        for record in records:
            try:
                decoded.append((record, decode_event(record.value)))
            except MalformedEvent as exc:
                poison.append((record, str(exc), None))

        already = self._retry(self._dedupe.seen, list({e.id for _, e in decoded}))
        done: set[str] = set()
        # Counted per batch, not per event: one labelled increment costs ~1 µs under its lock.
        counts: Counter[tuple[str, str]] = Counter()
        for record, event in decoded:
            if event.id in already or event.id in done:
                counts[(record.topic, "duplicate")] += 1
                continue
            done.add(event.id)
            try:
                self._retry(self._handler.handle, event)
            except FatalError:
                raise
            except TRANSIENT_ERRORS:  # retries ran out: stop uncommitted, a restart resumes here
                raise
            except Exception as exc:  # poison: this event, not the consumer, is broken
                poison.append((record, f"{type(exc).__name__}: {exc}", event.id))
                continue
            counts[(record.topic, "handled")] += 1

        self._retry(self._handler.flush)
        if poison:
            self._retry(self._dead_letter, poison)
            outcome.dead_lettered = len(poison)
        self._retry(self._dedupe.mark, sorted(done))
        for (topic, what), count in counts.items():
            self._metrics.events.labels(self._config.group, topic, what).inc(count)
        outcome.handled = sum(n for (_, what), n in counts.items() if what == "handled")
        outcome.duplicates = sum(n for (_, what), n in counts.items() if what == "duplicate")
        return outcome

    def _dead_letter(self, poison: Sequence[tuple[Record, str, str | None]]) -> None:
        messages = [dead_letter(record, reason, event_id, self._config.group)
                    for record, reason, event_id in poison]
        try:
            publish_or_raise(self._dlq, messages)
        except Exception as exc:  # without its dead letter stored, the record must not be committed
            raise TransientError(f"dead-letter publish failed: {exc}") from exc
        for record, _, _ in poison:
            self._count(record.topic, "dead_lettered")

    def _retry(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)`, retried with backoff on transient errors, `max_attempts` tries in all.

        The first try is a plain call: tenacity costs ~8 µs a call, and handle() is called for
        every event; only a call that failed once goes through it, for the tries left."""
        try:
            return fn(*args)
        except TRANSIENT_ERRORS as exc:
            if self._config.max_attempts <= 1 or self._stopping.is_set():
                raise
            self._note_retry(1, exc)
            time.sleep(self._config.backoff_initial_s)
        return self._retrying(fn, *args)

    def _note_retry(self, attempt: int, error: BaseException | None) -> None:
        self._metrics.retries.labels(self._config.group).inc()
        logger.warning("transient error, retrying", extra={"attempt": attempt,
                                                           "error": repr(error)})

    def _build_retrying(self) -> Retrying:
        """The tries after a first transient failure; built once per runner, not per event."""
        config = self._config

        def count_retry(state: Any) -> None:
            self._note_retry(state.attempt_number + 1, state.outcome.exception())

        return Retrying(
            retry=retry_if_exception_type(TRANSIENT_ERRORS),
            stop=stop_after_attempt(config.max_attempts - 1) | stop_when_event_set(self._stopping),
            wait=wait_exponential_jitter(multiplier=config.backoff_initial_s,
                                         max=config.backoff_max_s,
                                         jitter=config.backoff_initial_s),
            before_sleep=count_retry,
            reraise=True,
        )

    def _commit(self, force: bool) -> None:
        due = time.monotonic() - self._last_commit >= self._config.commit_interval_s
        if self._pending and (force or due):
            if self._settle is not None:  # raises (nothing committed) if it cannot settle
                self._retry(self._settle)
            self._source.commit(dict(self._pending))
            self._pending.clear()
            self._last_commit = time.monotonic()

    def _on_revoke(self, partitions: Sequence[TopicPartitionKey]) -> None:
        # Called inside poll(), between batches: everything pending is fully handled.
        self._commit(force=True)
        for topic, partition in partitions:
            with contextlib.suppress(KeyError):  # never reported: nothing to remove
                self._metrics.lag.remove(self._config.group, topic, str(partition))

    def _report_lag(self) -> None:
        for (topic, partition), lag in self._source.lag().items():
            self._metrics.lag.labels(self._config.group, topic, str(partition)).set(lag)

    def _count(self, topic: str, outcome: str) -> None:
        self._metrics.events.labels(self._config.group, topic, outcome).inc()


def dead_letter(record: Record, reason: str, event_id: str | None, group: str) -> OutboundMessage:
    """The record as it goes to `<topic>.dlq`: its bytes and headers, plus why and from where."""
    logger.warning("dead-lettering record", extra={
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "reason": reason, "event_id": event_id})
    headers = (
        ("dlq.reason", reason.encode()[:4000]),
        ("dlq.topic", record.topic.encode()),
        ("dlq.partition", str(record.partition).encode()),
        ("dlq.offset", str(record.offset).encode()),
        ("dlq.group", group.encode()),
    )
    key = record.key.decode(errors="replace") if record.key is not None else None
    return OutboundMessage(dlq_topic(record.topic), key, record.value or b"",
                           record.headers + headers)


def stop_on_signals(runner: ConsumerRunner) -> None:
    """SIGTERM and SIGINT finish the batch in hand, commit and stop (call in the main thread)."""
    def _stop(signum: int, _frame: object) -> None:
        logger.info("signal received, stopping", extra={"signal": signal.Signals(signum).name})
        runner.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


class Runs(Protocol):
    def run(self) -> None: ...


def run_or_end_process(runner: Runs, name: str) -> None:
    """A consumer thread's target: run until stopped. If the runner dies (retries ran out on a
    dependency outage, a fatal error), end the whole process with SIGTERM (the web server shuts
    down cleanly) so supervisord or the container runtime starts it again: a dead thread in a
    live process would never be restarted."""
    started = time.monotonic()
    try:
        runner.run()
    except BaseException:
        logger.exception("consumer thread died; ending the process",
                         extra={"consumer": name, "after_s": round(time.monotonic() - started)})
        os.kill(os.getpid(), signal.SIGTERM)
