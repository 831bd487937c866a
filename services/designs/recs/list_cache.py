"""The response cache read from the event loop: redis.asyncio, RedisRecsStore's key and field.

RedisRecsStore (redis_store.py) writes and reads the cache from the request thread; this reads
the same entry without a thread: the recommender answers a cache hit on the event loop. One HGET
of one key, so a Redis Cluster serves it from the user's slot like any other read.
"""

from __future__ import annotations

from services.common.redis_client import AsyncRedisClient
from services.common.redis_scripts import unavailable_as_domain_error
from services.designs.recs import keys


class RedisListCache:
    def __init__(self, client: AsyncRedisClient, namespace: str = keys.DEFAULT_NAMESPACE) -> None:
        self._client = client
        self._namespace = namespace

    async def cached_recommendations(self, user_id: str, k: int) -> bytes | None:
        """The stored list (ServedList JSON) for (user, k), as RedisRecsStore wrote it; None when
        there is none. Redis down or slow: FeatureStoreUnavailable, as the threaded read says."""
        with unavailable_as_domain_error():
            value = await self._client.hget(keys.rec_cache_key(user_id, self._namespace), str(k))
        return value if isinstance(value, bytes) else None

    async def close(self) -> None:
        await self._client.aclose()
