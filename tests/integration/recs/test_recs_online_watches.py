"""The watch handler on real Redis: layout, cache invalidation, redelivery, the cap, round trips."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from services.common.bus.consumer import ConsumerMetrics, ConsumerRunner, RunnerConfig
from services.common.bus.dedupe import RedisDeduplicator
from services.common.bus.envelope import Event
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
from services.common.bus.ports import OutboundMessage
from services.common.models.testing import logistic_model
from services.common.telemetry import Metrics
from services.designs.model_features import RANKER_FEATURE_NAMES
from services.designs.payloads import TitleData
from services.designs.recs.artifacts import LiveItemArtifacts
from services.designs.recs.items import ItemArtifacts
from services.designs.recs.keys import HISTORY_CAP
from services.designs.recs.redis_store import RedisRecsStore, write_profiles
from services.designs.recs.state import decayed_counts, user_vectors, vectors_from_history
from services.designs.recs.titles import CatalogTitle, write_titles
from services.stream.watches import WatchFeaturesHandler
from tests import recommender_world as world

pytestmark = pytest.mark.integration

T0 = datetime(2026, 9, 7, 20, 0, tzinfo=UTC)
ITEMS = ItemArtifacts.build(
    title_ids=["t0", "t1", "t2"],
    embeddings=[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
    genre_multi_hot=[[1, 0], [0, 1], [1, 1]],
    release_seconds=[0.0, 1e9, 1.7e9],
    maturity_levels=[0, 1, 2],
    genre_names=("Drama", "Comedy"),
)


def watch(event_id: str, user: str = "u1", title: str = "t0", completed: bool = True,
          at: datetime = T0) -> Event:
    return Event(id=event_id, type="watch", source="test", time=at,
                 data={"user_id": user, "content_id": title, "watch_seconds": 600,
                       "completed": completed})


def apply(client: redis.Redis, *events: Event) -> WatchFeaturesHandler:
    handler = WatchFeaturesHandler(client, ITEMS)
    for event in events:
        handler.handle(event)
    handler.flush()
    return handler


def everything(client: redis.Redis) -> dict[Any, Any]:
    """Every key's value, whatever its type (TTLs left out)."""
    values: dict[Any, Any] = {}
    for key in sorted(client.keys("*")):
        kind = client.type(key)
        if kind == b"string":
            values[key] = client.get(key)
        elif kind == b"hash":
            values[key] = client.hgetall(key)
        else:
            values[key] = client.zrange(key, 0, -1, withscores=True)
    return values




def test_a_watch_lands_under_the_documented_keys(redis_client: redis.Redis) -> None:
    apply(redis_client, watch("e1", title="t2", completed=False))

    assert sorted(redis_client.keys("*")) == [
        b"fs:recs_user:{u1}", b"fs:title_watches:{global}:2026-09-07", b"fs:trending:{global}",
        b"fs:watch_count:{u1}", b"fs:watch_history:{u1}"]
    t0_ms = int(T0.timestamp() * 1000)
    assert redis_client.zrange("fs:watch_history:{u1}", 0, -1, withscores=True) == [
        (b"t2|0|e1", float(t0_ms))]
    assert redis_client.get("fs:watch_count:{u1}") == b"1"
    assert redis_client.hget("fs:title_watches:{global}:2026-09-07", "t2") == b"1"
    view: dict[Any, Any] = redis_client.hgetall("fs:recs_user:{u1}")
    assert view[b"_ts"] == str(t0_ms).encode()
    assert view[b"artifacts"] == ITEMS.fingerprint.encode()
    assert view[b"watch_count"] == b"1"
    np.testing.assert_array_equal(np.frombuffer(view[b"taste"], "<f4"), [0.5, 0.5])
    np.testing.assert_array_equal(np.frombuffer(view[b"genre_counts"], "<f4"), [0.5, 0.5])
    assert 0 < redis_client.pttl("fs:watch_history:{u1}") <= 180 * 86_400_000


def test_a_watch_deletes_that_users_cached_recommendations_only(
        redis_client: redis.Redis) -> None:
    store = RedisRecsStore(redis_client, ITEMS)
    for user in ("u1", "u2"):
        store.cache_recommendations(user, 10, b"[...]")
        store.cache_recommendations(user, 20, b"[......]")

    apply(redis_client, watch("e1", user="u1"))

    assert store.cached_recommendations("u1", 10) is None
    assert store.cached_recommendations("u1", 20) is None
    assert store.cached_recommendations("u2", 10) == b"[...]"


def test_a_list_built_from_an_older_watch_count_is_not_cached(redis_client: redis.Redis) -> None:
    store = RedisRecsStore(redis_client, ITEMS)
    apply(redis_client, watch("e1", user="u1"))
    count = store.read_user("u1").watch_count
    apply(redis_client, watch("e2", user="u1"))          # lands while the list is being built

    assert store.cache_recommendations("u1", 10, b"old", if_watch_count=count) is False
    assert store.cached_recommendations("u1", 10) is None
    assert store.cache_recommendations("u1", 10, b"new", if_watch_count=count + 1) is True
    assert store.cached_recommendations("u1", 10) == b"new"
    assert 0 < redis_client.ttl("fs:rec_cache:{u1}") <= 300
    # A user without history yet (count 0) is cached too: the cold-start list.
    assert store.cache_recommendations("u9", 10, b"cold", if_watch_count=0) is True


def test_the_users_read_carries_the_profiles_maturity_limit(redis_client: redis.Redis) -> None:
    write_profiles(redis_client, [("u1", "kids", 1), ("u2", "adult", 4)])
    store = RedisRecsStore(redis_client, ITEMS)
    assert store.read_user("u1").max_maturity == 1
    assert store.read_user("u2").max_maturity == 4
    assert store.read_user("u3").max_maturity is None


def test_the_catalogs_release_dates_override_the_artifacts_copy(redis_client: redis.Redis) -> None:
    store = RedisRecsStore(redis_client, ITEMS)
    assert store.read_item_stats(2e9).release_of(ITEMS).tolist() == [0.0, 1e9, 1.7e9]
    released = date(2017, 7, 14)                                       # t9: not in the model
    write_titles(redis_client, [CatalogTitle(TitleData(content_id=c, title=c,
                                                       release_date=released), 0)
                                for c in ("t1", "t9")])
    midnight = datetime.combine(released, time(), UTC).timestamp()
    assert store.read_item_stats(2e9).release_of(ITEMS).tolist() == [0.0, midnight, 1.7e9]


def test_after_a_promotion_the_stream_folds_vectors_with_the_new_rankers_embeddings(
        redis_client: redis.Redis, tmp_path: Path) -> None:
    repository = world.repository(tmp_path)
    live = LiveItemArtifacts(repository, check_s=0.0)
    handler = WatchFeaturesHandler(redis_client, live)
    first = live.current()
    handler.handle(watch("e1", title="t1"))
    handler.flush()
    store = RedisRecsStore(redis_client, first)
    assert store.read_user("u1").stored.artifacts == first.fingerprint  # type: ignore[union-attr]

    arrays = world.arrays()
    arrays["item_embeddings"] = arrays["item_embeddings"] * 2.0
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays, genre_names=np.asarray(world.GENRES),
                        content_vectors=first.content.astype(np.float32))
    version = repository.register(
        "ranker", logistic_model([0.1] * len(RANKER_FEATURE_NAMES)),
        feature_names=RANKER_FEATURE_NAMES, metrics={}, training_data_hash="v2",
        description="v2", extra_files={"embeddings.npz": buffer.getvalue()})
    repository.promote("ranker", version)
    handler.handle(watch("e2", title="t2", at=T0 + timedelta(minutes=1)))
    handler.flush()

    second = live.current()
    state = RedisRecsStore(redis_client, second).read_user("u1")
    assert state.stored is not None and state.stored.artifacts == second.fingerprint
    taste, _, _ = vectors_from_history(state.history, second)   # the new embeddings, folded
    np.testing.assert_allclose(state.stored.taste, taste, rtol=1e-6)


def test_a_cached_list_expires_with_the_first_entry_of_its_hash(redis_client: redis.Redis) -> None:
    store = RedisRecsStore(redis_client, ITEMS)
    store.cache_recommendations("u1", 10, b"a", ttl_s=300)
    redis_client.expire("fs:rec_cache:{u1}", 100)

    store.cache_recommendations("u1", 20, b"b", ttl_s=300)

    assert 0 < redis_client.ttl("fs:rec_cache:{u1}") <= 100


def test_redelivered_watches_leave_every_users_state_unchanged(redis_client: redis.Redis) -> None:
    events = [watch(f"e{i}", user=f"u{i % 3}", title=f"t{i % 3}", at=T0 + timedelta(hours=i))
              for i in range(9)]
    apply(redis_client, *events)
    user_keys = [k for k in redis_client.keys("*") if b"{global}" not in k]
    before = {k: v for k, v in everything(redis_client).items() if k in user_keys}

    again = apply(redis_client, *events[4:], *events[:2])  # a batch replayed past the dedupe

    assert again.counts.duplicates == 7
    assert {k: v for k, v in everything(redis_client).items() if k in user_keys} == before


def test_events_redelivered_through_the_consumer_change_nothing_at_all(
        redis_client: redis.Redis) -> None:
    broker = InMemoryBroker()
    InMemoryPublisher(broker).publish([
        OutboundMessage.of("watch-events", f"u{i % 4}",
                           watch(f"e{i}", user=f"u{i % 4}", title=f"t{i % 3}",
                                 at=T0 + timedelta(minutes=i)))
        for i in range(40)])

    def consume_all() -> tuple[int, int]:
        # A fresh member without committed offsets: every record is delivered again.
        broker.committed.clear()
        runner = ConsumerRunner(
            InMemoryRecordSource(broker, "stream-watch-features", ["watch-events"]),
            WatchFeaturesHandler(redis_client, ITEMS),
            RedisDeduplicator(redis_client, "stream-watch-features"),
            InMemoryPublisher(broker),
            RunnerConfig("stream-watch-features", ("watch-events",), max_batch=16),
            ConsumerMetrics(Metrics("test")))
        handled = duplicates = 0
        while True:
            outcome = runner.run_once()
            if not (outcome.handled or outcome.duplicates):
                return handled, duplicates
            handled, duplicates = handled + outcome.handled, duplicates + outcome.duplicates

    assert consume_all() == (40, 0)
    before = {k: v for k, v in everything(redis_client).items() if b":dedupe:" not in k}

    assert consume_all() == (0, 40)
    assert {k: v for k, v in everything(redis_client).items()
            if b":dedupe:" not in k} == before


def test_events_arriving_out_of_order_give_the_same_state_as_in_order(
        redis_client: redis.Redis) -> None:
    events = [watch(f"e{i}", title=f"t{i % 3}", completed=i % 2 == 0,
                    at=T0 + timedelta(hours=i)) for i in range(6)]
    apply(redis_client, *events)
    in_order = everything(redis_client)
    redis_client.flushdb()

    apply(redis_client, *events[3:])
    apply(redis_client, *events[:3])

    assert everything(redis_client) == in_order


def test_the_history_keeps_the_latest_events_up_to_the_cap_and_counts_them_all(
        redis_client: redis.Redis) -> None:
    events = [watch(f"e{i}", title=f"t{i % 3}", at=T0 + timedelta(seconds=i))
              for i in range(HISTORY_CAP + 20)]
    apply(redis_client, *events)

    state = RedisRecsStore(redis_client, ITEMS).read_user("u1")
    late = apply(redis_client, events[0])  # trimmed away, then redelivered

    assert [w.event_id for w in state.history] == [e.id for e in events[20:]]
    assert state.watch_count == HISTORY_CAP + 20
    assert late.counts.duplicates == 1
    assert RedisRecsStore(redis_client, ITEMS).read_user("u1").watch_count == HISTORY_CAP + 20


def test_a_watch_of_a_title_unknown_to_the_model_is_history_but_not_taste(
        redis_client: redis.Redis) -> None:
    handler = apply(redis_client, watch("e1", title="t1"), watch("e2", title="t77"))

    state = RedisRecsStore(redis_client, ITEMS).read_user("u1")
    vectors = user_vectors(state, ITEMS)

    assert handler.counts.unknown_titles == 1
    assert [w.content_id for w in state.history] == ["t1", "t77"]
    assert vectors.watch_count == 2
    np.testing.assert_array_equal(vectors.taste, [0.0, 1.0])
    assert redis_client.zscore("fs:trending:{global}", "t77") is not None


def test_trending_is_read_as_the_decayed_count_in_trending_order(
        redis_client: redis.Redis) -> None:
    two_days_ago, a_day_ago = T0 - timedelta(hours=48), T0 - timedelta(hours=24)
    apply(redis_client, *(watch(f"old{i}", user=f"u{i}", title="t0", at=two_days_ago)
                          for i in range(3)),
          watch("e3", user="u3", title="t1", at=a_day_ago),
          watch("e4", user="u4", title="t2", at=T0))

    state = RedisRecsStore(redis_client, ITEMS).read_user("u1")

    titles = [title for title, _ in state.trending]
    counts = decayed_counts([score for _, score in state.trending], T0.timestamp())
    assert titles == ["t2", "t0", "t1"]
    np.testing.assert_allclose(counts, [1.0, 0.75, 0.5], rtol=1e-12)


def test_a_users_state_is_read_in_one_round_trip_and_a_batch_is_written_in_three(
        redis_client: redis.Redis, round_trips: list[int]) -> None:
    apply(redis_client, watch("warm-up"))  # loads the scripts: one extra trip, once
    handler = WatchFeaturesHandler(redis_client, ITEMS)
    for i in range(200):
        handler.handle(watch(f"e{i}", user=f"u{i % 50}", title=f"t{i % 3}"))
    round_trips.clear()

    handler.flush()
    writes = len(round_trips)
    RedisRecsStore(redis_client, ITEMS).read_user("u7")

    assert (writes, len(round_trips)) == (3, 4)


def test_writes_recover_when_redis_has_forgotten_the_scripts(redis_client: redis.Redis) -> None:
    apply(redis_client, watch("e1", user="u1"))
    redis_client.script_flush()

    apply(redis_client, watch("e2", user="u2", title="t1"))

    assert redis_client.get("fs:watch_count:{u2}") == b"1"
    assert redis_client.hget("fs:title_watches:{global}:2026-09-07", "t1") == b"1"  # once


def test_the_stored_taste_vector_is_the_fold_in_of_the_history(redis_client: redis.Redis) -> None:
    apply(redis_client, watch("e1", title="t0"), watch("e2", title="t2", completed=False),
          watch("e3", title="t0", at=T0 + timedelta(days=1)))

    state = RedisRecsStore(redis_client, ITEMS).read_user("u1")

    assert state.stored is not None
    expected = vectors_from_history(state.history, ITEMS)
    for stored, folded in zip((state.stored.taste, state.stored.profile,
                               state.stored.genre_counts), expected, strict=True):
        np.testing.assert_allclose(stored, folded, rtol=1e-6)
