"""Catalog titles on real Redis: the documented keys, newer wins, idempotence, poison to the DLQ."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from services.common.bus.consumer import ConsumerMetrics, ConsumerRunner, RunnerConfig
from services.common.bus.dedupe import RedisDeduplicator
from services.common.bus.envelope import Event, decode_event
from services.common.bus.memory import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
from services.common.bus.ports import OutboundMessage
from services.common.bus.topics import CATALOG, dlq_topic
from services.common.telemetry import Metrics
from services.designs.recs.keys import (
    catalog_titles_key,
    catalog_version_key,
    title_release_key,
)
from services.designs.recs.redis_store import RedisRecsStore
from services.designs.recs.state import user_vectors
from services.designs.recs.titles import RedisCatalogTitles, with_catalog_titles
from services.stream.titles import CatalogTitlesHandler
from services.stream.watches import WatchFeaturesHandler
from tests import recommender_world as world

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def title_event(event_id: str, content_id: str = "movie_456", at: datetime = T0,
                **data: Any) -> Event:
    body = {"content_id": content_id, "title": "Action Comedy Adventure",
            "genres": ["Action", "Comedy"], "rating": 4.2, "release_date": "2026-11-01", **data}
    return Event(id=event_id, type="title", source="test", time=at, data=body)


def apply(client: redis.Redis, *events: Event) -> CatalogTitlesHandler:
    handler = CatalogTitlesHandler(client)
    for event in events:
        handler.handle(event)
    handler.flush()
    return handler


def test_a_title_lands_under_the_documented_keys(redis_client: redis.Redis) -> None:
    apply(redis_client, title_event("e1"))
    assert catalog_titles_key() == "fs:catalog_titles:{global}"
    stored = json.loads(redis_client.hget("fs:catalog_titles:{global}", "movie_456") or b"")
    assert stored == {"title": "Action Comedy Adventure", "genres": ["Action", "Comedy"],
                      "actors": [], "release_date": "2026-11-01", "rating": 4.2,
                      "updated_ms": int(T0.timestamp() * 1000)}
    released = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    assert float(redis_client.hget(title_release_key(), "movie_456") or 0) == released
    version, [title] = RedisCatalogTitles(redis_client).read()
    assert version == int(redis_client.get(catalog_version_key()) or 0)
    assert abs(version - time.time() * 1000) < 60_000  # the server's clock, in ms
    assert title.data.rating == 4.2 and title.content_id == "movie_456"


def test_newer_metadata_replaces_older_and_older_arriving_late_changes_nothing(
        redis_client: redis.Redis) -> None:
    apply(redis_client, title_event("new", at=T0 + timedelta(hours=1), title="Renamed",
                                    release_date=None))
    version = redis_client.get(catalog_version_key())
    apply(redis_client, title_event("old", at=T0))                       # late, older
    [title] = RedisCatalogTitles(redis_client).read()[1]
    assert title.data.title == "Renamed"
    assert redis_client.hget(title_release_key(), "movie_456") is None  # newer has no date
    assert redis_client.get(catalog_version_key()) == version           # the late one: no-op


def test_a_redelivered_batch_changes_nothing_and_leaves_the_version(
        redis_client: redis.Redis) -> None:
    events = [title_event(f"e{i}", content_id=f"id {i}|{{x}}") for i in range(3)]
    apply(redis_client, *events)
    before = redis_client.hgetall(catalog_titles_key())
    version = redis_client.get(catalog_version_key())
    handler = apply(redis_client, *events)
    assert handler.changed == 0
    assert redis_client.hgetall(catalog_titles_key()) == before
    assert redis_client.get(catalog_version_key()) == version
    assert sorted(t.content_id for t in RedisCatalogTitles(redis_client).read()[1]) == [
        "id 0|{x}", "id 1|{x}", "id 2|{x}"]                          # ids read back exactly


def test_the_version_never_repeats_not_even_after_the_catalog_was_cleared(
        redis_client: redis.Redis) -> None:
    versions = []
    for i in range(3):
        apply(redis_client, title_event(f"e{i}", content_id=f"t{i}"))
        versions.append(int(redis_client.get(catalog_version_key()) or 0))
    redis_client.delete(catalog_titles_key(), catalog_version_key())  # a dataset switch
    time.sleep(0.05)  # a switch takes seconds; the clock has moved past every old version
    apply(redis_client, title_event("e9", content_id="t9"))
    versions.append(int(redis_client.get(catalog_version_key()) or 0))
    assert versions == sorted(set(versions))                            # strictly increasing


def test_a_malformed_catalog_event_goes_to_the_dead_letter_topic(
        redis_client: redis.Redis) -> None:
    broker = InMemoryBroker()
    bad = title_event("bad", rating=7.5)
    wrong = Event(id="wrong", type="watch", source="test", time=T0,
                  data={"user_id": "u1", "content_id": "t1", "watch_seconds": 1,
                        "completed": True})
    for event in (bad, wrong, title_event("good")):
        broker.append(OutboundMessage.of(CATALOG, str(event.data["content_id"]), event))
    runner = ConsumerRunner(
        InMemoryRecordSource(broker, "stream-catalog-titles", [CATALOG]),
        CatalogTitlesHandler(redis_client), RedisDeduplicator(redis_client, "catalog"),
        InMemoryPublisher(broker), RunnerConfig("stream-catalog-titles", (CATALOG,)),
        ConsumerMetrics(Metrics("test")))
    runner.run_once()
    dead = {decode_event(r.value).id: dict(r.headers) for r in broker.records(dlq_topic(CATALOG))}
    assert set(dead) == {"bad", "wrong"}
    assert redis_client.hexists(catalog_titles_key(), "movie_456")


def test_a_watch_of_a_title_the_catalog_does_not_know_is_stored_and_ignored_until_it_arrives(
        redis_client: redis.Redis) -> None:
    items = world.items()
    watches = WatchFeaturesHandler(redis_client, items)
    watches.handle(Event(id="w1", type="watch", source="test", time=T0,
                         data={"user_id": "user_123", "content_id": "movie_999",
                               "watch_seconds": 600, "completed": True}))
    watches.flush()
    state = RedisRecsStore(redis_client, items).read_user("user_123")
    assert [w.content_id for w in state.history] == ["movie_999"] and state.watch_count == 1
    assert watches.counts.unknown_titles == 1
    assert "movie_999" not in items.row_of                 # nothing to recommend or filter yet
    apply(redis_client, title_event("e1", content_id="movie_999"))
    merged = with_catalog_titles(items, RedisCatalogTitles(redis_client).read()[1])
    vectors = user_vectors(RedisRecsStore(redis_client, merged).read_user("user_123"), merged)
    assert vectors.watched.tolist() == [merged.row_of["movie_999"]]   # now filtered as watched
