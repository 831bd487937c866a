"""The stream processor's composition root: a runner thread per concern; probes and metrics."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from fastapi import FastAPI

from services.common.bus.consumer import (
    ConsumerMetrics,
    ConsumerRunner,
    RunnerConfig,
    run_or_end_process,
)
from services.common.bus.runtime import build_kafka_consumer
from services.common.http import blocking_lifespan, create_service_app
from services.common.models import ModelRepository
from services.common.redis_client import background_redis
from services.common.telemetry import Metrics
from services.stream.concerns import Concern, Dependencies, select
from services.stream.settings import StreamSettings

logger = logging.getLogger(__name__)


@dataclass
class RunningConcern:
    concern: Concern
    runner: ConsumerRunner
    thread: threading.Thread | None = None

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


def create_app(settings: StreamSettings) -> FastAPI:
    metrics = Metrics(settings.service_name)
    consumer_metrics = ConsumerMetrics(metrics)
    concerns = select(settings.stream_concerns)
    running: list[RunningConcern] = []

    def start() -> None:
        client = background_redis(settings)
        deps = Dependencies(client, ModelRepository(settings.model_repository),
                            settings.feature_namespace)
        for concern in concerns:
            runner = build_kafka_consumer(
                settings, client, concern.build(deps), consumer_metrics,
                RunnerConfig(group=concern.group, topics=concern.topics,
                             max_batch=settings.stream_max_batch,
                             commit_interval_s=settings.stream_commit_interval_s),
                dedupe_window_s=settings.stream_dedupe_window_s,
            )
            item = RunningConcern(concern, runner)
            item.thread = threading.Thread(target=run_or_end_process,
                                           args=(runner, concern.name), daemon=True,
                                           name=f"concern-{concern.name}")
            running.append(item)
        for item in running:
            assert item.thread is not None
            item.thread.start()
        logger.info("concerns running", extra={"concerns": [c.name for c in concerns]})

    def stop() -> None:
        for item in running:
            item.runner.stop()
        for item in running:
            if item.thread is not None:
                item.thread.join(timeout=30)

    def every_concern_runs() -> bool:
        return bool(running) and all(item.alive() for item in running)

    return create_service_app(title="stream processor", metrics=metrics,
                              blas_threads=settings.blas_threads,
                              lifespan=blocking_lifespan(start, stop),
                              readiness={"concerns": every_concern_runs})
