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
from services.common.bus.runtime import build_kafka_consumer
from services.common.http import blocking_lifespan, create_service_app
from services.common.models import ModelRepository
from services.common.records.decisions import PostgresDecisionRecords
from services.common.records.outbox import OutboxRelay
from services.common.records.pool import postgres_ready, records_pool
from services.common.records.registry import RegistryAudit
from services.common.records.settings import PostgresSettings
from services.common.telemetry import Metrics
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


def create_app(settings: RecordsSettings, postgres: PostgresSettings | None = None) -> FastAPI:
    postgres = postgres or PostgresSettings()
    metrics = Metrics(settings.service_name)
    consumer_metrics = ConsumerMetrics(metrics)
    relayed = metrics.counter("outbox_relayed", "outbox messages published to Kafka")
    audited = metrics.counter("registry_changes_recorded",
                              "model registry changes copied to the audit log")
    errors = metrics.counter("loop_errors", "failed rounds of a loop, retried", ("loop",))
    runners: list[tuple[ConsumerRunner, threading.Thread]] = []
    loops: list[Loop] = []
    pools: list[ConnectionPool] = []

    def start() -> None:
        pool = records_pool(postgres, settings.service_name)
        pools.append(pool)
        decisions = PostgresDecisionRecords(pool)
        consumers: list[tuple[str, str, EventHandler]] = [
            (settings.records_decisions_group, topics.FRAUD_DECISIONS,
             DecisionWriter(decisions.write)),
            (settings.records_labels_group, topics.FRAUD_LABELS,
             LabelWriter(decisions.write_labels)),
        ]
        for group, topic, handler in consumers:
            runner = build_kafka_consumer(
                settings, None, handler, consumer_metrics,
                RunnerConfig(group=group, topics=(topic,), max_batch=settings.records_max_batch,
                             commit_interval_s=settings.records_commit_interval_s),
                deduplicator=IdempotentWrites())
            thread = threading.Thread(target=run_or_end_process, args=(runner, group),
                                      daemon=True, name=group)
            runners.append((runner, thread))
        relay = OutboxRelay(pool, kafka_publisher(settings, client_id="records-outbox"))
        audit = RegistryAudit(pool, ModelRepository(settings.model_repository))

        def relay_counted() -> int:
            sent = relay.drain()
            relayed.inc(sent)
            relay.purge_sent(settings.records_outbox_keep_sent_s)
            return sent

        def audit_counted() -> int:
            new = audit.sync()
            audited.inc(new)
            return new

        loops.extend([
            Loop("outbox-relay", relay_counted, settings.records_outbox_interval_s,
                 errors.labels("outbox-relay").inc),
            Loop("registry-audit", audit_counted, settings.records_registry_sync_interval_s,
                 errors.labels("registry-audit").inc)])
        for _, thread in runners:
            thread.start()
        for loop in loops:
            loop.start()
        logger.info("records running", extra={"postgres": postgres.address})

    def stop() -> None:
        for runner, _ in runners:
            runner.stop()
        for loop in loops:
            loop.stop()
        for _, thread in runners:
            thread.join(timeout=30)
        for pool in pools:
            pool.close()

    def everything_runs() -> bool:
        return (bool(runners) and all(thread.is_alive() for _, thread in runners)
                and all(loop.alive() for loop in loops))

    return create_service_app(
        title="records", metrics=metrics, lifespan=blocking_lifespan(start, stop),
        readiness={"consumers": everything_runs,
                   "postgres": lambda: postgres_ready(postgres, timeout_s=0.5)})
