"""The records service's composition root: consumer threads, the outbox relay, the registry sync.

    fraud-decisions ─▶ DecisionWriter ─▶ fraud_decisions   (group records-fraud-decisions)
    fraud-labels    ─▶ LabelWriter    ─▶ fraud_labels      (group records-fraud-labels)
    outbox (committed, unsent) ─▶ OutboxRelay ─▶ Kafka, then marked sent
    model repository history   ─▶ RegistryAudit ─▶ model_registry_audit
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from services.common.bus import topics
from services.common.bus.clients import kafka_publisher
from services.common.bus.consumer import (
    ConsumerMetrics,
    ConsumerRunner,
    EventHandler,
    RunnerConfig,
    run_or_end_process,
)
from services.common.bus.dedupe import IdempotentWrites
from services.common.bus.ports import Publisher
from services.common.bus.runtime import build_kafka_consumer
from services.common.http import blocking_lifespan, create_service_app
from services.common.models import ModelRepository
from services.common.records.outbox import OutboxRelay
from services.common.records.pool import postgres_ready, records_pool
from services.common.records.registry import RegistryAudit
from services.common.records.settings import PostgresSettings
from services.common.telemetry import Metrics
from services.designs.fraud.records import PostgresDecisionRecords
from services.records.settings import RecordsSettings
from services.records.writers import DecisionWriter, LabelWriter

logger = logging.getLogger(__name__)


@dataclass
class Loop:
    """A task repeated every `interval_s` on its own thread until stopped; an error is logged
    and counted, and the next round tries again (the relay and the sync are idempotent)."""

    name: str
    task: Callable[[], int]
    interval_s: float
    on_error: Callable[[], None]
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.task()
            except Exception:
                logger.exception("records loop failed; trying again", extra={"loop": self.name})
                self.on_error()
            self.stopping.wait(self.interval_s)

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=30)

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class RecordsMetrics:
    """Declared once, in the factory (the consumers' own come from ConsumerMetrics)."""

    def __init__(self, metrics: Metrics) -> None:
        self.consumers = ConsumerMetrics(metrics)
        self.relayed = metrics.counter("outbox_relayed", "outbox messages published to Kafka")
        self.audited = metrics.counter("registry_changes_recorded",
                                       "model registry changes copied to the audit log")
        self.expired = metrics.counter("records_expired",
                                       "decisions and labels deleted by retention")
        self.loop_errors = metrics.counter("loop_errors", "failed rounds of a loop, retried",
                                           ("loop",))


@dataclass
class Running:
    """What start() built: stop() ends it, readiness asks whether all of it still runs."""

    pool: ConnectionPool
    publisher: Publisher
    consumers: list[tuple[ConsumerRunner, threading.Thread]]
    loops: list[Loop]

    def start(self) -> None:
        for _, thread in self.consumers:
            thread.start()
        for loop in self.loops:
            loop.start()

    def stop(self) -> None:
        for runner, _ in self.consumers:
            runner.stop()  # each finishes its batch in hand, commits, closes
        for loop in self.loops:
            loop.stop()
        for _, thread in self.consumers:
            thread.join(timeout=30)
        self.publisher.close()
        self.pool.close()

    def alive(self) -> bool:
        return (all(thread.is_alive() for _, thread in self.consumers)
                and all(loop.alive() for loop in self.loops))


def runner_config(settings: RecordsSettings, group: str, topic: str) -> RunnerConfig:
    """A writer's consumer: a batch a transaction, and patience for a PostgreSQL failover (a
    refused batch is tried records_retry_attempts times before the process ends)."""
    return RunnerConfig(group=group, topics=(topic,), max_batch=settings.records_max_batch,
                        commit_interval_s=settings.records_commit_interval_s,
                        max_attempts=settings.records_retry_attempts)


def consumers(settings: RecordsSettings, pool: ConnectionPool, metrics: ConsumerMetrics
              ) -> list[tuple[ConsumerRunner, threading.Thread]]:
    """The decision and label writers, each a consumer group on its topic, in a thread."""
    records = PostgresDecisionRecords(pool)
    writers: list[tuple[str, str, EventHandler]] = [
        (settings.records_decisions_group, topics.FRAUD_DECISIONS, DecisionWriter(records.write)),
        (settings.records_labels_group, topics.FRAUD_LABELS, LabelWriter(records.write_labels)),
    ]
    built = []
    for group, topic, handler in writers:
        runner = build_kafka_consumer(
            settings, None, handler, metrics,
            runner_config(settings, group, topic),
            deduplicator=IdempotentWrites())  # the writes absorb a redelivery themselves
        built.append((runner, threading.Thread(target=run_or_end_process, args=(runner, group),
                                               daemon=True, name=group)))
    return built


def loops(settings: RecordsSettings, pool: ConnectionPool, publisher: Publisher,
          metrics: RecordsMetrics) -> list[Loop]:
    """The outbox relay and the registry audit sync, each on its interval."""
    relay = OutboxRelay(pool, publisher)
    audit = RegistryAudit(pool, ModelRepository(settings.model_repository))

    def relay_round() -> int:
        sent = relay.drain()
        metrics.relayed.inc(sent)
        relay.purge_sent(settings.records_outbox_keep_sent_s)
        return sent

    def audit_round() -> int:
        new = audit.sync()
        metrics.audited.inc(new)
        return new

    built = [Loop("outbox-relay", relay_round, settings.records_outbox_interval_s,
                  metrics.loop_errors.labels("outbox-relay").inc),
             Loop("registry-audit", audit_round, settings.records_registry_sync_interval_s,
                  metrics.loop_errors.labels("registry-audit").inc)]
    keep_days = settings.records_keep_days
    if keep_days is not None:
        records = PostgresDecisionRecords(pool)

        def retention_round() -> int:
            gone = records.expire(datetime.now(UTC) - timedelta(days=keep_days))
            metrics.expired.inc(gone)
            return gone

        built.append(Loop("retention", retention_round, settings.records_retention_interval_s,
                          metrics.loop_errors.labels("retention").inc))
    return built


def create_app(settings: RecordsSettings, postgres: PostgresSettings | None = None) -> FastAPI:
    """The service; PostgreSQL from MLSD_POSTGRES_* unless `postgres` says otherwise."""
    postgres = postgres or PostgresSettings()
    metrics = Metrics(settings.service_name)
    records_metrics = RecordsMetrics(metrics)
    running: list[Running] = []

    def start() -> None:
        pool = records_pool(postgres, settings.service_name)  # migrated, connected: or fail
        publisher = kafka_publisher(settings, client_id="records-outbox")
        parts = Running(pool, publisher, consumers(settings, pool, records_metrics.consumers),
                        loops(settings, pool, publisher, records_metrics))
        running.append(parts)
        parts.start()
        logger.info("records running", extra={"postgres": postgres.address})

    def stop() -> None:
        for parts in running:
            parts.stop()

    return create_service_app(
        title="records", metrics=metrics, lifespan=blocking_lifespan(start, stop),
        readiness={"running": lambda: bool(running) and running[0].alive(),
                   "postgres": lambda: postgres_ready(postgres, timeout_s=0.5)})
