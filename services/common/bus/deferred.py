"""A publisher that never blocks start-up: the real one is built on a thread once a broker answers.

kafka-python waits up to 30 s (its bootstrap_timeout_ms) for a first broker before a producer
or admin client even exists (the topic set-up uses its admin client whichever client produces),
so a service never builds one until a bounded probe saw the broker answer, and it does so on a
thread: /healthz answers at once, /readyz and sends answer "not yet" until the producer exists.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from services.common.bus.background import BackgroundPublisher, Outcome
from services.common.bus.clients import kafka_publisher
from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.ports import Delivery, OutboundMessage, Publisher
from services.common.bus.topics import platform_topics
from services.common.probe import kafka_ready
from services.common.settings import PlatformSettings

logger = logging.getLogger(__name__)
NOT_CONNECTED = "BrokerNotConnected: no connection to the event bus yet"


class BrokerUnreachable(ConnectionError):
    """No broker answered the probe in time."""


def kafka_connector(settings: PlatformSettings, *, probe_timeout_s: float,
                    delivery_timeout_s: float,
                    warm_topics: Iterable[str]) -> Callable[[], Publisher]:
    """One attempt to reach the broker: probe, create missing platform topics, build a producer.

    Warm the topics the service sends to: without their metadata, a send during an outage blocks
    for the delivery timeout before it can fail."""
    access = settings.kafka_access()
    warm_topics = sorted(warm_topics)
    specs = platform_topics(settings.kafka_topic_partitions, settings.kafka_replication_factor)
    if settings.kafka_users_dir:
        # A user per service (the cluster topology): the platform's topics are the operator's
        # to create (make run-cluster, as the nodes' user); the service's own user may only
        # find those it sends to (docs/reliability.md, "A Kafka user per service").
        specs = [spec for spec in specs if spec.name in warm_topics]

    def connect() -> Publisher:
        if not kafka_ready(access, probe_timeout_s):
            raise BrokerUnreachable(
                f"no Kafka broker answered at {access.bootstrap_servers}"
                + (f" to {access.username}" if access.authenticates else ""))
        ensure_topics(access, specs)
        return kafka_publisher(settings, client_id=settings.service_name,
                               delivery_timeout_s=delivery_timeout_s, warm_topics=warm_topics)

    return connect


class DeferredPublisher:
    """A Publisher whose real one is built on a background thread, retried until the broker answers.

    Until then every message fails at once (the caller answers 503). Once built, the producer
    rides out later broker outages on its own: its sends fail within the delivery timeout.
    """

    def __init__(self, connect: Callable[[], Publisher], backoff_initial_s: float = 0.25,
                 backoff_max_s: float = 5.0) -> None:
        self._connect = connect
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._publisher: Publisher | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._keep_trying, name="broker-connect",
                                        daemon=True)

    @property
    def connected(self) -> bool:
        return self._publisher is not None

    def start(self) -> None:
        self._thread.start()

    def _keep_trying(self) -> None:
        backoff_s = self._backoff_initial_s
        while not self._stopping.is_set():
            try:
                publisher = self._connect()
            except Exception as exc:  # any failure to connect is retried; the service stays up
                logger.warning("event bus not reachable, retrying",
                               extra={"error": f"{type(exc).__name__}: {exc}",
                                      "retry_in_s": backoff_s})
                self._stopping.wait(backoff_s)
                backoff_s = min(backoff_s * 2, self._backoff_max_s)
                continue
            if self._stopping.is_set():  # closed while connecting: nobody will close it later
                publisher.close()
                return
            self._publisher = publisher
            logger.info("event bus connected")
            return

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Delivery]:
        publisher = self._publisher
        if publisher is None:
            return [Delivery(m, error=NOT_CONNECTED) for m in messages]
        try:
            return publisher.publish(messages)
        except Exception as exc:  # whatever went wrong, these messages are not known to be stored
            logger.exception("publish raised")
            return [Delivery(m, error=f"{type(exc).__name__}: {exc}") for m in messages]

    def close(self, join_timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(join_timeout_s)
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close()


@dataclass(frozen=True)
class OffPathPublishing:
    """What a service's request path publishes through: `queue.submit(message)` returns at once.

    `connection` is the lazily connecting Kafka publisher (start it in the lifespan); None when a
    test passed its own publisher. Closing `queue` sends what is queued, then closes the
    publisher under it.
    """

    queue: BackgroundPublisher
    connection: DeferredPublisher | None


OFF_PATH_LINGER_S = 0.05  # a record nobody waits on can wait 50 ms for company (background.py)


def off_path_publishing(settings: PlatformSettings, publisher: Publisher | None, *,
                        topic: str, capacity: int, probe_timeout_s: float,
                        delivery_timeout_s: float, on_outcome: Outcome) -> OffPathPublishing:
    """A bounded background queue in front of Kafka, connected lazily so the service starts (and
    answers) while the broker does; `publisher`, when given, replaces Kafka (tests)."""
    connection: DeferredPublisher | None = None
    if publisher is None:
        connection = publisher = DeferredPublisher(kafka_connector(
            settings, probe_timeout_s=probe_timeout_s, delivery_timeout_s=delivery_timeout_s,
            warm_topics=[topic]))
    return OffPathPublishing(BackgroundPublisher(publisher, capacity=capacity,
                                                 on_outcome=on_outcome,
                                                 linger_s=OFF_PATH_LINGER_S), connection)
