"""Remembers which event ids a consumer group has handled, so redelivered events are skipped."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import redis
from redis.cluster import RedisCluster

from services.common.ids import hash_tag

# Every KEYS[i] set to "1" for ARGV[1] seconds: one command for a batch, where a pipeline of
# SETs costs the client ~10 µs of Python per key (packing, then parsing each reply).
_MARK = "for _, key in ipairs(KEYS) do redis.call('SET', key, '1', 'EX', ARGV[1]) end"


class Deduplicator(Protocol):
    def seen(self, event_ids: Sequence[str]) -> set[str]:
        """The ids among these that were already handled."""
        ...

    def mark(self, event_ids: Sequence[str]) -> None:
        """Remember these ids as handled (for the dedupe window)."""
        ...


def dedupe_prefix(namespace: str, group: str) -> str:
    """`<ns>:dedupe:<group>:`, the prefix of every event id a consumer group has handled."""
    return f"{namespace}:dedupe:{group}:"


class RedisDeduplicator:
    """One key per handled event, `<ns>:dedupe:<group>:{<event id>}`, expiring after the window.

    The event id is the hash tag, so on Redis Cluster the keys spread over every slot.
    Both calls are one round trip for the whole batch: on one server, one command each (MGET,
    and a script that SETs every key); on a cluster, where one command may not span slots, a
    pipeline of one command per key, which the client fans out per node.
    """

    def __init__(self, client: redis.Redis | RedisCluster, group: str, window_s: int = 86_400,
                 namespace: str = "fs") -> None:
        self._client = client
        self._prefix = dedupe_prefix(namespace, group)
        self._window_s = window_s
        self._per_key = isinstance(client, RedisCluster)
        self._mark = client.register_script(_MARK)

    @classmethod
    def with_prefix(cls, client: redis.Redis | RedisCluster, prefix: str,
                    window_s: int) -> RedisDeduplicator:
        """The same store under another key prefix (ingest: `<ns>:ingest:`)."""
        deduplicator = cls(client, "", window_s)
        deduplicator._prefix = prefix
        return deduplicator

    def _key(self, event_id: str) -> str:
        return f"{self._prefix}{hash_tag(event_id)}"

    def seen(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        keys = [self._key(event_id) for event_id in event_ids]
        if self._per_key:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.exists(key)
            found = pipe.execute()
        else:
            found = self._client.mget(keys)
        return {eid for eid, hit in zip(event_ids, found, strict=True) if hit}

    def mark(self, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        keys = [self._key(event_id) for event_id in event_ids]
        if self._per_key:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, b"1", ex=self._window_s)
            pipe.execute()
        else:
            self._mark(keys=keys, args=[self._window_s])


class IdempotentWrites:
    """For a consumer whose writes absorb a redelivery by themselves (an insert that does
    nothing on conflict): nothing to remember, and no Redis round trip a batch."""

    def seen(self, event_ids: Sequence[str]) -> set[str]:
        return set()

    def mark(self, event_ids: Sequence[str]) -> None:
        return None


class InMemoryDeduplicator:
    """The same contract in a bounded dict, for unit tests and single-process tools."""

    def __init__(self, window_s: float = 86_400, capacity: int = 1_000_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._capacity = capacity
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def seen(self, event_ids: Sequence[str]) -> set[str]:
        now = self._clock()
        return {eid for eid in event_ids if self._expiry.get(eid, 0.0) > now}

    def mark(self, event_ids: Sequence[str]) -> None:
        expires = self._clock() + self._window_s
        for event_id in event_ids:
            self._expiry[event_id] = expires
            self._expiry.move_to_end(event_id)
        while len(self._expiry) > self._capacity:
            self._expiry.popitem(last=False)
