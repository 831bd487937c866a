"""What the local stack runs, where, and how to tell each part is healthy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.common.probe import kafka_ready, redis_ready
from services.common.settings import PlatformSettings


@dataclass(frozen=True)
class Part:
    name: str  # the [program:NAME] in infra/supervisord.conf
    address: str
    probe: Callable[[], bool]


def stack_parts(settings: PlatformSettings) -> list[Part]:
    """In start order. A new service appends its Part (probing its /readyz) here."""
    return [
        Part("redis", settings.redis_url, lambda: redis_ready(settings.redis_url)),
        Part("kafka", settings.kafka_bootstrap_servers,
             lambda: kafka_ready(settings.kafka_bootstrap_servers)),
    ]
