"""Ingest's way to the broker: the platform's deferred publisher, warmed on every event topic."""

from __future__ import annotations

from collections.abc import Callable

from services.common.bus.deferred import kafka_connector as platform_connector
from services.common.bus.ports import Publisher
from services.designs.payloads import EVENT_TYPES
from services.ingest.settings import IngestSettings


def kafka_connector(settings: IngestSettings) -> Callable[[], Publisher]:
    return platform_connector(settings, probe_timeout_s=settings.ingest_broker_probe_timeout_s,
                              delivery_timeout_s=settings.ingest_delivery_timeout_s,
                              warm_topics={t.topic for t in EVENT_TYPES.values()})
