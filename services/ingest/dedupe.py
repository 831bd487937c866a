"""Which event ids ingest already stored on Kafka: a port, a Redis adapter, an in-memory fake."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

import redis

from services.common.bus.dedupe import InMemoryDeduplicator, RedisDeduplicator
from services.common.redis_client import RedisClient


class DedupeUnavailable(Exception):
    """The dedupe cache did not answer: publish anyway, consumers dedupe by event id too."""


class Dedupe(Protocol):
    def stored(self, event_ids: Sequence[str]) -> set[str]:
        """The ids among these acknowledged within the window (raises DedupeUnavailable)."""
        ...

    def remember(self, event_ids: Sequence[str]) -> None:
        """Record these ids as acknowledged by the broker (raises DedupeUnavailable)."""
        ...

    def ready(self) -> bool: ...


class RedisDedupe:
    """One key per acknowledged event, `<ns>:ingest:{<event id>}` = 1, expiring after the window:
    the consumers' RedisDeduplicator under ingest's own prefix, with Redis errors reported as
    DedupeUnavailable. The client is the fail-fast request-path one."""

    def __init__(self, client: RedisClient, window_s: int, namespace: str) -> None:
        self._client = client
        self._ids = RedisDeduplicator.with_prefix(client, f"{namespace}:ingest:", window_s)

    def stored(self, event_ids: Sequence[str]) -> set[str]:
        try:
            return self._ids.seen(event_ids)
        except redis.RedisError as exc:
            raise DedupeUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def remember(self, event_ids: Sequence[str]) -> None:
        try:
            self._ids.mark(event_ids)
        except redis.RedisError as exc:
            raise DedupeUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def ready(self) -> bool:
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False


class InMemoryDedupe:
    """The same contract in a dict, for unit tests; set `unavailable` to simulate a Redis outage."""

    def __init__(self, window_s: float = 86_400,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ids = InMemoryDeduplicator(window_s, clock=clock)
        self.unavailable = False

    def _check(self) -> None:
        if self.unavailable:
            raise DedupeUnavailable("ConnectionError: dedupe cache unavailable")

    def stored(self, event_ids: Sequence[str]) -> set[str]:
        self._check()
        return self._ids.seen(event_ids)

    def remember(self, event_ids: Sequence[str]) -> None:
        self._check()
        self._ids.mark(event_ids)

    def ready(self) -> bool:
        return not self.unavailable
