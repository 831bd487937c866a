"""The online recommendation state on Redis: watch writes, the one-round-trip user read, caches.

The layout is specified in docs/recs-features-online.md (keys in keys.py); change both together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.features import (
    Entity,
    Feature,
    FeatureCatalog,
    FeatureStatus,
    FeatureType,
    FeatureView,
    FeatureWrite,
    RedisFeatureStore,
)
from services.common.features.plans import plan_read
from services.common.features.redis_store import TS_FIELD
from services.common.redis_client import RedisClient, require_bytes_replies
from services.common.redis_scripts import (
    Command,
    LuaScript,
    run_pipeline,
    unavailable_as_domain_error,
)
from services.designs.recs import keys
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.state import (
    ItemStats,
    StoredVectors,
    UserOnlineState,
    Watch,
    fold_in,
    log2_sum,
    log2_weights,
    popularity_days,
    title_and_completion,
)

TRENDING_TOP_N = 50  # the trainer's trending candidates (CANDIDATE_SIZES)
_MS = timedelta(milliseconds=1)


# KEYS[1] history (sorted set), KEYS[2] watch count; ARGV[1] cap, ARGV[2] TTL (ms);
# ARGV[3..] score (event time, ms), member, score, member, ...
# A member already in the history is a redelivery: nothing changes. When the history is full, an
# event older than everything kept is refused too, so a redelivered event that was trimmed away
# cannot come back and be counted twice. Returns {added, all-history count, newest event time,
# the history's members oldest first}.
HISTORY_ADD = LuaScript("""
local cap = tonumber(ARGV[1])
local added = 0
for i = 3, #ARGV, 2 do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i + 1]) then
    local keep = true
    if redis.call('ZCARD', KEYS[1]) >= cap then
      local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
      keep = tonumber(ARGV[i]) > tonumber(oldest[2])
    end
    if keep then
      redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
      added = added + 1
      local extra = redis.call('ZCARD', KEYS[1]) - cap
      if extra > 0 then
        redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
      end
    end
  end
end
local count = redis.call('INCRBY', KEYS[2], added)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2] or '0'
return {added, count, newest, redis.call('ZRANGE', KEYS[1], 0, -1)}
""")

# KEYS[1] trending (sorted set); ARGV: member, log2 increment, member, log2 increment, ...
# score := log2(2^score + 2^increment), atomically per title. '%.17g' because Lua would format
# the number with 14 digits, and a score near 20,000 needs all 17 to keep 1e-12 precision.
TRENDING_ADD = LuaScript("""
local ln2 = math.log(2)
for i = 1, #ARGV, 2 do
  local new = tonumber(ARGV[i + 1])
  local old = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if old then
    old = tonumber(old)
    local high, low = math.max(old, new), math.min(old, new)
    new = high + math.log(1 + 2 ^ (low - high)) / ln2
  end
  redis.call('ZADD', KEYS[1], string.format('%.17g', new), ARGV[i])
end
return #ARGV / 2
""")

# KEYS[1] one day's title watches (hash); ARGV[1] TTL (ms); ARGV[2..] title, count, ...
# One command per day instead of one HINCRBY per title: the client's cost is per command.
DAY_COUNTS_ADD = LuaScript("""
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return (#ARGV - 1) / 2
""")

# KEYS[1] the user's rec cache (hash), KEYS[2] their watch count; ARGV[1] the count the response
# was built from, ARGV[2] field (k), ARGV[3] payload, ARGV[4] TTL (s). Both keys share {user}.
CACHE_PUT = LuaScript("""
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4], 'NX')
return 1
""")

SCRIPTS = (HISTORY_ADD, TRENDING_ADD, DAY_COUNTS_ADD)


def user_view(items: ItemArtifacts) -> FeatureView:
    """The feature-store view the stream writes per user; vector sizes follow the artifacts."""
    return FeatureView(keys.USER_VIEW, Entity("user"), (
        Feature("taste", FeatureType.FLOAT_VECTOR, dim=items.embeddings.shape[1]),
        Feature("profile", FeatureType.FLOAT_VECTOR, dim=items.content.shape[1]),
        Feature("genre_counts", FeatureType.FLOAT_VECTOR, dim=items.genres.shape[1]),
        Feature("artifacts", FeatureType.STRING),
        Feature("watch_count", FeatureType.INT64),
    ), ttl=keys.USER_TTL)


def write_profiles(client: RedisClient, profiles: Sequence[tuple[str, str, int]],
                   namespace: str = keys.DEFAULT_NAMESPACE) -> None:
    """(user id, kind, max maturity level) per user: the account system's view of a profile,
    loaded in batch (the seeder); the recommender filters out titles above the limit."""
    commands: list[Command] = [
        ("HSET", keys.profile_key(user, namespace), "kind", kind, "max_maturity", int(limit))
        for user, kind, limit in profiles]
    for start in range(0, len(commands), 1_000):
        run_pipeline(client, commands[start:start + 1_000])


@dataclass(frozen=True)
class WatchesApplied:
    users: int
    added: int        # events new to their user's history
    duplicates: int   # events already there (redelivered): user state unchanged by them


class RedisRecsStore:
    """Writes watch events into the online state and reads it back, one pipeline per step.

    The client must return bytes (decode_responses=False): vectors are raw float32.
    """

    def __init__(self, client: RedisClient, items: ItemArtifacts,
                 namespace: str = keys.DEFAULT_NAMESPACE, catalog: str = keys.CATALOG) -> None:
        require_bytes_replies(client, "RedisRecsStore")
        self._client = client
        self._items = items
        self._namespace = namespace
        self._catalog_id = catalog
        self._view = user_view(items)
        self._view_catalog = FeatureCatalog([self._view])
        self._features = RedisFeatureStore(client, self._view_catalog, namespace)
        self._refs = self._view.refs
        self._row_of_bytes = {title.encode(): row for title, row in items.row_of.items()}

    # --- writing -------------------------------------------------------------------------
    def apply_watches(self, watches: Sequence[tuple[str, Watch]]) -> WatchesApplied:
        """Apply (user id, watch) events: histories, counts, trending, popularity, vectors, caches.

        Three round trips whatever the batch size: (1) histories (idempotent per event),
        trending and daily counts (these two rely on the consumer's event-id dedupe);
        (2) each touched user's vectors, recomputed from the history step 1 returned, as a
        guarded feature-store write; (3) deleting those users' cached recommendations, last, so
        a request cannot cache a list built from the state before the watch.
        """
        if not watches:
            return WatchesApplied(0, 0, 0)
        by_user: dict[str, list[Watch]] = defaultdict(list)
        for user_id, watch in watches:
            by_user[user_id].append(watch)
        commands = [self._history_command(user_id, events) for user_id, events in by_user.items()]
        commands += self._item_commands([watch for _, watch in watches])
        replies = run_pipeline(self._client, commands, SCRIPTS)[:len(by_user)]
        writes, added = [], 0
        for user_id, reply in zip(by_user, replies, strict=True):
            added_here, count, newest_ms, members = reply
            added += int(added_here)
            history = [title_and_completion(m) for m in members]
            writes.append(self._vectors_write(user_id, history, int(count),
                                              int(float(newest_ms))))
        self._features.write_batch(writes)
        # One DEL per user: a multi-key DEL across hash tags would fail on Redis Cluster.
        run_pipeline(self._client,
                     [("DEL", keys.rec_cache_key(user, self._namespace)) for user in by_user])
        return WatchesApplied(len(by_user), added, len(watches) - added)

    def _history_command(self, user_id: str, events: Sequence[Watch]) -> Command:
        pairs = [part for w in events for part in (w.time_ms, w.member)]
        return HISTORY_ADD.call([keys.history_key(user_id, self._namespace),
                                 keys.watch_count_key(user_id, self._namespace)],
                                keys.HISTORY_CAP, keys.USER_TTL // _MS, *pairs)

    def _item_commands(self, watches: Sequence[Watch]) -> list[Command]:
        times: dict[str, list[int]] = defaultdict(list)
        per_day: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for watch in watches:
            times[watch.content_id].append(watch.time_ms)
            per_day[keys.day_of(watch.time_ms)][watch.content_id] += 1
        increments = [part for title, ms in times.items()
                      for part in (title, repr(log2_sum(log2_weights(ms))))]
        commands = [TRENDING_ADD.call([self._trending_key], *increments)]
        ttl_ms = keys.POPULARITY_BUCKET_TTL // _MS
        for day, counts in per_day.items():
            key = keys.title_watches_key(day, self._namespace, self._catalog_id)
            pairs = [part for title, n in counts.items() for part in (title, n)]
            commands.append(DAY_COUNTS_ADD.call([key], ttl_ms, *pairs))
        return commands

    def _vectors_write(self, user_id: str, history: Sequence[tuple[str, bool]],
                       watch_count: int, newest_ms: int) -> FeatureWrite:
        taste, profile, genre_counts = fold_in(history, self._items)
        # Event time = the newest watch folded in, so the guarded write refuses a recompute that
        # missed later watches (a slow consumer during a partition rebalance) as stale.
        return FeatureWrite(keys.USER_VIEW, user_id, {
            "taste": taste.astype(np.float32), "profile": profile.astype(np.float32),
            "genre_counts": genre_counts.astype(np.float32),
            "artifacts": self._items.stamp, "watch_count": watch_count,
        }, datetime.fromtimestamp(newest_ms / 1_000, UTC))

    # --- reading -------------------------------------------------------------------------
    def read_user(self, user_id: str, trending_n: int = TRENDING_TOP_N) -> UserOnlineState:
        """History, all-history watch count, stored vectors, trending head and the profile's
        maturity limit: one round trip. `trending_n=0`: without the trending head, so only the
        master of the user's keys is asked (on a cluster the head lives on another one)."""
        plan = plan_read(self._view_catalog, [{"user": user_id}], self._refs)
        [lookup] = plan.lookups
        # Plain commands: ZRANGE ... WITHSCORES rather than zrange(withscores=True), whose
        # wrapper in redis-py 8 re-encodes every score on the way back, a third of this read's
        # client time (measured). run_pipeline: on a cluster, a slow node's commands are not
        # sent again one by one (redis_scripts._send_cluster_once).
        commands: list[tuple[Any, ...]] = [
            ("ZRANGE", keys.history_key(user_id, self._namespace), 0, -1, "WITHSCORES"),
            ("GET", keys.watch_count_key(user_id, self._namespace)),
            ("HMGET", keys.user_view_key(user_id, self._namespace), TS_FIELD,
             *(f.name for f in lookup.features)),
            ("HGET", keys.profile_key(user_id, self._namespace), "max_maturity")]
        if trending_n > 0:
            commands.append(("ZREVRANGE", self._trending_key, 0, trending_n - 1, "WITHSCORES"))
        history, count, view, max_maturity, *head = run_pipeline(self._client, commands)
        trending = head[0] if head else []
        [row] = plan.assemble([None if view[0] is None else view[1:]])
        stored = None
        if all(status is FeatureStatus.PRESENT for status in row.statuses.values()):
            name = self._view.name
            stored = StoredVectors(
                artifacts=row.get(f"{name}:artifacts", str),
                watch_count=row.get(f"{name}:watch_count", int),
                taste=row.get(f"{name}:taste", np.ndarray),
                profile=row.get(f"{name}:profile", np.ndarray),
                genre_counts=row.get(f"{name}:genre_counts", np.ndarray))
        return UserOnlineState(
            user_id=user_id,
            history=tuple(Watch.from_member(m, s) for m, s in history),
            watch_count=int(count or 0),
            stored=stored,
            trending=tuple((m.decode(), float(s)) for m, s in trending),
            max_maturity=None if max_maturity is None else int(max_maturity),
        )

    def read_item_stats(self, now_s: float) -> ItemStats:
        """Every title's popularity window count and trending score: a snapshot, one round trip.

        About 31 hashes and one sorted set of the whole catalog: too wide for the request path,
        cheap for a refresh every few seconds (measured in docs/recs-features-online.md).
        """
        days = popularity_days(now_s)
        pipe = self._client.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(keys.title_watches_key(day, self._namespace, self._catalog_id))
        pipe.zrange(self._trending_key, 0, -1, withscores=True)
        pipe.hgetall(keys.title_release_key(self._namespace, self._catalog_id))
        with unavailable_as_domain_error():
            *buckets, trending, released = pipe.execute()
        counts = np.zeros(len(self._items), dtype=np.int64)
        for bucket in buckets:
            rows, values = self._rows_and_values(bucket.keys(), bucket.values(), np.int64)
            np.add.at(counts, rows, values)
        scores = np.full(len(self._items), -np.inf)
        rows, values = self._rows_and_values((t for t, _ in trending), (s for _, s in trending),
                                             np.float64)
        scores[rows] = values
        release = None
        if released:
            release = np.full(len(self._items), np.nan)
            rows, values = self._rows_and_values(released.keys(), released.values(), np.float64)
            release[rows] = values
        return ItemStats(now_s, counts, scores, release)

    def _rows_and_values(self, titles: Iterable[bytes], values: Iterable[Any],
                         dtype: type[np.generic]) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
        """Artifact rows and values of the titles the artifacts know (snapshots: ~30,000 pairs)."""
        rows = np.fromiter((self._row_of_bytes.get(t, -1) for t in titles), dtype=np.int64)
        parsed = np.fromiter(values, dtype=dtype, count=len(rows))
        known = rows >= 0
        return rows[known], parsed[known]

    # --- the recommendation cache -------------------------------------------------------
    def cached_recommendations(self, user_id: str, k: int) -> bytes | None:
        with unavailable_as_domain_error():
            value = self._client.hget(keys.rec_cache_key(user_id, self._namespace), str(k))
        return value if isinstance(value, bytes) else None

    def cache_recommendations(self, user_id: str, k: int, payload: bytes,
                              ttl_s: int = keys.REC_CACHE_TTL_S,
                              if_watch_count: int | None = None) -> bool:
        """Store a response; False if it was not stored. The hash's TTL starts with its first
        entry (EXPIRE NX), so no entry outlives `ttl_s` even when other k are added later.

        With `if_watch_count` (the count the response was built from), the entry is stored only
        if the user's count is still that: a watch applied while the response was being built
        has already deleted the cache, and this list, built from the state before it, must not
        come back for five minutes.
        """
        key = keys.rec_cache_key(user_id, self._namespace)
        if if_watch_count is not None:
            command = CACHE_PUT.call([key, keys.watch_count_key(user_id, self._namespace)],
                                     if_watch_count, str(k), payload, ttl_s)
            [stored] = run_pipeline(self._client, [command], [CACHE_PUT])
            return bool(stored)
        run_pipeline(self._client, [("HSET", key, str(k), payload),
                                    ("EXPIRE", key, ttl_s, "NX")])
        return True

    # --- internals -----------------------------------------------------------------------
    @property
    def _trending_key(self) -> str:
        return keys.trending_key(self._namespace, self._catalog_id)
