"""The stream scorer's floor: the same consumer and publisher, a fixed decision instead of scoring.

    PYTHONPATH=. .venv/bin/python benchmarks/stream_floor.py   # settings as the scorer's

benchmarks/fraud_stream.py drains the same backlog with these processes in place of the scorers
(group fraud-scorer, probes and metrics on MLSD_FRAUD_STREAM_METRICS_PORT), so the same run
states what the plumbing alone allows: poll, decode and validate each transaction as the scorer
does, encode one decision event per transaction (`decision_message`, the scorer's encoder) and
publish them, commit. No Redis, no features, rules or model: the difference to the scorers'
drain is what scoring costs. Not a service: a benchmark's reference point.
"""

from __future__ import annotations

import threading

from fastapi import FastAPI

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
from services.common.bus.ports import Publisher, PublishFailed, publish_or_raise
from services.common.bus.runtime import build_kafka_consumer
from services.common.bus.topics import TRANSACTIONS
from services.common.http import blocking_lifespan, create_service_app, serve
from services.common.telemetry import Metrics
from services.designs.parsing import parse_payload
from services.designs.payloads import TransactionData
from services.fraud.decide import Decision
from services.fraud.decision_events import decision_message
from services.fraud.scorer import Scored
from services.fraud.settings import FraudSettings

FIXED = Decision(risk_score=0.0, risk_level="low", action="approve", reasons=(), rule_hits=(),
                 ml_score=None, model_version=None, confidence=1.0, degraded=(),
                 policy_version="floor")


class FixedDecisions:
    """`handle` validates and buffers as the scorer's handler does; `flush` publishes one fixed
    decision event per transaction."""

    def __init__(self, publisher: Publisher, topic: str) -> None:
        self._publisher = publisher
        self._topic = topic
        self._pending: list[TransactionData] = []

    def handle(self, event: Event) -> None:
        self._pending.append(parse_payload(event, "transaction", TransactionData))

    def flush(self) -> None:
        messages = [decision_message(Scored(txn, FIXED, None, False), "stream", self._topic)
                    for txn in self._pending]
        try:
            publish_or_raise(self._publisher, messages)
        except PublishFailed as exc:
            raise TransientError(str(exc)) from exc
        self._pending.clear()


def create_floor_app(settings: FraudSettings) -> FastAPI:
    metrics = Metrics(settings.service_name)
    consumer_metrics = ConsumerMetrics(metrics)
    started: list[tuple[ConsumerRunner, threading.Thread, Publisher]] = []

    def start() -> None:
        publisher = kafka_publisher(settings, client_id=f"{settings.service_name}-decisions",
                                    delivery_timeout_s=settings.fraud_delivery_timeout_s,
                                    warm_topics=[settings.fraud_decisions_topic])
        runner = build_kafka_consumer(
            settings, None, FixedDecisions(publisher, settings.fraud_decisions_topic),
            consumer_metrics,
            RunnerConfig(group=settings.fraud_stream_group, topics=(TRANSACTIONS,),
                         max_batch=settings.fraud_stream_max_batch,
                         poll_timeout_s=settings.fraud_stream_poll_timeout_s),
            deduplicator=IdempotentWrites())
        thread = threading.Thread(target=run_or_end_process, args=(runner, "stream-floor"),
                                  daemon=True)
        started.append((runner, thread, publisher))
        thread.start()

    def stop() -> None:
        for runner, thread, publisher in started:
            runner.stop()
            thread.join(timeout=30)
            publisher.close()

    return create_service_app(title="stream floor", metrics=metrics,
                              lifespan=blocking_lifespan(start, stop),
                              readiness={"floor": lambda: bool(started) and all(
                                  thread.is_alive() for _, thread, _ in started)})


def main() -> None:
    settings = FraudSettings(service_name="fraud_stream")
    serve(create_floor_app, settings, settings.fraud_host, settings.fraud_stream_metrics_port)


if __name__ == "__main__":
    main()
