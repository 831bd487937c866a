"""A consumer-group member in its own process, so tests can SIGTERM or SIGKILL it mid-stream.

Its handler counts every event it applies in a Redis hash (`<prefix>:handled`), so a test can
tell lost events (count 0) from events applied twice (count 2).
"""

from __future__ import annotations

import argparse
import time
from typing import get_args

import redis

from services.common.bus.consumer import ConsumerMetrics, RunnerConfig, stop_on_signals
from services.common.bus.envelope import Event
from services.common.bus.runtime import build_kafka_consumer
from services.common.settings import KafkaClient, PlatformSettings
from services.common.telemetry import Metrics, configure_logging


class CountingHandler:
    def __init__(self, client: redis.Redis, prefix: str, delay_s: float) -> None:
        self._client = client
        self._key = f"{prefix}:handled"
        self._delay_s = delay_s
        self._buffer: list[str] = []

    def handle(self, event: Event) -> None:
        time.sleep(self._delay_s)  # stands in for real work, so a test can stop us mid-stream
        self._buffer.append(event.id)

    def flush(self) -> None:
        pipe = self._client.pipeline(transaction=False)
        for event_id in self._buffer:
            pipe.hincrby(self._key, event_id, 1)
        pipe.execute()
        self._buffer.clear()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--max-batch", type=int, default=20)
    parser.add_argument("--commit-interval-s", type=float, default=1.0)
    parser.add_argument("--client", choices=get_args(KafkaClient), default="confluent")
    args = parser.parse_args()

    configure_logging("worker", "INFO", json_logs=True)
    settings = PlatformSettings(kafka_bootstrap_servers=args.bootstrap, redis_url=args.redis_url,
                                service_name="worker", kafka_client=args.client)
    client = redis.Redis.from_url(args.redis_url)
    runner = build_kafka_consumer(
        settings, client, CountingHandler(client, args.prefix, args.delay_ms / 1000),
        ConsumerMetrics(Metrics("worker")),
        RunnerConfig(group=args.group, topics=(args.topic,), max_batch=args.max_batch,
                     commit_interval_s=args.commit_interval_s),
        session_timeout_s=6.0,
    )
    stop_on_signals(runner)
    runner.run()


if __name__ == "__main__":
    main()
