"""Which event ids ingest already stored on Kafka: a port, a Redis adapter, an in-memory fake."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

import redis

from services.common.bus.dedupe import InMemoryDeduplicator


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
    """One key per acknowledged event, `<ns>:ingest:{<event id>}` = 1, expiring after the window.

    The id is the hash tag, so on Redis Cluster the keys spread over every slot. Each call is one
    pipelined round trip for the whole batch; the client is the fail-fast request-path one.
    """

    def __init__(self, client: redis.Redis, window_s: int, namespace: str) -> None:
        self._client = client
        self._window_s = window_s
        self._prefix = f"{namespace}:ingest:"

    def _key(self, event_id: str) -> str:
        return f"{self._prefix}{{{event_id}}}"

    def stored(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        pipe = self._client.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.exists(self._key(event_id))
        try:
            found = pipe.execute()
        except redis.RedisError as exc:
            raise DedupeUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return {eid for eid, hit in zip(event_ids, found, strict=True) if hit}

    def remember(self, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        pipe = self._client.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.set(self._key(event_id), b"1", ex=self._window_s)
        try:
            pipe.execute()
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
