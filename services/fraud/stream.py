"""The stream scorer: `transactions` in, decisions out to `fraud-decisions`, in micro-batches.

    python -m services.fraud.stream      # consumer group fraud-scorer; probes on 8041

Each polled batch is scored with one Redis round trip (record + read every card), one ONNX call
(every transaction and its explanation rows) and one more round trip to record the decisions,
then one publish. Offsets are committed only after the decisions are stored (at-least-once; a
redelivered transaction gets its recorded decision).

The scorer is the one writer of the online fraud state for the transactions it decides whole.
What it did not record (its store failed or was skipped for them and they were decided without
their history, or they were too old to decide) goes, in the same publish, to
`transactions-unrecorded`, whose consumer (the stream processor's `unrecorded-transactions`
concern) records them, retrying while Redis is away: a decision never waits for the state, and
no transaction is left out of it (docs/adr/0007-one-writer-of-the-fraud-state.md).
Run more processes to share the partitions: the group balances them.

MLSD_FRAUD_SHADOW_VERSION=N: a registered challenger also scores every transaction, on the same
vectors, rules and policy; its decisions go to `fraud-decisions-shadow` in the same publish and
are never recorded nor acted on (`make shadow-report` compares the two as labels arrive).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from prometheus_client import Counter, Histogram

from services.common.bus.clients import kafka_publisher
from services.common.bus.consumer import (
    ConsumerMetrics,
    ConsumerRunner,
    RunnerConfig,
    TransientError,
    run_or_end_process,
)
from services.common.bus.dedupe import IdempotentWrites
from services.common.bus.envelope import Event
from services.common.bus.ports import OutboundMessage, Publisher, PublishFailed, publish_or_raise
from services.common.bus.runtime import build_kafka_consumer
from services.common.bus.topics import TRANSACTIONS, TRANSACTIONS_UNRECORDED
from services.common.http import blocking_lifespan, create_service_app, serve
from services.common.models import ModelClient, ModelRepository
from services.common.redis_client import RedisClient, background_redis
from services.common.telemetry import LATENCY_BUCKETS_S, Metrics
from services.designs.parsing import parse_payload
from services.designs.payloads import TransactionData
from services.fraud.decision_events import decision_message
from services.fraud.metrics import FraudMetrics
from services.fraud.scorer import FraudScorer, Scored
from services.fraud.settings import FraudSettings
from services.fraud.wiring import build_scorer, fraud_model_client, fraud_store

logger = logging.getLogger(__name__)


@dataclass
class _InFlight:
    """A batch's decisions being published on the acknowledging thread."""

    messages: list[OutboundMessage]
    timestamps: list[datetime]
    future: Future[None]


class StreamScoringHandler:
    """`handle` validates and buffers; `flush` scores the buffer as one batch and publishes.

    With `pipelined`, a batch's decisions are acknowledged by the broker on another thread while
    the next batch is scored (the wait for acks was half a small batch's time): at most one
    batch in flight, so decisions stay in order; `settle` (the runner calls it before every
    commit) waits for it, and a batch whose publish failed is published again before anything
    after it, so an offset is never committed ahead of its decisions.
    """

    def __init__(self, *, scorer: FraudScorer, publisher: Publisher, topic: str,
                 freshness: Histogram, stale: Counter, unrecorded: Counter, max_age_s: float,
                 shadow_topic: str | None = None, pipelined: bool = False) -> None:
        self._scorer = scorer
        self._publisher = publisher
        self._topic = topic
        self._shadow_topic = shadow_topic
        self._freshness = freshness
        self._stale = stale
        self._unrecorded = unrecorded
        self._max_age = timedelta(seconds=max_age_s)
        # each pending transaction with its event, in order: one list, so the two cannot drift
        self._pending: list[tuple[TransactionData, Event]] = []
        self._too_old: list[Event] = []       # not decided: the state writer records them
        self._acks = (ThreadPoolExecutor(1, thread_name_prefix="fraud-decisions-acks")
                      if pipelined else None)
        self._in_flight: _InFlight | None = None

    def handle(self, event: Event) -> None:
        txn = parse_payload(event, "transaction", TransactionData)
        # A decision long after the authorization changes nothing (a replayed history, a
        # backlog after an outage): not decided, counted, and handed to the state writer.
        if datetime.now(UTC) - txn.timestamp > self._max_age:
            self._stale.inc()
            self._too_old.append(event)
            return
        self._pending.append((txn, event))

    def flush(self) -> None:
        if not self._pending and not self._too_old:
            return
        txns = [txn for txn, _ in self._pending]
        scored = self._scorer.score(txns, "stream") if txns else []
        messages = [decision_message(s, "stream", self._topic) for s in scored]
        if self._shadow_topic is not None:  # in the same publish: no extra round trip
            messages += [decision_message(replace(s, decision=s.shadow), "stream",
                                          self._shadow_topic)
                         for s in scored if s.shadow is not None]
        messages += self._unrecorded_messages(scored)
        timestamps = [txn.timestamp for txn in txns]
        if self._acks is None:
            self._publish(messages, timestamps)
        else:
            self.settle()
            self._in_flight = _InFlight(messages, timestamps,
                                        self._acks.submit(self._publish, messages, timestamps))
        self._pending.clear()
        self._too_old.clear()

    def _unrecorded_messages(self, scored: Sequence[Scored]) -> list[OutboundMessage]:
        """The events of what this batch did not record in the online state, for the state
        writer: the ones decided without their history, and the ones too old to decide. Each
        keeps its event id (the writer's dedupe) and its card's key (its order)."""
        missed = [event for (_, event), item in zip(self._pending, scored, strict=True)
                  if not item.recorded]
        if missed:
            self._unrecorded.labels("store").inc(len(missed))
        if self._too_old:
            self._unrecorded.labels("stale").inc(len(self._too_old))
        return [OutboundMessage.of(TRANSACTIONS_UNRECORDED, str(event.data["card_id"]), event)
                for event in (*missed, *self._too_old)]

    def settle(self) -> None:
        """Wait for the batch in flight; publish it again (here) if its publish failed. It stays
        in flight until it is stored: any error leaves it there for the next settle (the
        runner's retry, or its last commit on the way out, which then commits nothing)."""
        in_flight = self._in_flight
        if in_flight is None:
            return
        try:
            in_flight.future.result()
        except TransientError:  # published again before anything after it
            self._publish(in_flight.messages, in_flight.timestamps)
        self._in_flight = None

    def close(self) -> None:
        if self._acks is not None:
            self._acks.shutdown(wait=True)

    def _publish(self, messages: Sequence[OutboundMessage], timestamps: Sequence[datetime]
                 ) -> None:
        try:
            publish_or_raise(self._publisher, messages)
        except PublishFailed as exc:  # retried: the batch's decisions are recorded, not lost
            raise TransientError(str(exc)) from exc
        now = datetime.now(UTC)
        for at in timestamps:
            self._freshness.observe(max((now - at).total_seconds(), 0.0))


def checked_shadow_version(settings: FraudSettings) -> int | None:
    """The challenger to shadow, if one is named; a version the repository does not hold is a
    configuration error, refused at start rather than counted as failures forever."""
    version = settings.fraud_shadow_version
    if version is None or settings.model_backend != "local":
        return version
    registered = ModelRepository(settings.model_repository).versions(settings.fraud_model_name)
    if version not in registered:
        raise ValueError(f"MLSD_FRAUD_SHADOW_VERSION={version}: {settings.fraud_model_name} "
                         f"has versions {registered}")
    return version


@dataclass
class _Scoring:
    """What start() built and stop() takes down, in that order."""

    runner: ConsumerRunner
    thread: threading.Thread
    handler: StreamScoringHandler
    publisher: Publisher
    model: ModelClient
    client: RedisClient


def create_stream_app(settings: FraudSettings) -> FastAPI:
    metrics = Metrics(settings.service_name)
    fraud_metrics = FraudMetrics(metrics)
    consumer_metrics = ConsumerMetrics(metrics)
    freshness = Histogram(
        f"{metrics.service}_event_to_decision_seconds",
        "from the transaction's timestamp to its decision being stored in fraud-decisions",
        registry=metrics.registry, buckets=LATENCY_BUCKETS_S)
    stale = metrics.counter(
        "stale_transactions", "transactions older than fraud_stream_max_age_s: not decided, "
                              "handed to the state writer")
    unrecorded = metrics.counter(
        "unrecorded_transactions", "transactions this scorer did not record in the online "
        "state, published to transactions-unrecorded for the state writer: 'store' (decided "
        "without their history) or 'stale' (too old to decide)", ("reason",))
    started: list[_Scoring] = []

    def start() -> None:
        client = background_redis(settings)
        model = fraud_model_client(settings)
        scorer = build_scorer(settings, fraud_metrics,
                              fraud_store(settings, client), model,
                              shadow_version=checked_shadow_version(settings))
        scorer.warm_up()
        publisher = kafka_publisher(settings, client_id=f"{settings.service_name}-decisions",
                                    delivery_timeout_s=settings.fraud_delivery_timeout_s,
                                    warm_topics=[settings.fraud_decisions_topic])
        handler = StreamScoringHandler(
            scorer=scorer, publisher=publisher, topic=settings.fraud_decisions_topic,
            freshness=freshness, stale=stale, unrecorded=unrecorded,
            max_age_s=settings.fraud_stream_max_age_s,
            shadow_topic=settings.fraud_shadow_topic if settings.fraud_shadow_version else None,
            pipelined=settings.fraud_stream_pipelined)
        # No dedupe keys (docs/adr/0003): the scorer's writes absorb a redelivery themselves
        # (the state is recorded once per transaction id, the first decision recorded is the
        # answer), so a redelivered transaction is published again with the same decision. A
        # key per event would cost two Redis round trips a batch and, at 10,000 tx/s, ~860 M
        # keys a day.
        runner = build_kafka_consumer(
            settings, client, handler, consumer_metrics,
            RunnerConfig(group=settings.fraud_stream_group, topics=(TRANSACTIONS,),
                         max_batch=settings.fraud_stream_max_batch,
                         poll_timeout_s=settings.fraud_stream_poll_timeout_s,
                         fetch_wait_ms=settings.fraud_stream_fetch_wait_ms),
            deduplicator=IdempotentWrites())
        thread = threading.Thread(target=run_or_end_process, args=(runner, "fraud-scorer"),
                                  name="fraud-scorer", daemon=True)
        started.append(_Scoring(runner, thread, handler, publisher, model, client))
        thread.start()

    def stop() -> None:
        for scoring in started:
            scoring.runner.stop()
            scoring.thread.join(timeout=30)
            scoring.handler.close()
            scoring.publisher.close()
            scoring.model.close()
            scoring.client.close()

    def running() -> bool:
        return bool(started) and all(scoring.thread.is_alive() for scoring in started)

    return create_service_app(title="fraud stream scorer", metrics=metrics,
                              blas_threads=settings.blas_threads,
                              gc_young_threshold=settings.gc_young_threshold,
                              lifespan=blocking_lifespan(start, stop),
                              readiness={"scorer": running})


def main() -> None:
    settings = FraudSettings(service_name="fraud_stream")
    serve(create_stream_app, settings, settings.fraud_host, settings.fraud_stream_metrics_port)


if __name__ == "__main__":
    main()
