"""The feature store on Redis or Redis Cluster: a hash per (view, entity), writes guarded in Lua.

The key layout and the write script are specified in docs/feature-store.md; change both together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.client import Pipeline
from redis.cluster import ClusterPipeline
from redis.exceptions import ClusterError, NoScriptError, OutOfMemoryError, ReadOnlyError

from services.common.features.catalog import FeatureCatalog
from services.common.features.definitions import row_key
from services.common.features.plans import EncodedWrite, encode_writes, plan_read
from services.common.features.ports import (
    FeatureRow,
    FeatureStoreUnavailable,
    FeatureWrite,
    WriteOutcome,
    WriteReport,
)
from services.common.redis_client import RedisClient, require_bytes_replies, route_by_key

TS_FIELD = "_ts"  # event time (epoch ms) of the newest write applied to the row

# KEYS[1] the row; ARGV[1] event time (epoch ms); ARGV[2] TTL (ms); ARGV[3..] field, value, ...
# Equal event times apply, so a redelivered event rewrites the same values (idempotent).
GUARDED_WRITE = """
local stored = redis.call('HGET', KEYS[1], '_ts')
if stored and tonumber(stored) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], '_ts', ARGV[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
GUARDED_WRITE_SHA = hashlib.sha1(GUARDED_WRITE.encode()).hexdigest()

# Errors that mean "Redis cannot serve us now", as opposed to a bug (WRONGTYPE, bad arguments).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, ClusterError, OutOfMemoryError, ReadOnlyError,
)


class RedisFeatureStore:
    """Each write batch and each read is one pipelined round trip (transaction=False).

    The caller owns the client and its socket timeouts; it must return bytes
    (decode_responses=False) because vectors are raw float32.
    """

    def __init__(self, client: RedisClient, catalog: FeatureCatalog, namespace: str = "fs") -> None:
        require_bytes_replies(client, "RedisFeatureStore")
        self._client = client
        self._catalog = catalog
        self._namespace = namespace

    def write_batch(self, writes: Sequence[FeatureWrite]) -> WriteReport:
        encoded = encode_writes(self._catalog, writes)
        if not encoded:
            return WriteReport(())
        try:
            replies = self._send_writes(encoded)
        except NoScriptError:
            # Redis restarted or its script cache was flushed. Sending the batch again is safe:
            # a guarded write with the same event time leaves the same row.
            with _unavailable_as_domain_error():
                self._client.script_load(GUARDED_WRITE)
            replies = self._send_writes(encoded)
        return WriteReport(tuple(WriteOutcome.APPLIED if r == 1 else WriteOutcome.STALE
                                 for r in replies))

    def _send_writes(self, encoded: Sequence[EncodedWrite]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for write in encoded:
            fields = [part for item in write.fields.items() for part in item]
            key = row_key(self._namespace, write.view.name, write.entity_id)
            # Not redis-py's Script object, which adds a SCRIPT EXISTS round trip to every batch,
            # and not pipe.evalsha(), which ClusterPipeline refuses (it cannot load scripts).
            pipe.execute_command("EVALSHA", GUARDED_WRITE_SHA, 1, key, write.event_time_ms,
                                 write.ttl_ms, *fields, **route_by_key(self._client, key))
        return self._execute(pipe)

    def read(self, entity_rows: Sequence[Mapping[str, str]],
             refs: Sequence[str]) -> list[FeatureRow]:
        plan = plan_read(self._catalog, entity_rows, refs)
        if not plan.lookups:
            return plan.assemble([])
        pipe = self._client.pipeline(transaction=False)
        for lookup in plan.lookups:
            key = row_key(self._namespace, lookup.view.name, lookup.entity_id)
            pipe.hmget(key, [TS_FIELD, *(f.name for f in lookup.features)])
        # A row without _ts does not exist (HMGET answers all nils for a missing key).
        return plan.assemble([None if reply[0] is None else reply[1:]
                              for reply in self._execute(pipe)])

    @staticmethod
    def _execute(pipe: Pipeline | ClusterPipeline) -> list[Any]:
        with _unavailable_as_domain_error():
            return list(pipe.execute())


@contextmanager
def _unavailable_as_domain_error() -> Iterator[None]:
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise FeatureStoreUnavailable(f"redis did not answer: {exc}") from exc
